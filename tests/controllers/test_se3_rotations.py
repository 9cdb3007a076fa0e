"""Quaternion / rotation helpers against MuJoCo's own implementations and round trips."""

import math

import mujoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.se3 import (
    mat_to_quat,
    orientation_error,
    quat_conj,
    quat_mul,
    quat_normalize,
    quat_to_mat,
    quat_to_rotvec,
    rotvec_to_quat,
    slerp,
)

unit = st.floats(-1.0, 1.0, allow_nan=False)
quats = (
    st.tuples(unit, unit, unit, unit)
    .filter(lambda q: sum(v * v for v in q) > 1e-3)
    .map(lambda q: np.array(q) / np.linalg.norm(q))
)
rotvecs = st.tuples(*[st.floats(-1.8, 1.8)] * 3).map(np.array)  # norm < pi: log(exp(v)) = v


def same_rotation(a, b, atol=1e-9):
    return np.allclose(a, b, atol=atol) or np.allclose(a, -b, atol=atol)


@settings(max_examples=200, deadline=None)
@given(quats, quats)
def test_quat_mul_and_mat_match_mujoco(a, b):
    expected = np.empty(4)
    mujoco.mju_mulQuat(expected, a, b)
    np.testing.assert_allclose(quat_mul(a, b), expected, atol=1e-12)
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, a)
    np.testing.assert_allclose(quat_to_mat(a), mat.reshape(3, 3), atol=1e-12)
    assert same_rotation(mat_to_quat(quat_to_mat(a)), a)
    np.testing.assert_allclose(quat_mul(a, quat_conj(a)), [1, 0, 0, 0], atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(rotvecs)
def test_rotvec_round_trip_and_mujoco_agree(v):
    q = rotvec_to_quat(v)
    expected = np.empty(4)
    angle = np.linalg.norm(v)
    mujoco.mju_axisAngle2Quat(expected, v / angle if angle > 0 else np.array([1.0, 0, 0]), angle)
    assert same_rotation(q, expected)
    np.testing.assert_allclose(quat_to_rotvec(q), v, atol=1e-9)


def test_small_angles_use_exact_limits():
    v = np.array([1e-12, -2e-12, 3e-12])
    np.testing.assert_allclose(quat_to_rotvec(rotvec_to_quat(v)), v, rtol=1e-9, atol=0)


@settings(max_examples=200, deadline=None)
@given(quats, quats)
def test_orientation_error_is_shortest_world_frame_rotation(q_target, q_current):
    r = orientation_error(q_target, q_current)
    assert np.linalg.norm(r) <= math.pi + 1e-9
    assert same_rotation(quat_mul(rotvec_to_quat(r), q_current), q_target, atol=1e-8)


def test_orientation_error_sign_convention():
    # Target is the current orientation turned +0.3 rad about world z: error is +0.3 z.
    current = np.array([0.0, 1.0, 0.0, 0.0])
    target = quat_mul(rotvec_to_quat(np.array([0, 0, 0.3])), current)
    np.testing.assert_allclose(orientation_error(target, current), [0, 0, 0.3], atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(quats, quats, st.floats(0.0, 1.0))
def test_slerp_moves_a_fraction_of_the_angle(q0, q1, t):
    q = slerp(q0, q1, t)
    total = np.linalg.norm(orientation_error(q1, q0))
    assert np.linalg.norm(orientation_error(q, q0)) == pytest.approx(t * total, abs=1e-7)
    assert np.linalg.norm(orientation_error(q1, q)) == pytest.approx((1 - t) * total, abs=1e-7)


def test_quat_normalize_rejects_zero():
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        quat_normalize(np.zeros(4))
    np.testing.assert_allclose(quat_normalize(np.array([2.0, 0, 0, 0])), [1, 0, 0, 0])


def test_results_are_float64_for_other_input_dtypes():
    v32 = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    q = rotvec_to_quat(v32)
    assert q.dtype == np.float64
    np.testing.assert_allclose(q, rotvec_to_quat(v32.astype(np.float64)), rtol=0, atol=0)
    assert quat_mul((1, 0, 0, 0), (0, 1, 0, 0)).dtype == np.float64
    assert mat_to_quat(np.eye(3, dtype=np.float32)).dtype == np.float64
