"""The real cell's workflow, every step on the outputs of the step before, against the twin in its
real-cell profile, over DDS and ZeroMQ with real processes:

1. bring-up: sim_robot (real_cell) + twin_operator + actor, nothing waits on a missing topic;
2. demonstrations: twin_operator(demo) drives the actor(demo) -> demo episodes in a store;
3. `robot-rl reward train` on that store (front + wrist, TCP height from current_pose);
4. `robot-rl learner` preloading the demo store (`offline:`), fed by the actor in train mode with
   the reward node on the trained model and twin_operator(intervene);
5. `robot-rl eval` of the learner's checkpoint in the twin, and the actor in eval mode on it;
6. `robot-rl replay` of one of the ROS actor's episodes (from its recorded joints).
The stack's nodes (actor, reward) read no ground truth; only this test and the twin operator do.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ros_graph import ground_truth_readers

from controllers.config import merge_dicts
from robot_rl.loop.train_job import free_endpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EPISODE_STEPS = 100
NODE_ENV = {"MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}


def _run_config(tmp_path: Path, endpoint: str, demo_store: Path) -> Path:
    """config/real_pick_cube.yaml, shrunk to a short CPU budget (small images and networks)."""
    shipped = yaml.safe_load((REPO / "config" / "real_pick_cube.yaml").read_text())
    run = merge_dicts(
        shipped,
        {
            # a control tick may stall for a second while six processes share two cores: the
            # watchdog's bound is the robot PC's business, not this workflow's
            "env": {
                "image_size": [64, 64],
                "max_episode_steps": EPISODE_STEPS,
                "safety": {"command_timeout_s": 3.0},
            },
            "sac": {
                "hidden": [32, 32],
                "num_critics": 2,
                "matmul_dtype": "float32",
                "image": {"dtype": "float32", "cache_shifts": 0, "embed_dim": 16},
            },
            "learner": {
                "batch_size": 8,
                "learning_starts": 10,
                "publish_every": 5,
                "progress_every_s": 1.0,
            },
            "transport": {"endpoint": endpoint, "batch_steps": 5},
            "operator": {"stall_steps": 4, "drift_steps": 3, "takeover_steps": 6},
            "offline": [{"store": str(demo_store), "source": ["demo"]}],
        },
    )
    path = tmp_path / "real_pick_cube.yaml"
    path.write_text(yaml.safe_dump(run))
    return path


def _params(tmp_path: Path, name: str, node: str, **overrides) -> Path:
    """config/ros_sim.yaml's section for `node`, with `overrides` merged in."""
    shipped = yaml.safe_load((REPO / "config" / "ros_sim.yaml").read_text())[node]
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {node: merge_dicts(shipped, {"ros__parameters": overrides})}, sort_keys=False
        )
    )
    return path


def _cli(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", *args],
        cwd=REPO,
        env={**env, **NODE_ENV},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Table:
    """The test's own view of the twin: ground truth and the actor's state, never the stack's."""

    def __init__(self, node):
        from rclpy.qos import qos_profile_sensor_data
        from std_msgs.msg import Bool, String

        from nodes.robot_env import ACTOR_STATE_QOS

        self.states: list[str] = []
        self.success = False
        self.successes_while_running = 0
        node.create_subscription(String, "actor/state", self._on_state, ACTOR_STATE_QOS)
        node.create_subscription(Bool, "twin/success", self._on_success, qos_profile_sensor_data)

    def _on_state(self, msg) -> None:
        self.states.append(msg.data)

    def _on_success(self, msg) -> None:
        episode = self.states and self.states[-1] in ("running", "holding")
        if msg.data and not self.success and episode:
            self.successes_while_running += 1
        self.success = bool(msg.data)


def _wait_exit(spin_until, node, proc, timeout: float) -> int:
    spin_until(node, lambda: proc.proc.poll() is not None, timeout)
    assert proc.proc.poll() is not None, f"still running after {timeout} s:\n" + proc.output()
    return proc.proc.returncode


def test_real_cell_workflow_on_the_twin(
    tmp_path, ros_domain, rclpy_context, spin_until, start_node
):
    from rclpy.node import Node

    from robot_rl.agents.replay_buffer import ReplayBuffer
    from robot_rl.store.episodes import EpisodeStore

    endpoint = free_endpoint()
    demo_store, train_store = tmp_path / "demo.zarr", tmp_path / "train.zarr"
    run_yaml = _run_config(tmp_path, endpoint, demo_store)
    node = Node("workflow_harness", context=rclpy_context)
    table = Table(node)

    # 1. bring-up: the twin as a real cell (its front and wrist cameras), the scripted person
    sim = start_node(
        "nodes.sim_robot",
        [
            "--params-file",
            str(_params(tmp_path, "sim", "sim_robot", image_size=[64, 64], camera_fps=10.0)),
        ],
        env=NODE_ENV,
    )

    def actor(name: str, **overrides):
        params = _params(
            tmp_path,
            name,
            "actor",
            run_config=str(run_yaml),
            spool_dir=str(tmp_path / f"spool_{name}"),
            **overrides,
        )
        return start_node("nodes.actor", ["--params-file", str(params)], env=NODE_ENV)

    def operator(name: str, **overrides):
        params = _params(tmp_path, name, "twin_operator", run_config=str(run_yaml), **overrides)
        return start_node("nodes.twin_operator", ["--params-file", str(params)], env=NODE_ENV)

    # 2. demonstrations: the person drives every step, success marked by their event
    demo_operator = operator("operator_demo", mode="demo")
    demo_actor = actor("actor_demo", mode="demo", episodes=3, store=str(demo_store))
    assert spin_until(node, lambda: "running" in table.states, 180.0), (
        demo_actor.output() + sim.output()
    )
    assert ground_truth_readers(node, ["/actor"]) == {}
    assert _wait_exit(spin_until, node, demo_actor, 240.0) == 0, demo_actor.output()
    assert "start-up: nothing arrived" not in demo_actor.output()
    demo_operator.stop()
    with EpisodeStore.open(demo_store) as st:
        infos = [st.info(i) for i in range(len(st))]
        episodes = [st.episode(i) for i in range(len(st))]
        keys = set(st.keys)
    assert len(infos) == 3, demo_actor.output()
    assert all(i.source == "demo" and i.platform == "sim" for i in infos)
    assert all(i.success for i in infos), (infos, demo_operator.log_path.read_text())
    assert table.successes_while_running >= 3  # the twin agrees: the cube was lifted each time
    for ep in episodes:
        assert ep["intervened"][:-1].all()  # the operator drove every step
        assert ep["is_terminal"][-1] and ep["reward"][-2] == 1.0  # ended by the success event
        assert len(ep["action"]) - 1 < EPISODE_STEPS
    assert {"image_front", "image_wrist", "tcp_pose", "joint_pos"} <= keys
    assert "object_pose" not in keys or all(not ep["object_pose"].any() for ep in episodes)

    # 3. the success classifier from the demonstrations: front + wrist, TCP height
    reward_cfg = tmp_path / "reward.yaml"
    reward_cfg.write_text(
        yaml.safe_dump(
            {
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
            }
        )
    )
    model_dir = tmp_path / "reward_model"
    done = _cli(
        ["reward", "train", "--store", str(demo_store), "--out", str(model_dir)]
        + ["--config", str(reward_cfg)],
        ros_domain,
        300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (model_dir / "report.json").is_file()

    # 4. the learner: demonstrations preloaded, the actor streaming, the person intervening
    learner_dir = tmp_path / "learner"
    learner_log = open(tmp_path / "learner.log", "w")
    learner = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "learner", "--config", str(run_yaml)]
        + ["--out", str(learner_dir)],
        cwd=REPO,
        env={**ros_domain, **NODE_ENV},
        stdout=learner_log,
        stderr=subprocess.STDOUT,
    )
    reward = start_node(
        "nodes.reward",
        ["--params-file", str(_params(tmp_path, "reward", "reward", model_dir=str(model_dir)))],
        env=NODE_ENV,
    )
    train_operator = operator("operator_intervene", mode="intervene", mark_success=False)
    train_actor = actor(
        "actor_train",
        mode="train",
        episodes=2,
        store=str(train_store),
        learner_endpoint=endpoint,
        robot={"success_topic": "reward/success_prob", "base_frame": "world"},
    )
    runs_before = table.states.count("running")
    try:
        assert spin_until(node, lambda: table.states.count("running") > runs_before, 180.0), (
            train_actor.output() + reward.output()
        )
        readers = ground_truth_readers(node, ["/actor", "/reward"])
        assert readers == {}, readers
        assert _wait_exit(spin_until, node, train_actor, 240.0) == 0, train_actor.output()
    finally:
        learner.send_signal(signal.SIGINT)  # the learner checkpoints on SIGINT
        learner.wait(120)
        learner_log.close()
        train_operator.stop()
        reward.stop()
    learner_out = (tmp_path / "learner.log").read_text()
    assert learner.returncode == 0, learner_out
    learner_log_file = (learner_dir / "train.log").read_text()
    assert "preloaded 3 episodes (3 demonstrations)" in learner_log_file, learner_log_file
    # what reached the learner: its final checkpoint holds the online buffer (the journal is
    # pruned once a checkpoint covers it); nothing was rejected on the way
    assert " faults " not in learner_out, learner_out
    online = ReplayBuffer.load(learner_dir / "checkpoint" / "replay" / "online.npz")
    filled = min(online.rows_written, online.capacity)
    assert filled > 0, learner_out
    intervened = online.intervened[:filled]
    assert intervened.any() and not intervened.all(), intervened.astype(int).tolist()
    with EpisodeStore.open(train_store) as st:
        assert len(st) == 2
        assert all(st.info(i).source != "demo" for i in range(2))
        prob = np.concatenate([st.episode(i)["success_prob"] for i in range(2)])
    # the reward node scored the steps (a step whose newest score is older than the actor's
    # stale_s keeps NaN): the real-cell twin publishes no success of its own
    scored = prob[np.isfinite(prob)]
    assert scored.size > 0 and ((scored >= 0) & (scored <= 1)).all(), prob.tolist()

    # 5. evaluation of the learner's checkpoint: in the twin directly, then through the ROS actor
    checkpoint = learner_dir / "checkpoint"
    done = _cli(["eval", str(checkpoint), "--episodes", "1"], ros_domain, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["episodes"] == 1

    watch_operator = operator("operator_watch", mode="watch")
    table.successes_while_running = 0
    runs_before = table.states.count("running")
    eval_actor = actor(
        "actor_eval",
        mode="eval",
        episodes=1,
        checkpoint=str(checkpoint),
        store=str(tmp_path / "eval.zarr"),
    )
    assert _wait_exit(spin_until, node, eval_actor, 240.0) == 0, eval_actor.output()
    watch_operator.stop()
    assert f"policy from checkpoint {checkpoint}" in eval_actor.output()
    assert table.states.count("running") > runs_before
    with EpisodeStore.open(tmp_path / "eval.zarr") as st:
        ep = st.episode(0)
    assert not ep["intervened"].any()  # no interventions in eval mode
    assert ep["policy_version"][0] > 0  # the learner's weights, not a fresh policy
    # scored by the twin's ground truth, which only this harness reads
    print(f"ROS actor eval: twin success {table.successes_while_running > 0}")

    # a checkpoint of another task: one message naming it, nothing started
    foreign = tmp_path / "foreign_checkpoint"
    shutil.copytree(checkpoint, foreign)
    config = json.loads((foreign / "config.json").read_text())
    config["run"]["task"] = "peg_insert"
    (foreign / "config.json").write_text(json.dumps(config))
    refused = actor("actor_foreign", mode="eval", episodes=1, checkpoint=str(foreign))
    assert refused.proc.wait(120) == 2, refused.output()
    assert "trained on task 'peg_insert'" in refused.output()

    # 6. replay of a ROS actor's episode in the twin, from its recorded joint configuration
    done = _cli(
        ["replay", str(train_store), "--episode", "0", "--out", str(tmp_path / "replay")],
        ros_domain,
        300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "replay" / "replay.json").read_text())
    assert report["start"] == "joints" and report["platform"] == "sim", report
    assert sim.proc.poll() is None, sim.output()
