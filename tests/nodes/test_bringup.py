"""`robot-rl bringup sim`: the robot's node set with the twin standing in for robot, cameras and
the person, as separate processes talking over DDS: the actor resets, the twin operator re-places
the object and presses reset, and a demonstration starts; nothing waits on a missing topic."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO / "config" / "ros_sim.yaml"


def test_bringup_sim_starts_the_node_set(tmp_path, ros_domain, rclpy_context, spin_until):
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, String

    from nodes.robot_env import ACTOR_STATE_QOS

    params = yaml.safe_load(REPO_CONFIG.read_text())  # the shipped file, pointed at temporary paths
    run_config = str(REPO / params["actor"]["ros__parameters"]["run_config"])
    params["twin_operator"]["ros__parameters"]["run_config"] = run_config
    params["actor"]["ros__parameters"].update(
        run_config=run_config,
        store=str(tmp_path / "episodes.zarr"),
        spool_dir=str(tmp_path / "spool"),
    )
    config = tmp_path / "ros_sim.yaml"
    config.write_text(yaml.safe_dump(params))
    log = open(tmp_path / "bringup.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "bringup", "sim", "--config", str(config)],
        env={**ros_domain, "OMP_NUM_THREADS": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    node = Node("bringup_listener", context=rclpy_context)
    seen = {"joint_states": 0, "teleop/intervening": 0, "target_pose": 0, "running": 0}
    states = []
    node.create_subscription(
        JointState,
        "joint_states",
        lambda m: seen.update({"joint_states": 1}),
        qos_profile_sensor_data,
    )
    node.create_subscription(
        Bool, "teleop/intervening", lambda m: seen.update({"teleop/intervening": 1}), 10
    )
    node.create_subscription(
        PoseStamped, "target_pose", lambda m: seen.update({"target_pose": 1}), 10
    )

    def on_state(msg: String) -> None:
        states.append(msg.data)
        seen["running"] = int(msg.data == "running")

    node.create_subscription(String, "actor/state", on_state, ACTOR_STATE_QOS)
    try:
        ok = spin_until(node, lambda: all(seen.values()) or proc.poll() is not None, 240.0)
        output = (tmp_path / "bringup.log").read_text()
        assert ok and proc.poll() is None, output
        assert all(seen.values()), (seen, states, output)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        log.close()
    output = (tmp_path / "bringup.log").read_text()
    for name in ("sim_robot", "twin_operator", "reward", "actor"):
        assert f"bringup: started {name}" in output
    assert states[:3] == ["resetting", "waiting_for_object", "running"], states
    assert "no model_dir" in output  # no classifier yet: said, and success from the operator
    assert "start-up: nothing arrived" not in output
    assert code == 130
