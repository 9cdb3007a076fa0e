"""The reset's pure logic: legs toward home, convergence test, timeouts and their messages."""

from __future__ import annotations

import numpy as np
import pytest

from controllers.config import ConfigError, from_dict
from controllers.reset import LegClock, ResetConfig, ResetTimeout, reached, reset_plan
from controllers.se3 import orientation_error

HOME = (0.5, 0.0, 0.3, 0.0, 1.0, 0.0, 0.0)


def test_operator_reset_moves_home_with_the_gripper_open_then_waits():
    legs = reset_plan(ResetConfig(home_pose=HOME), np.random.default_rng(0))
    assert [leg.name for leg in legs] == ["home", "the operator's reset"]
    np.testing.assert_allclose(legs[0].pos, HOME[:3])
    np.testing.assert_allclose(legs[0].quat, HOME[3:])
    assert legs[0].gripper == -1 and not legs[0].waits_for_operator
    assert legs[1].waits_for_operator and legs[1].timeout_s == 120.0


def test_home_noise_is_uniform_per_axis_and_seeded():
    cfg = ResetConfig(home_pose=HOME, home_pos_noise=0.02, home_rot_noise=0.1, object="none")
    homes = [reset_plan(cfg, np.random.default_rng(s))[0] for s in range(200)]
    offsets = np.array([h.pos for h in homes]) - HOME[:3]
    rots = np.array([orientation_error(h.quat, np.array(HOME[3:])) for h in homes])
    assert np.all(np.abs(offsets) <= 0.02) and np.all(np.abs(rots) <= 0.1 + 1e-9)
    assert np.all(offsets.std(axis=0) > 0.008) and np.all(rots.std(axis=0) > 0.04)
    again = reset_plan(cfg, np.random.default_rng(3))[0]
    np.testing.assert_allclose(again.pos, homes[3].pos)


def test_scripted_reset_goes_through_the_waypoints_and_home_again():
    wps = [0.5, 0.1, 0.1, 0.0, 1.0, 0.0, 0.0, 1.0, 0.5, 0.1, 0.3, 0.0, 1.0, 0.0, 0.0, -1.0]
    cfg = ResetConfig(home_pose=HOME, object="scripted", waypoints=wps)
    legs = reset_plan(cfg, np.random.default_rng(0))
    assert [leg.name for leg in legs] == ["home", "waypoint 0", "waypoint 1", "home"]
    assert [leg.gripper for leg in legs] == [-1, 1, -1, -1]
    np.testing.assert_allclose(legs[2].pos, [0.5, 0.1, 0.3])


def test_convergence_needs_both_tolerances():
    cfg = ResetConfig(home_pose=HOME, object="none")
    leg = reset_plan(cfg, np.random.default_rng(0))[0]
    down = np.array(HOME[3:])
    assert reached(leg, [0.504, 0.0, 0.3], down, cfg)
    assert not reached(leg, [0.506, 0.0, 0.3], down, cfg)
    tilted = np.array([0.0, np.cos(0.03), np.sin(0.03), 0.0])  # 0.06 rad about z from down
    assert not reached(leg, HOME[:3], tilted, cfg)


def test_timeout_names_the_distance_and_what_to_check():
    cfg = ResetConfig(home_pose=HOME, object="none")
    clock = LegClock(reset_plan(cfg, np.random.default_rng(0))[0], start=100.0)
    clock.check(115.0, [0.542, 0.0, 0.3], np.array(HOME[3:]))  # on the deadline: still fine
    with pytest.raises(ResetTimeout) as exc:
        clock.check(115.1, [0.542, 0.0, 0.3], np.array(HOME[3:]))
    assert str(exc.value).startswith(
        "reset: the TCP did not reach home within 15 s (still 4.2 cm and 0.00 rad away); "
        "check the controller is running and following target_pose"
    )


def test_operator_wait_times_out_with_its_own_message():
    cfg = ResetConfig(home_pose=HOME, operator_timeout_s=30.0)
    clock = LegClock(reset_plan(cfg, np.random.default_rng(0))[1], start=0.0)
    with pytest.raises(ResetTimeout, match="no reset event within 30 s; place the object"):
        clock.check(30.5)


@pytest.mark.parametrize(
    "data, match",
    [
        ({"waypoints": [0.5] * 7}, "not a multiple of 8"),
        ({"object": "scripted"}, "needs at least one waypoint"),
        ({"home_pose": [0.5, 0, 0.3, 0, 2.0, 0, 0]}, "home_pose: orientation .* not a unit"),
        ({"timeout_s": 0}, "reset.timeout_s: must be > 0"),
        ({"home_pos_noise": -0.1}, "home_pos_noise: must be >= 0"),
        ({"object": "robot"}, "'robot' is not one of"),
    ],
)
def test_bad_reset_config_is_refused(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(ResetConfig, data, "reset")
