"""`robot-rl replay` on what each recording path writes: the train job's actor (through its store
tee), an actor on a cell that reports joint positions only (as the ROS actor does), and stores that
lack what a replay needs."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.cli.replay import replay
from robot_rl.store import EpisodeInfo, EpisodeStore
from robot_rl.store.episodes import STEP_KEYS
from robot_rl.store.tee import StoreTee


def _unused_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_train_job_episodes_replay_exactly_from_their_sim_state(tmp_path):
    from robot_rl.loop.run_config import load_run_config
    from robot_rl.loop.train_job import actor_process

    env = {"max_episode_steps": 12, "pos_scale": 0.02}  # not the twin's defaults
    cfg = load_run_config(None, {"env": env, "sac": {"hidden": [16, 16]}})
    store = tmp_path / "episodes.zarr"
    # the train job's actor process, its learner absent: a demonstration, then a policy episode
    actor_process(cfg, _unused_endpoint(), "actor-0", str(tmp_path / "spool"), 1, 0, 2, str(store))
    with EpisodeStore.open(store) as s:
        infos = s.infos()
        assert len(infos) == 2 and infos[0].source == "demo"
        assert s.config(infos[0].config_hash) == cfg.env
        for info in infos:
            assert {"sim_state", "arm_joint_pos", "finger_joint_pos", "object_pose"} <= set(
                info.initial_state
            )
    for index in range(2):
        report = replay(store, index, tmp_path / f"replay{index}")
        assert report["start"] == "sim_state"
        assert report["steps_compared"] == report["recorded_steps"] == 12
        assert report["pos_err_mm_max"] < 1e-3  # float32 rounding of the stored pose, no drift
        assert report["replayed_success"] == infos[index].success


class _Cell:
    """The twin seen as a cell that reports what a real one can: joint positions from joint_states,
    the object pose only where a tracker follows it, no sim state."""

    def __init__(self, tracked: bool):
        import sim

        self.twin = sim.make_env("pick_cube", max_episode_steps=10)
        self.tracked = tracked

    def reset(self, seed=None):
        return self.twin.reset(seed=seed)

    def step(self, action):
        return self.twin.step(action)

    def initial_state(self) -> dict[str, np.ndarray]:
        state = self.twin.unwrapped.initial_state()
        return state if self.tracked else {k: v for k, v in state.items() if k != "object_pose"}


class _Sweep:
    """A policy that lifts and sweeps the TCP, clear of the cube, opening the gripper."""

    def act(self, obs, deterministic=False):
        return np.array([0.5, -0.4, 1.0, 0.0, 0.0, 0.3, -1.0], np.float32)


@pytest.mark.parametrize(
    "tracked, start", [(True, "joints+object_pose"), (False, "joints")], ids=["tracked", "joints"]
)
def test_actor_episodes_from_a_cell_replay_from_the_recorded_joints(tmp_path, tracked, start):
    from robot_rl.loop.actor import Actor

    cell = _Cell(tracked)
    store = tmp_path / "real.zarr"
    # as the ROS actor node writes its store (here without a learner)
    tee = StoreTee(None, str(store), "pick_cube", "real", "")
    Actor(cell, _Sweep(), tee, batch_steps=4, max_episode_steps=10).run_episode("train", seed=7)
    cell.twin.close()
    with EpisodeStore.open(store) as s:
        info = s.info(0)
        first = s.episode(0, ("joint_pos", "gripper_width"))
    assert "sim_state" not in info.initial_state and info.platform == "real"
    assert ("object_pose" in info.initial_state) == tracked
    np.testing.assert_allclose(
        info.initial_state["arm_joint_pos"], first["joint_pos"][0], atol=1e-6
    )
    report = replay(store, 0, tmp_path / "out")
    assert report["start"] == start
    assert report["object_pose_from"] == (
        "recorded" if tracked else "the task's reset for seed 0 (the episode recorded no seed)"
    )
    assert report["steps_compared"] == 10
    assert report["pos_err_mm_initial"] < 1e-3  # the recorded joints give the recorded TCP pose
    assert report["pos_err_mm_max"] < 1e-3  # the same twin, started at rest as its reset leaves it
    assert json.loads((tmp_path / "out" / "replay.json").read_text())["start"] == start


def test_a_store_lacking_what_replay_needs_is_refused_and_left_as_it_was(tmp_path, capsys):
    n = 4
    episode = {
        k: np.zeros((n, 7) if k in ("action", "policy_action") else n, v)
        for k, v in STEP_KEYS.items()
    }
    episode["is_first"][0] = episode["is_last"][-1] = True
    episode["gripper_width"] = np.full((n, 1), 0.08, np.float32)
    store = tmp_path / "bare.zarr"
    with EpisodeStore.open(store, "a") as s:
        s.append(episode, EpisodeInfo(task="pick_cube", source="real", success=False))
    before = _files(store)
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(store), "--episode", "0", "--out", str(tmp_path / "out")])
    message = str(exc.value)
    assert message.count("\n") == 0 and "episode 0 cannot be replayed" in message
    assert "data/tcp_pose" in message and "a start state" in message and "arm_joint_pos" in message
    assert _files(store) == before
    assert not (tmp_path / "out").exists()
