"""End to end over DDS and ZeroMQ: sim_robot and actor in separate processes, a learner endpoint in
this process, a scripted teleop publisher intervening mid-episode; the recorded episode flags
exactly those steps as intervened and the executed actions follow the operator."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TWIST_X = 0.05  # m/s from the operator -> action x = 0.05 * 0.1 s / 0.01 m = 0.5
STEPS = 60


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_sim_robot_actor_learner_with_a_scripted_intervention(
    tmp_path, rclpy_context, spin_until, start_node
):
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from rclpy.node import Node
    from std_msgs.msg import Bool, Float32

    from nodes.messages import pose_array, twist_msg
    from robot_rl.loop.run_config import load_run_config
    from robot_rl.store.episodes import EpisodeStore
    from robot_rl.transport.channels import LearnerServer

    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(
        yaml.safe_dump(
            {
                "task": "pick_cube",
                "env": {"max_episode_steps": STEPS},
                "sac": {"hidden": [64, 64]},
                "transport": {"batch_steps": 5},
            }
        )
    )
    run = load_run_config(run_yaml)
    endpoint = _free_endpoint()
    learner = LearnerServer(endpoint, run.data_hash()).start()
    store = tmp_path / "episodes.zarr"
    sim_proc = start_node(
        "nodes.sim_robot",
        ["-p", "profile:=privileged", "-p", "cameras:=['front']", "-p", "camera_fps:=1.0"],
        env={"MUJOCO_GL": "egl"},
    )
    # the privileged twin: the default run config's policy reads object_pose and wrench
    params = tmp_path / "actor.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "actor": {
                    "ros__parameters": {
                        "run_config": str(run_yaml),
                        "learner_endpoint": endpoint,
                        "store": str(store),
                        "spool_dir": str(tmp_path / "spool"),
                        "platform": "sim",
                        "episodes": 1,
                        "robot": {"wrench_topic": "wrench"},
                        "reset": {"object": "none"},
                    }
                }
            }
        )
    )
    actor_proc = start_node(
        "nodes.actor",
        ["--params-file", str(params)],
        env={"MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"},
    )

    node = Node("scripted_teleop", context=rclpy_context)
    twist_pub = node.create_publisher(TwistStamped, "teleop/twist", 10)
    flag_pub = node.create_publisher(Bool, "teleop/intervening", 10)
    gripper_pub = node.create_publisher(Float32, "teleop/gripper", 10)
    targets = []
    node.create_subscription(
        PoseStamped, "target_pose", lambda m: targets.append((time.time(), pose_array(m))), 10
    )
    assert spin_until(node, lambda: len(targets) > 0, 120.0), (
        actor_proc.output() + sim_proc.output()
    )

    first = targets[0][0]
    t_on, t_off = first + 2.0, first + 3.5
    messages = []
    sent_on: list[float] = []  # when each true flag was sent, and the first false after them
    sent_off = None
    while actor_proc.proc.poll() is None and time.time() < first + STEPS * 0.1 + 30:
        now = time.time()
        on = t_on <= now < t_off
        flag_pub.publish(Bool(data=on))
        if on:
            sent_on.append(now)
        elif sent_on and sent_off is None:
            sent_off = now
        # the operator keeps the device deflected and takes over by holding the button: the flag
        # alone switches, so no tick can pair a fresh flag with the twist from before it (topics are
        # not ordered)
        twist_pub.publish(twist_msg(np.array([TWIST_X, 0, 0, 0, 0, 0]), now, "world"))
        gripper_pub.publish(Float32(data=0.0))
        spin_until(node, lambda: False, 0.05)
        messages.extend(learner.receive())
    assert actor_proc.proc.wait(30) == 0, actor_proc.output()
    time.sleep(0.5)
    messages.extend(learner.receive())
    learner.close()

    with EpisodeStore.open(store) as st:
        assert len(st) == 1, actor_proc.output()
        ep = st.episode(0)
    T = len(ep["action"]) - 1
    assert T == STEPS or (ep["is_terminal"][-1] and T >= 50), f"{T} steps"
    stamps = ep["timestamp"]
    periods = np.diff(stamps[:-1])
    # paced at 10 Hz (the rate's precision is a benchmark figure: robot-rl bench ros)
    assert abs(np.median(periods) - 0.1) < 0.01, f"control period median {np.median(periods):.4f} s"

    flags = ep["intervened"][:T]
    on_steps = np.flatnonzero(flags)
    assert on_steps.size > 0, actor_proc.output()
    assert np.all(np.diff(on_steps) == 1), (
        f"one contiguous take-over, got steps {on_steps.tolist()}"
    )
    assert on_steps.size >= 5, f"{on_steps.size} intervened steps for a 1.5 s take-over"
    # exactly the steps observed while the operator held the flag, bounded by when the flags were
    # sent (this loop's own pace drifts under load). No step is flagged before the first true flag
    # existed; every step from 0.2 s after it until the last one is (message age on a loaded 2-core
    # machine: the latency figure itself is robot-rl bench ros's); none is 0.35 s after the first
    # false one
    assert sent_on and sent_off is not None
    inside = (stamps[:T] > sent_on[0] + 0.2) & (stamps[:T] < sent_on[-1])
    outside = (stamps[:T] < sent_on[0]) | (stamps[:T] > sent_off + 0.35)
    assert flags[inside].all() and not flags[outside].any(), (
        f"flags {flags.astype(int).tolist()} at "
        f"{np.round(stamps[:T] - sent_on[0], 2).tolist()} s from the first true flag"
    )
    # executed actions: the operator's on intervened steps, the policy's elsewhere
    np.testing.assert_allclose(
        ep["action"][on_steps], np.tile([0.5, 0, 0, 0, 0, 0, 0], (on_steps.size, 1)), atol=1e-5
    )
    off = np.flatnonzero(~flags)
    np.testing.assert_allclose(
        ep["action"][off], np.clip(ep["policy_action"][off], -1, 1), atol=1e-6
    )
    assert not np.allclose(ep["policy_action"][on_steps], ep["action"][on_steps])
    # and the robot followed the operator: +x on (nearly) every intervened step. How far is not
    # asserted: the twin runs in real time, and a CPU-starved twin (three processes on two cores in
    # CI) resynchronises and loses simulated time, so the distance per step depends on the machine's
    # load; tracking accuracy is tests/nodes/test_sim_robot_node.py's subject
    x = ep["tcp_pose"][on_steps[0] : on_steps[-1] + 3, 0]
    steps_x = np.diff(x)
    assert np.mean(steps_x > 0) >= 0.8 and x[-1] - x[0] > 0.005, (
        f"x per step during the take-over (mm): {np.round(steps_x * 1000, 1).tolist()}"
    )

    # the learner got the same rows over ZeroMQ, flags included
    rows = [m for m in messages if m.kind == "transitions"]
    assert rows, "no transitions reached the learner"
    got_flags = np.concatenate([m.arrays["intervened"] for m in rows])
    got_steps = np.concatenate([m.arrays["step"] for m in rows])
    assert np.array_equal(got_flags[np.argsort(got_steps, kind="stable")], ep["intervened"])
    assert "operator take over at step" in actor_proc.output()
