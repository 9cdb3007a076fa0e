"""The compiled 1 kHz loop (sim/physics.py) against the same calls made one by one from Python."""

import logging

import mujoco
import numpy as np
import pytest

from sim import make_env


def _stepped_env(seed: int):
    env = make_env("pick_cube")
    env.reset(seed=seed)
    for a in ([0.5, -0.5, -0.5, 0.3, 0.0, 0.5, 1.0], [-0.2, 0.8, 0.1, 0.0, -0.4, 0.0, 0.0]):
        env.step(np.array(a, np.float32))
    return env.unwrapped


@pytest.mark.parametrize("law", ["impedance", "opspace"])
def test_compiled_loop_matches_the_python_calls_exactly(law):
    u = _stepped_env(seed=5)
    u.controller._switches[0] = law == "opspace"
    snapshot = u.get_sim_state()
    target_pos = u.target_pose[0] + np.array([0.03, -0.02, 0.04])
    target_quat = u.target_pose[1]

    u._physics.run(150, target_pos, target_quat)
    compiled = (u.data.qpos.copy(), u.data.qvel.copy(), u.data.ctrl.copy(), u.controller.memory())

    u.set_sim_state(snapshot)
    m, d = u.model, u.data
    for _ in range(150):
        mujoco.mj_step1(m, d)
        d.ctrl[:7] = u.controller.compute(u.robot_state(), target_pos, target_quat)
        mujoco.mj_step2(m, d)
    np.testing.assert_array_equal(compiled[0], d.qpos)
    np.testing.assert_array_equal(compiled[1], d.qvel)
    np.testing.assert_array_equal(compiled[2], d.ctrl)
    for key, value in u.controller.memory().items():
        np.testing.assert_array_equal(compiled[3][key], value, err_msg=key)
    assert np.linalg.norm(d.qvel[:7]) > 1e-2  # the arm really moved towards the new target


def test_invalid_target_is_held_and_reported_once(caplog):
    u = _stepped_env(seed=6)
    before = u.controller.target
    with caplog.at_level(logging.WARNING, logger="controllers.impedance"):
        u._physics.run(100, np.array([np.nan, 0.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.0]))
    held = [r for r in caplog.records if "holding the last target" in r.getMessage()]
    assert len(held) == 1 and "100 ticks held" in held[0].getMessage()
    np.testing.assert_array_equal(u.controller.target[0], before[0])


def test_non_finite_state_raises_before_any_torque_is_applied():
    u = _stepped_env(seed=7)
    u.model.body_mass[u.model.body("link4").id] = np.nan  # the mass matrix goes NaN in mj_step1
    u.data.ctrl[:7] = 1.234
    with pytest.raises(ValueError, match="non-finite values in .*mass_matrix"):
        u._physics.run(10, *u.target_pose)
    np.testing.assert_array_equal(u.data.ctrl[:7], 1.234)
