"""`robot-rl rehearse`, shortened to minutes: every step produces its output, and intervention
flags and the classifier's rewards flow from the ROS nodes to the learner's buffer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

SHORT = {
    "run_config": str(REPO / "config" / "real_pick_cube.yaml"),
    "ros_params": str(REPO / "config" / "ros_sim.yaml"),
    "seed": 3,
    "demos": 3,
    "reward": {
        "classifier": {
            "views": [{"camera": "front"}, {"camera": "wrist"}],
            "image_size": [64, 64],
            "embed_dim": 16,
            "hidden_dim": 16,
            "proprio": [{"key": "tcp_pose", "size": 7, "components": [2]}],
        },
        "labels": {"outcome_tail": 3},
        "val_fraction": 0.34,
        "steps": 40,
        "batch_size": 16,
        "shifts": 1,
        "target_precision": 0.5,
        "target_recall": None,
        "threshold_confidence": 0.5,
    },
    "train_wall_s": 60.0,
    "eval_episodes": 2,
    # small images and networks: a CPU budget of minutes
    "run": {
        "env": {"image_size": [64, 64], "safety": {"command_timeout_s": 3.0}},
        "sac": {
            "hidden": [32, 32],
            "num_critics": 2,
            "image": {"cache_shifts": 0, "embed_dim": 16},
        },
        "learner": {"batch_size": 8, "learning_starts": 10, "publish_every": 5},
        "transport": {"batch_steps": 5},
        "operator": {"stall_steps": 4, "drift_steps": 3, "takeover_steps": 6},
    },
    "nodes": {"sim_robot": {"image_size": [64, 64], "camera_fps": 10.0}},
}


def test_a_short_rehearsal_runs_every_step(tmp_path, ros_domain):
    from robot_rl.agents.replay_buffer import ReplayBuffer
    from robot_rl.store.episodes import EpisodeStore

    config = tmp_path / "rehearsal.yaml"
    config.write_text(yaml.safe_dump(SHORT))
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "rehearse", "--config", str(config)]
        + ["--out", str(out)],
        cwd=REPO,
        env={**ros_domain, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    logs = "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in (out / "logs").glob("*.log"))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    summary = json.loads((out / "summary.json").read_text())
    assert "failed" not in summary

    # 1. demonstrations: the person drove every step; the twin saw each one succeed
    demos = summary["phases"]["demos"]
    assert demos["episodes"] == 3 and demos["unmatched_episodes"] == 0, demos
    assert demos["ground_truth_successes"] == 3 and demos["intervention_rate"] == 1.0, demos

    # 2. the classifier, trained on those episodes, with its held-out figures
    assert (out / "reward" / "report.json").is_file()
    assert 0.0 <= summary["classifier"]["validation"]["threshold"] <= 1.0

    # 3. online training: the person took over some steps, not all; the learner got them
    train = summary["phases"]["train"]
    assert train["episodes"] >= 1 and train["unmatched_episodes"] == 0, train
    assert 0 < train["intervened_steps"] < train["env_steps"], train
    assert train["learner"]["updates"] > 0 and train["over_time"], train
    online = ReplayBuffer.load(out / "learner" / "checkpoint" / "replay" / "online.npz")
    rows = min(online.rows_written, online.capacity)
    assert online.intervened[:rows].any() and not online.intervened[:rows].all()
    # the reward node's scores reached the actor; its verdicts are the rewards the learner holds
    with EpisodeStore.open(out / "train.zarr") as st:
        episodes = [st.episode(i, keys=("reward", "success_prob")) for i in range(len(st))]
        successes = sum(st.info(i).success for i in range(len(st)))
    assert any(np.isfinite(ep["success_prob"]).any() for ep in episodes)
    assert sum(int((ep["reward"] > 0).sum()) for ep in episodes) == successes
    # (an episode that ended after the learner's budget never reached it)
    assert int((online.task_reward[:rows] > 0).sum()) <= successes

    # 4. evaluation of the learner's checkpoint through the ROS actor, judged by the twin
    final = summary["phases"]["eval"]
    assert final["episodes"] == 2 and final["unmatched_episodes"] == 0, final
    assert final["intervened_steps"] == 0
    with EpisodeStore.open(out / "eval.zarr") as st:
        assert st.episode(0, keys=("policy_version",))["policy_version"][0] > 0

    # 5. the learning curve
    assert (out / "learning_curve.png").stat().st_size > 0
    assert json.loads(done.stdout.strip().splitlines()[-1])["summary"] == str(out / "summary.json")
