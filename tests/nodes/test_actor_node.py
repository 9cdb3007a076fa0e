"""The actor node in its own process against a scripted CRISP cell (tests/nodes/test_robot_env.py)
in this one: a demonstration driven by the operator's teleop topics, ended by the success event,
committed to the episode store as source `demo`."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_mode_records_an_operator_driven_episode(tmp_path, rclpy_context, start_node):
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool, Float32, String
    from test_robot_env import HOME, ScriptedRobot

    from nodes.messages import twist_msg
    from robot_rl.store.episodes import EpisodeStore

    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(
        yaml.safe_dump(
            {
                "task": "pick_cube",
                "env": {"max_episode_steps": 200, "privileged_state": False},
                "demos": 0,
                "sac": {"hidden": [32, 32], "proprio_keys": ["tcp_pose", "gripper_width"]},
            }
        )
    )
    store = tmp_path / "episodes.zarr"
    params = tmp_path / "actor.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "actor": {
                    "ros__parameters": {
                        "run_config": str(run_yaml),
                        "learner_endpoint": "none",
                        "store": str(store),
                        "spool_dir": str(tmp_path / "spool"),
                        "episodes": 1,
                        "mode": "demo",
                        "robot": {"success_topic": ""},  # success from the operator's event
                        "reset": {"object": "none", "home_pose": HOME},
                    }
                }
            }
        )
    )
    args = ["--params-file", str(params)]
    actor = start_node("nodes.actor", args, env={"OMP_NUM_THREADS": "1"})

    robot = ScriptedRobot(rclpy_context)
    node = robot.node
    twist_pub = node.create_publisher(TwistStamped, "teleop/twist", 10)
    flag_pub = node.create_publisher(Bool, "teleop/intervening", 10)
    gripper_pub = node.create_publisher(Float32, "teleop/gripper", 10)
    event_pub = node.create_publisher(
        String, "teleop/event", QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    )
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while len(robot.targets) < 25 and actor.proc.poll() is None:
            assert time.monotonic() < deadline, actor.output()
            # the operator pushes +x (0.05 m/s -> action 0.5) and closes the gripper, without
            # holding the intervene button: in a demonstration the operator drives anyway
            twist_pub.publish(twist_msg(np.array([0.05, 0, 0, 0, 0, 0]), time.time(), "world"))
            flag_pub.publish(Bool(data=False))
            gripper_pub.publish(Float32(data=1.0))
            time.sleep(0.05)
        event_pub.publish(String(data="success"))
        assert actor.proc.wait(30) == 0, actor.output()
    finally:
        executor.shutdown()

    with EpisodeStore.open(store) as st:
        assert len(st) == 1, actor.output()
        info, ep = st.info(0), st.episode(0)
    assert info.source == "demo" and info.success, info
    T = len(ep["action"]) - 1
    assert ep["is_terminal"][-1] and 10 <= T < 200, T
    assert ep["intervened"][:T].all()
    moving = ep["action"][2:T]  # the first ticks may precede the operator's first twist
    np.testing.assert_allclose(moving[:, :6], np.tile([0.5, 0, 0, 0, 0, 0], (len(moving), 1)))
    assert (moving[:, 6] == 1.0).all() and robot.gripper[-1] == 0.0  # closed: finger target 0
    assert not np.allclose(ep["policy_action"][:T], ep["action"][:T])  # the proposal, recorded
    assert ep["tcp_pose"][T, 0] > HOME[0] + 0.005 * (T - 4)
