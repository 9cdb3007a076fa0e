"""`robot-rl bringup sim`: the launch file's node set as separate processes, talking over DDS."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "ros_sim.yaml"


def test_bringup_sim_starts_the_node_set(tmp_path, ros_domain, rclpy_context, spin_until):
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool

    params = yaml.safe_load(REPO_CONFIG.read_text())  # the shipped file, pointed at temporary paths
    params["sim_robot"]["ros__parameters"].update(cameras=["front"], camera_fps=2.0)
    params["teleop"]["ros__parameters"]["device"] = str(tmp_path / "no_spacemouse")
    params["actor"]["ros__parameters"].update(
        store=str(tmp_path / "episodes.zarr"), spool_dir=str(tmp_path / "spool")
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
    seen = {"joint_states": 0, "teleop/intervening": 0, "target_pose": 0}
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
    try:
        ok = spin_until(node, lambda: all(seen.values()) or proc.poll() is not None, 150.0)
        output = (tmp_path / "bringup.log").read_text()
        assert ok and proc.poll() is None, output
        assert all(seen.values()), (seen, output)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        log.close()
    output = (tmp_path / "bringup.log").read_text()
    for name in ("sim_robot", "teleop", "actor"):
        assert f"bringup: started {name}" in output
    assert (
        "spacemouse unavailable" in output
    )  # no device here: reported, and the node keeps running
    assert code == 130
