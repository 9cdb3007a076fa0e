"""Velocities derived from stamped pose and joint streams, against analytic trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controllers.config import ConfigError
from controllers.se3 import quat_mul, rotvec_to_quat
from controllers.velocity import DerivativeEstimator, PoseVelocityEstimator

DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # TCP pointing down


def _pose(t: float, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Constant twist (v, w) from (0.5, 0, 0.3) pointing down, w in the base frame."""
    pos = np.array([0.5, 0.0, 0.3]) + v * t
    return np.concatenate([pos, quat_mul(rotvec_to_quat(w * t), DOWN)])


def test_constant_twist_is_recovered_exactly_with_jittery_stamps():
    rng = np.random.default_rng(0)
    v, w = np.array([0.05, -0.02, 0.1]), np.array([0.3, -0.1, 0.8])
    est = PoseVelocityEstimator(cutoff_hz=10.0)
    assert est.update(0.0, _pose(0.0, v, w)) is None  # one sample: no velocity yet
    t = 0.0
    for _ in range(200):
        t += 0.01 + rng.uniform(-0.004, 0.004)  # 100 Hz with jitter: differences use the stamps
        twist = est.update(t, _pose(t, v, w))
    np.testing.assert_allclose(twist, np.concatenate([v, w]), atol=1e-9)


def test_sinusoid_is_tracked_with_the_first_order_lag():
    """x = A sin(2 pi f t): the filtered derivative follows A 2 pi f cos with the low-pass's
    gain and phase at f (first order: 1 / sqrt(1 + (f/fc)^2), -atan(f/fc))."""
    amp, f, fc, dt = 0.05, 1.0, 5.0, 0.001
    est = PoseVelocityEstimator(cutoff_hz=fc)
    errors = []
    gain, phase = 1 / math.hypot(1, f / fc), -math.atan(f / fc)
    for k in range(4000):
        t = k * dt
        pose = np.concatenate([[0.5 + amp * math.sin(2 * math.pi * f * t), 0.0, 0.3], DOWN])
        twist = est.update(t, pose)
        if t > 2.0:  # after the start-up transient
            expected = amp * 2 * math.pi * f * gain * math.cos(2 * math.pi * f * t + phase)
            errors.append(twist[0] - expected)
            assert np.all(np.abs(twist[1:]) < 1e-9)
    # the discrete filter and differences are within 1 % of the velocity amplitude of the
    # continuous model
    assert np.max(np.abs(errors)) < 0.01 * amp * 2 * math.pi * f


def test_noise_is_attenuated_and_quaternion_sign_flips_do_not_matter():
    rng = np.random.default_rng(1)
    raw_est, filtered = DerivativeEstimator(1000.0), PoseVelocityEstimator(cutoff_hz=5.0)
    raw, smooth = [], []
    for k in range(3000):
        t = k * 0.001
        pose = _pose(t, np.zeros(3), np.array([0.0, 0.0, 0.5]))
        pose[:3] += rng.normal(0, 1e-4, 3)  # 0.1 mm position noise at 1 kHz
        if k % 2:
            pose[3:] = -pose[3:]  # q and -q: the same orientation, as drivers may send either
        r, s = raw_est.update(t, pose[:3]), filtered.update(t, pose)
        if k > 1000:
            raw.append(r[0])
            smooth.append(s)
    smooth = np.array(smooth)
    assert np.std(smooth[:, 0]) < 0.05 * np.std(raw)
    np.testing.assert_allclose(smooth[:, 5], 0.5, atol=1e-6)


def test_repeated_or_old_stamps_are_ignored_and_reset_restarts():
    est = DerivativeEstimator(cutoff_hz=50.0)
    est.update(1.0, np.array([0.0]))
    np.testing.assert_allclose(est.update(1.1, np.array([0.1])), [1.0])
    np.testing.assert_allclose(est.update(1.1, np.array([5.0])), [1.0])  # same stamp
    np.testing.assert_allclose(est.update(1.05, np.array([5.0])), [1.0])  # older stamp
    est.reset()
    assert est.update(2.0, np.array([3.0])) is None


@pytest.mark.parametrize("cutoff", [0.0, -1.0, math.inf, math.nan])
def test_bad_cutoff_is_refused(cutoff):
    with pytest.raises(ConfigError, match="velocity_cutoff_hz"):
        PoseVelocityEstimator(cutoff)
