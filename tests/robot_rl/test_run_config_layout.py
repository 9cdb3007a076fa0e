"""The observation layout a run config declares is the one its twin observes (no env needed)."""

from pathlib import Path

import numpy as np
import pytest

import sim
from robot_rl.agents.replay_buffer import obs_spec_from_space
from robot_rl.loop.run_config import load_run_config

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("name", ["sim_pick_cube.yaml", "sim_pick_cube_image.yaml"])
def test_obs_spec_from_the_config_is_the_twins_observation(name):
    # the reward model is not part of the layout (and is not trained here)
    run = load_run_config(CONFIG / name, {"reward_model": None})
    spec = run.obs_spec()
    env = sim.make_env(run.task, run.env)
    try:
        assert spec == obs_spec_from_space(env.observation_space)
        obs, _ = env.reset(seed=0)
        assert {k: (np.shape(v), np.asarray(v).dtype) for k, v in obs.items()} == spec
    finally:
        env.close()
    assert run.env_config() == env.unwrapped.config


def test_image_run_declares_its_cameras_and_no_privileged_state():
    run = load_run_config(CONFIG / "sim_pick_cube_image.yaml", {"reward_model": None})
    spec = run.obs_spec()
    assert "object_pose" not in spec
    for cam in ("front", "wrist", "front_level", "side_level"):
        assert spec[f"image_{cam}"] == ((128, 128, 3), np.dtype(np.uint8))
