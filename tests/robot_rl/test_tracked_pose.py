"""object_pose from the marker tracker in rendered images: the privileged layout, no truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sim
from calibration import transform as tf
from controllers.action import GRIPPER
from controllers.config import ConfigError, to_dict
from robot_rl.agents.checkpoint import CheckpointInfo
from robot_rl.agents.sac import SACConfig
from robot_rl.loop.evaluation import make_eval_env
from robot_rl.loop.run_config import load_run_config
from robot_rl.loop.tracked_pose import NO_POSE, TrackedPoseConfig, make_tracked_env
from robot_rl.loop.train_job import make_env, obs_spec
from sim.experts import make_expert

CONFIG = Path(__file__).resolve().parents[2] / "config"
TRACKED = CONFIG / "sim_pick_cube_tracked.yaml"


@pytest.fixture(scope="module")
def env():
    env = make_tracked_env("pick_cube", {"privileged_state": False}, TrackedPoseConfig())
    yield env
    env.close()


def _truth(env) -> np.ndarray:
    return env.unwrapped.task.object_pose(env.unwrapped.data)


def _error(pose: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(position error in mm, orientation error in degrees)."""
    dt, dr = tf.errors(tf.from_pose7(pose), tf.from_pose7(truth))
    return dt * 1e3, float(np.degrees(dr))


def _occlude(env, monkeypatch) -> None:
    """No camera sees a marker from now on."""
    monkeypatch.setattr(env.tracker, "measure", lambda *args, **kwargs: None)


def test_observation_is_the_privileged_twins_without_images(env):
    privileged = sim.make_env("pick_cube")
    try:
        assert list(env.observation_space) == list(privileged.observation_space)
        assert env.observation_space == privileged.observation_space
    finally:
        privileged.close()
    obs, info = env.reset(seed=0)
    assert list(obs) == list(env.observation_space)
    for key, value in obs.items():
        space = env.observation_space[key]
        assert value.shape == space.shape and value.dtype == space.dtype, key
    assert not any(k.startswith("image_") for k in obs)
    assert info["tracker"]["source"] == "wrist"


def test_tracked_pose_is_the_true_pose_before_the_grasp(env):
    # measured at 640x480 from the wrist: p99 2.6 mm, 3.7 deg over 300 expert steps
    expert = make_expert(env)
    position, orientation = [], []
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        expert.reset()
        grasped, terminated, truncated = False, False, False
        while not (terminated or truncated):
            if not grasped:
                assert info["tracker"]["source"] == "wrist"
                dt, dr = _error(obs["object_pose"], _truth(env))
                position.append(dt)
                orientation.append(dr)
            action = expert.act(obs)
            grasped = grasped or action[GRIPPER] > 0
            obs, _, terminated, truncated, info = env.step(action)
        assert terminated
        counts = info["tracker"]
        assert counts["frames"] == counts["measured"] + counts["held"] + counts["kept"]
        assert counts["unseen"] == 0
    assert np.median(position) < 1.5 and max(position) < 5.0, max(position)
    assert max(orientation) < 6.0, max(orientation)


def _lift_occluded(env, monkeypatch, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """An expert episode whose marker is lost once the gripper is closed on the cube: (source,
    tracked pose, true pose) of each frame from then on."""
    expert = make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset()
    frames, closed, terminated, truncated = [], False, False, False
    while not (terminated or truncated):
        action = expert.act(obs)
        obs, _, terminated, truncated, info = env.step(action)
        if not closed and action[GRIPPER] > 0 and obs["gripper_width"][0] < 0.045:
            closed = True
            _occlude(env, monkeypatch)
        elif closed:
            frames.append((info["tracker"]["source"], obs["object_pose"], _truth(env)))
    assert closed and terminated
    return frames


def test_a_held_cube_moves_with_the_hand_while_its_marker_is_lost(env, monkeypatch):
    frames = _lift_occluded(env, monkeypatch)
    assert {source for source, _, _ in frames} == {"held"}
    assert frames[-1][2][2] - frames[0][2][2] > 0.05  # it was lifted
    for _, pose, truth in frames:
        dt, dr = _error(pose, truth)
        assert dt < 5.0 and dr < 5.0, (dt, dr)


def test_without_the_hold_a_lost_cube_stays_where_it_was_last_seen(env, monkeypatch):
    monkeypatch.setattr(env, "hold", None)
    frames = _lift_occluded(env, monkeypatch)
    assert {source for source, _, _ in frames} == {"kept"}
    assert all(np.array_equal(pose, frames[0][1]) for _, pose, _ in frames)


def test_a_cube_never_seen_has_no_pose_and_is_counted(env, monkeypatch):
    measure = env.tracker.measure
    _occlude(env, monkeypatch)
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs["object_pose"], NO_POSE)
    obs, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert info["tracker"]["source"] == "unseen"
    monkeypatch.setattr(env.tracker, "measure", measure)
    obs, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    seen = obs["object_pose"]
    _occlude(env, monkeypatch)
    obs, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    np.testing.assert_array_equal(obs["object_pose"], seen)
    assert info["tracker"] == {
        "source": "kept",
        "frames": 4,
        "measured": 1,
        "held": 0,
        "kept": 1,
        "unseen": 2,
    }
    obs, info = env.reset(seed=0)  # a new episode forgets the old pose and counts
    np.testing.assert_array_equal(obs["object_pose"], NO_POSE)
    assert info["tracker"]["frames"] == 1


def test_the_tracked_recipe_observes_what_the_main_job_observes():
    tracked, main = load_run_config(TRACKED), load_run_config(CONFIG / "sim_pick_cube.yaml")
    assert tracked.sac == main.sac
    tracked_env, main_env = make_env(tracked), make_env(main)
    try:
        spec = obs_spec(tracked_env)
        assert list(spec.items()) == list(obs_spec(main_env).items())
        assert tracked.obs_spec() == main.obs_spec() == spec
    finally:
        tracked_env.close()
        main_env.close()
    assert tracked.data_hash() != main.data_hash()
    # the final evaluation rebuilds the run's env from the checkpoint: tracked again
    info = CheckpointInfo(
        Path("ckpt"), "pick_cube", tracked.env, SACConfig(), spec, 0, to_dict(tracked.tracker)
    )
    eval_env = make_eval_env(info, list(spec))
    try:
        obs, _ = eval_env.reset(seed=0)
        assert list(obs) == list(spec) and eval_env.unwrapped.config.cameras == ("wrist",)
    finally:
        eval_env.close()


def test_the_main_jobs_config_has_no_tracker():
    assert load_run_config(CONFIG / "sim_pick_cube.yaml").tracker is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"task": "peg_insert"}, "tracker: only pick_cube"),
        ({"env": {}}, "env.privileged_state: must be false"),
        ({"env": {"privileged_state": False, "cameras": ["front"]}}, r"env.cameras: must be \[\]"),
        (
            {"env": {"privileged_state": False, "marker": {"id": 0}}},
            "env.marker: leave it out",
        ),
        ({"tracker": {"cameras": []}}, "tracker.cameras: need distinct"),
        ({"tracker": {"cameras": ["wrist", "wrist"]}}, "tracker.cameras: need distinct"),
        ({"tracker": {"cameras": ["side"]}}, r"tracker.cameras: \['side'\] are not in"),
        ({"tracker": {"image_size": [8, 640]}}, "tracker.image_size"),
        ({"tracker": {"marker_size_m": 0.05}}, "tracker.marker_size_m"),
        ({"tracker": {"marker_id": 48}}, r"tracker.marker_id: the cube carries ids 48..52"),
        ({"tracker": {"dictionary": "DICT_NONE"}}, "tracker.dictionary"),
        ({"tracker": {"hold_width_m": [0.05, 0.01]}}, "tracker.hold_width_m"),
        ({"tracker": {"camera": ["wrist"]}}, r"tracker: unknown key\(s\) \['camera'\]"),
    ],
)
def test_incompatible_tracker_configs_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_run_config(TRACKED, overrides)


def test_a_tracked_run_refuses_a_reward_model(tmp_path):
    with pytest.raises(ConfigError, match="reward_model: a tracked run renders no camera"):
        load_run_config(TRACKED, {"reward_model": str(tmp_path)})


def test_the_wrapper_refuses_a_twin_that_observes_the_true_pose():
    from robot_rl.loop.tracked_pose import TrackedObjectPose

    config = TrackedPoseConfig()
    twin = sim.make_env(
        "pick_cube", cameras=("wrist",), image_size=(480, 640), marker=config.marker()
    )
    try:
        with pytest.raises(ValueError, match="true object_pose"):
            TrackedObjectPose(twin, config)
    finally:
        twin.close()
