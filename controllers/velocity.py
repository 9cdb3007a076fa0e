"""Velocities derived from stamped position streams: finite differences plus a first-order
low-pass.

A real cell publishes the TCP pose and joint positions, not always their velocities; the robot PC
derives them here. Differences use the samples' own stamps (not arrival times, which carry the
transport's jitter); the angular velocity is the rotation between successive orientations taken
through the quaternion log, in the base frame.
"""

from __future__ import annotations

import math

import numpy as np

from controllers.config import ConfigError
from controllers.se3 import orientation_error, quat_normalize


def _check_cutoff(cutoff_hz: float) -> float:
    if not 0 < cutoff_hz < math.inf:
        raise ConfigError(f"velocity_cutoff_hz: {cutoff_hz!r} must be a finite number > 0")
    return float(cutoff_hz)


class DerivativeEstimator:
    """d/dt of a stamped vector stream: (x_k - x_{k-1}) / (t_k - t_{k-1}), low-passed at
    `cutoff_hz` (first order, the smoothing factor recomputed from each sample's dt)."""

    def __init__(self, cutoff_hz: float):
        self.tau = 1.0 / (2.0 * math.pi * _check_cutoff(cutoff_hz))
        self._stamp: float | None = None
        self._value: np.ndarray | None = None
        self.velocity: np.ndarray | None = None  # None until two samples arrived

    def reset(self) -> None:
        """Forget the stream (e.g. after a gap): the next two samples start it again."""
        self._stamp = self._value = self.velocity = None

    def update(self, stamp: float, value: np.ndarray) -> np.ndarray | None:
        """Feed one sample; returns the filtered derivative (None before the second sample).

        A sample whose stamp is not after the previous one (a duplicate, or out of order) is
        ignored.
        """
        value = np.asarray(value, dtype=np.float64)
        if self._stamp is None:
            self._stamp, self._value = stamp, value
            return self.velocity
        dt = stamp - self._stamp
        if not dt > 0:
            return self.velocity
        self._filter(self._difference(value) / dt, dt)
        self._stamp, self._value = stamp, value
        return self.velocity

    def _difference(self, value: np.ndarray) -> np.ndarray:
        return value - self._value

    def _filter(self, raw: np.ndarray, dt: float) -> None:
        if self.velocity is None:
            self.velocity = raw
        else:
            self.velocity = self.velocity + dt / (dt + self.tau) * (raw - self.velocity)


class PoseVelocityEstimator(DerivativeEstimator):
    """TCP twist (vx vy vz wx wy wz, base frame) from a stamped pose stream (x y z qw qx qy qz)."""

    def update(self, stamp: float, value: np.ndarray) -> np.ndarray | None:
        pose = np.asarray(value, dtype=np.float64)
        return super().update(stamp, np.concatenate([pose[:3], quat_normalize(pose[3:7])]))

    def _difference(self, value: np.ndarray) -> np.ndarray:
        # the world-frame rotation taking the previous orientation to this one: log(q_k q_{k-1}^-1)
        rotation = orientation_error(value[3:7], self._value[3:7])
        return np.concatenate([value[:3] - self._value[:3], rotation])
