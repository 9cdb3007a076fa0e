"""The action contract: action <-> target pose round trips, gripper thresholds, shape errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.action import (
    ACTION_DIM,
    ACTION_NAMES,
    GRIPPER_CLOSE_THRESHOLD,
    GRIPPER_OPEN_THRESHOLD,
    ActionScales,
    action_from_target,
    action_from_twist,
    apply_action,
    check_action,
    gripper_class,
    gripper_command,
)
from controllers.config import ConfigError
from controllers.se3 import quat_to_mat

SCALES = ActionScales(pos_scale=0.01, rot_scale=0.05)
unit = st.floats(-1.0, 1.0, allow_nan=False)
actions = st.tuples(*[unit] * ACTION_DIM).map(np.array)
quats = (
    st.tuples(unit, unit, unit, unit)
    .filter(lambda q: sum(v * v for v in q) > 1e-3)
    .map(lambda q: np.array(q) / np.linalg.norm(q))
)
positions = st.tuples(*[st.floats(-1.0, 1.0)] * 3).map(np.array)


def rodrigues(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector, written out independently of controllers.se3."""
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def test_layout_names_the_seven_values():
    assert ACTION_DIM == 7
    assert ACTION_NAMES == ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")


@settings(max_examples=200, deadline=None)
@given(positions, quats, actions)
def test_action_to_target_and_back_is_the_same_action(pos, quat, action):
    new_pos, new_quat = apply_action(pos, quat, action, SCALES)
    back = action_from_target(pos, quat, new_pos, new_quat, SCALES, gripper=action[6])
    np.testing.assert_allclose(back, action, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(positions, quats, actions)
def test_rotation_turns_the_target_about_world_axes_by_rot_scale(pos, quat, action):
    new_pos, new_quat = apply_action(pos, quat, action, SCALES)
    np.testing.assert_allclose(new_pos, pos + action[:3] * SCALES.pos_scale, atol=1e-15)
    # composed on the left: a world-frame rotation of the target orientation
    expected = rodrigues(action[3:6] * SCALES.rot_scale) @ quat_to_mat(quat)
    np.testing.assert_allclose(quat_to_mat(new_quat), expected, atol=1e-12)


def test_a_goal_beyond_one_step_is_clipped_to_full_speed():
    quat = np.array([0.0, 1.0, 0.0, 0.0])
    action = action_from_target(
        np.zeros(3), quat, np.array([0.5, -0.005, 0.0]), quat, SCALES, gripper=3.0
    )
    np.testing.assert_allclose(action, [1.0, -0.5, 0, 0, 0, 0, 1.0], atol=1e-12)


def test_twist_over_one_period_in_units_of_the_scales():
    twist = np.array([0.05, -0.2, 0.0, 0.0, 0.25, -1.0])
    action = action_from_twist(twist, 0.1, SCALES, gripper=-1.0)
    np.testing.assert_allclose(action, [0.5, -1.0, 0.0, 0.0, 0.5, -1.0, -1.0], atol=1e-12)


def test_gripper_thresholds_at_the_half_boundaries():
    values = np.array([-1.0, -0.5001, -0.5, -0.4999, 0.0, 0.4999, 0.5, 0.5001, 1.0, np.nan])
    assert GRIPPER_CLOSE_THRESHOLD == 0.5 and GRIPPER_OPEN_THRESHOLD == -0.5
    cls = gripper_class(values)
    assert cls.dtype == np.int8
    assert cls.tolist() == [-1, -1, 0, 0, 0, 0, 0, 1, 1, 0]
    for prev in (False, True):
        assert gripper_command(0.5001, prev) is True
        assert gripper_command(-0.5001, prev) is False
        for keep in (0.5, -0.5, 0.0, float("nan")):
            assert gripper_command(keep, prev) is prev


@pytest.mark.parametrize("shape", [(6,), (8,), (2, 7), ()])
def test_wrong_number_of_values_is_refused(shape):
    with pytest.raises(ValueError, match=r"expected 7 values \[dx dy dz drx dry drz gripper\]"):
        apply_action(np.zeros(3), np.array([1.0, 0, 0, 0]), np.zeros(shape), SCALES)


def test_out_of_range_is_clipped_and_nan_passes_to_the_safety_filter():
    np.testing.assert_array_equal(check_action(np.full((1, 7), 3.0)), np.ones(7))
    a = np.zeros(7)
    a[0] = np.nan
    pos, quat = apply_action(np.zeros(3), np.array([1.0, 0, 0, 0]), a, SCALES)
    assert np.isnan(pos[0]) and np.all(np.isfinite(pos[1:]))
    a = np.zeros(7)
    a[4] = np.nan
    _, quat = apply_action(np.zeros(3), np.array([1.0, 0, 0, 0]), a, SCALES)
    assert not np.all(np.isfinite(quat))


@pytest.mark.parametrize("bad", [0.0, -0.01, math.inf, math.nan])
def test_scales_must_be_finite_and_positive(bad):
    with pytest.raises(ConfigError, match="pos_scale"):
        ActionScales(pos_scale=bad, rot_scale=0.05)
    with pytest.raises(ConfigError, match="rot_scale"):
        ActionScales(pos_scale=0.01, rot_scale=bad)
