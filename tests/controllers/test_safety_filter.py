"""Safety filter properties under random commands (hypothesis), NaN/inf included; the watchdog."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.safety import SafetyConfig, SafetyFilter
from controllers.se3 import orientation_error, quat_mul, rotvec_to_quat

CONFIG = SafetyConfig()
LO, HI = np.array(CONFIG.workspace_min), np.array(CONFIG.workspace_max)
REF = np.array(CONFIG.orientation_ref)
TOL = 1e-9

any_float = st.floats(allow_nan=True, allow_infinity=True)
near = st.floats(-1.5, 1.5)
commands = st.tuples(
    st.one_of(st.tuples(near, near, near), st.tuples(any_float, any_float, any_float)),
    st.one_of(
        st.tuples(near, near, near, near), st.tuples(any_float, any_float, any_float, any_float)
    ),
)


def in_box(pos):
    return np.all(pos >= LO - TOL) and np.all(pos <= HI + TOL)


def in_bounds(quat):
    return np.all(
        np.abs(orientation_error(quat, REF)) <= np.array(CONFIG.max_orientation_dev) + TOL
    )


def start_pose(dev=(0.1, -0.2, 1.0)):
    return np.array([0.5, 0.0, 0.25]), quat_mul(rotvec_to_quat(np.array(dev)), REF)


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, min_size=1, max_size=25))
def test_random_commands_never_leave_the_box_or_exceed_step_limits(command_list):
    safety = SafetyFilter(CONFIG)
    pos, quat = start_pose()
    safety.reset(pos, quat, now=0.0)
    for i, (p, q) in enumerate(command_list):
        result = safety.filter(np.array(p), np.array(q), now=0.1 * (i + 1))
        assert np.all(np.isfinite(result.pos)) and np.all(np.isfinite(result.quat))
        assert in_box(result.pos) and in_bounds(result.quat)
        assert np.linalg.norm(result.pos - pos) <= CONFIG.max_step_trans + TOL
        assert np.linalg.norm(orientation_error(result.quat, quat)) <= CONFIG.max_step_rot + TOL
        assert np.linalg.norm(result.quat) == pytest.approx(1.0)
        finite = np.all(np.isfinite(p)) and np.all(np.isfinite(q)) and np.any(np.array(q) != 0)
        assert result.held == (not finite)
        assert (result.reason == "") == (not result.held and not result.clipped)
        if result.held:
            np.testing.assert_array_equal(result.pos, pos)
            assert "holding last safe target" in result.reason
        pos, quat = result.pos, result.quat


def up_to(limit):  # inside the bound or exactly on it (where geodesics bulge out)
    return st.one_of(st.floats(-limit, limit), st.sampled_from([-limit, limit]))


dev_in_bounds = st.tuples(up_to(0.5), up_to(0.5), st.floats(-3.1, 3.1))


@settings(max_examples=150, deadline=None)
@given(
    dev_in_bounds,
    st.lists(
        st.tuples(st.floats(-0.7, 0.7), st.floats(-0.7, 0.7), st.floats(-3.3, 3.3)),
        min_size=1,
        max_size=10,
    ),
)
def test_rotations_near_the_orientation_bounds_stay_inside_them(start_dev, target_devs):
    # Geodesic steps between in-bound orientations can bulge out of the per-axis bounds near
    # their corners; the filter must still return in-bound, step-limited orientations.
    safety = SafetyFilter(CONFIG)
    pos, quat = start_pose(dev=start_dev)
    safety.reset(pos, quat, now=0.0)
    for i, dev in enumerate(target_devs):
        result = safety.filter(pos, quat_mul(rotvec_to_quat(np.array(dev)), REF), now=0.1 * (i + 1))
        assert in_bounds(result.quat)
        assert np.linalg.norm(orientation_error(result.quat, quat)) <= CONFIG.max_step_rot + TOL
        quat = result.quat


@settings(max_examples=100, deadline=None)
@given(
    st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)),
    st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05), st.floats(-0.05, 0.05)),
)
def test_small_commands_inside_the_limits_pass_unchanged(dpos, drot):
    safety = SafetyFilter(CONFIG)
    pos, quat = start_pose()
    safety.reset(pos, quat, now=0.0)
    target_quat = quat_mul(rotvec_to_quat(np.array(drot)), quat)
    result = safety.filter(pos + dpos, target_quat, now=0.1)
    assert not result.clipped and not result.held and result.reason == ""
    np.testing.assert_allclose(result.pos, pos + dpos, atol=1e-12)
    assert np.linalg.norm(orientation_error(result.quat, target_quat)) < 1e-9


def test_reasons_name_what_was_limited():
    safety = SafetyFilter(CONFIG)
    pos, quat = start_pose(dev=(0.45, 0.0, 0.0))
    safety.reset(pos, quat, now=0.0)
    result = safety.filter(pos + [0.0, 0.0, -1.0], quat, now=0.1)
    assert (
        result.clipped and "workspace box" in result.reason and "translation step" in result.reason
    )
    assert result.pos[2] == pytest.approx(pos[2] - CONFIG.max_step_trans)
    result = safety.filter(
        result.pos, quat_mul(rotvec_to_quat(np.array([0.3, 0, 0])), quat), now=0.2
    )
    assert "orientation bounds" in result.reason and "rotation step" not in result.reason
    assert orientation_error(result.quat, REF)[0] == pytest.approx(0.5)


def test_nan_command_is_held_and_logged_once_per_second(caplog):
    safety = SafetyFilter(CONFIG)
    pos, quat = start_pose()
    safety.reset(pos, quat, now=0.0)
    with caplog.at_level(logging.WARNING, logger="controllers.safety"):
        for i in range(10):  # 10 Hz for 1 s minus a tick
            result = safety.filter([np.nan, 0.5, 0.2], quat, now=0.1 * i)
            assert result.held and not result.clipped
            assert "non-finite target_pos" in result.reason
        safety.filter([0.5, 0.0, np.inf], quat, now=1.05)
    lines = [r.getMessage() for r in caplog.records]
    assert (
        len(lines) == 2
        and "non-finite target_pos" in lines[0]
        and "9 similar messages suppressed" in lines[1]
    )
    np.testing.assert_array_equal(result.pos, pos)


def test_watchdog_holds_pose_when_commands_stop(caplog):
    safety = SafetyFilter(CONFIG)
    pos, quat = start_pose()
    safety.reset(pos, quat, now=10.0)
    accepted = safety.filter(pos + [0.01, 0, 0], quat, now=10.1)
    assert not safety.watchdog(now=10.5).held  # 0.4 s since the last command
    with caplog.at_level(logging.WARNING, logger="controllers.safety"):
        stale = safety.watchdog(now=10.7)
    assert stale.held and stale.reason.startswith("stale command") and "0.600 s" in stale.reason
    np.testing.assert_array_equal(stale.pos, accepted.pos)
    np.testing.assert_array_equal(stale.quat, accepted.quat)
    assert any("stale command" in r.getMessage() for r in caplog.records)
    # Rejected (non-finite) commands do not feed the watchdog; a valid one does.
    safety.filter([np.nan] * 3, quat, now=10.8)
    assert safety.watchdog(now=10.85).held
    safety.filter(accepted.pos, quat, now=10.9)
    assert not safety.watchdog(now=10.95).held


def test_start_outside_the_box_walks_back_at_the_step_limit():
    safety = SafetyFilter(CONFIG)
    _, quat = start_pose()
    safety.reset([0.9, 0.0, 0.25], quat, now=0.0)
    result = safety.filter([0.9, 0.0, 0.25], quat, now=0.1)
    assert result.clipped and result.pos[0] == pytest.approx(0.9 - CONFIG.max_step_trans)


def test_bad_input_shapes_and_use_before_reset_are_clear_errors():
    safety = SafetyFilter(CONFIG)
    with pytest.raises(RuntimeError, match="before reset"):
        safety.filter([0.5, 0, 0.2], REF, now=0.0)
    with pytest.raises(ValueError, match="finite numbers"):
        safety.reset([0.5, np.nan, 0.2], REF, now=0.0)
    safety.reset([0.5, 0, 0.2], REF, now=0.0)
    with pytest.raises(ValueError, match=r"target_pos must have shape \(3,\)"):
        safety.filter([0.5, 0, 0.2, 1.0], REF, now=0.1)
