"""sim_robot's two profiles: real_cell offers exactly a real cell's interface plus the twin/
ground truth, privileged adds exactly its extras; twin/place_object and twin/success; the
ground-truth-reader check of the graph."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ros_graph import ground_truth_readers, node_interfaces

pytestmark = pytest.mark.ros

POSE = ["geometry_msgs/msg/PoseStamped"]
TRIGGER = ["std_srvs/srv/Trigger"]


def _real_cell(ns: str) -> dict[str, dict[str, list[str]]]:
    """What a real cell offers under namespace `ns`, plus the twin's ground truth."""
    cameras = {}
    for cam in ("front", "wrist"):
        cameras[f"{ns}/cameras/{cam}/image_raw"] = ["sensor_msgs/msg/Image"]
        cameras[f"{ns}/cameras/{cam}/camera_info"] = ["sensor_msgs/msg/CameraInfo"]
    return {
        "publishers": {
            f"{ns}/joint_states": ["sensor_msgs/msg/JointState"],
            f"{ns}/current_pose": POSE,
            **cameras,
            f"{ns}/twin/object_pose": POSE,
            f"{ns}/twin/success": ["std_msgs/msg/Bool"],
        },
        "subscribers": {
            f"{ns}/target_pose": POSE,
            f"{ns}/gripper_position_controller/commands": ["std_msgs/msg/Float64MultiArray"],
        },
        "services": {f"{ns}/twin/place_object": TRIGGER, f"{ns}/twin/reset": TRIGGER},
        "clients": {},
    }


WRENCH = ["geometry_msgs/msg/WrenchStamped"]
PRIVILEGED_EXTRAS = {
    "object_pose": POSE,
    "reward/success_prob": ["std_msgs/msg/Float32"],
    "current_twist": ["geometry_msgs/msg/TwistStamped"],
    "wrench": WRENCH,
}


def _interfaces(graph, full_name: str) -> dict[str, dict[str, list[str]]] | None:
    try:
        found = node_interfaces(graph, full_name)
    except LookupError:
        return None
    return {k: getattr(found, k) for k in ("publishers", "subscribers", "services", "clients")}


def _covers(found, expected) -> bool:
    return found is not None and all(set(expected[k]) <= set(found[k]) for k in expected)


def test_profiles_offer_exactly_their_interfaces(rclpy_context, spin_until, start_node):
    from rclpy.node import Node

    light = ["-p", "state_hz:=20.0", "-p", "camera_fps:=1.0", "-p", "image_size:=[32, 32]"]
    expected = {"/rc/sim_robot": _real_cell("/rc"), "/ft/sim_robot": _real_cell("/ft")}
    expected["/ft/sim_robot"]["publishers"]["/ft/wrench"] = WRENCH
    expected["/priv/sim_robot"] = _real_cell("/priv")
    for topic, types in PRIVILEGED_EXTRAS.items():
        expected["/priv/sim_robot"]["publishers"][f"/priv/{topic}"] = types
    procs = [
        start_node("nodes.sim_robot", ["-r", "__ns:=/rc", *light], env={"MUJOCO_GL": "egl"}),
        start_node(
            "nodes.sim_robot",
            ["-r", "__ns:=/ft", "-p", "ft_sensor:=true", *light],
            env={"MUJOCO_GL": "egl"},
        ),
        start_node(
            "nodes.sim_robot",
            ["-r", "__ns:=/priv", "-p", "profile:=privileged", *light],
            env={"MUJOCO_GL": "egl"},
        ),
    ]
    graph = Node("graph_probe", context=rclpy_context)
    discovered = spin_until(
        graph,
        lambda: all(_covers(_interfaces(graph, n), e) for n, e in expected.items()),
        90.0,
    )
    assert discovered, ({n: _interfaces(graph, n) for n in expected}, [p.output() for p in procs])
    spin_until(graph, lambda: False, 1.0)  # anything more would have been discovered by now
    for name, want in expected.items():
        assert _interfaces(graph, name) == want, name
    # the twin serves and publishes its ground truth, it never reads it
    assert ground_truth_readers(graph, list(expected)) == {}


def test_ground_truth_readers_names_the_nodes_that_read_it(rclpy_context, spin_until):
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    graph = Node("graph_probe", context=rclpy_context)
    reader = Node("reader", namespace="/left", context=rclpy_context)
    reader.create_subscription(Bool, "twin/success", lambda _: None, 10)
    tracker_reader = Node("tracker_reader", context=rclpy_context)
    tracker_reader.create_subscription(PoseStamped, "object_pose", lambda _: None, 10)
    harness = Node("harness", context=rclpy_context)
    harness.create_client(Trigger, "twin/place_object")
    clean = Node("clean", context=rclpy_context)
    clean.create_subscription(PoseStamped, "current_pose", lambda _: None, 10)
    clean.create_publisher(PoseStamped, "object_pose", 10)  # publishing is not reading
    clean.create_service(Trigger, "twin/reset", lambda _, r: r)  # nor is serving
    names = ["/left/reader", "tracker_reader", "harness", "clean"]
    assert spin_until(graph, lambda: len(ground_truth_readers(graph, names)) == 3, 10.0)
    assert ground_truth_readers(graph, names) == {
        "/left/reader": ["/left/twin/success"],
        "tracker_reader": ["/object_pose"],
        "harness": ["/twin/place_object"],
    }
    assert _interfaces(graph, "clean")["subscribers"] == {"/current_pose": POSE}
    with pytest.raises(LookupError, match="not in the ROS graph"):
        ground_truth_readers(graph, ["actor"])


def test_place_object_moves_the_object_not_the_arm_and_success_follows_the_task(
    rclpy_context, spin_until, start_node
):
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Float64MultiArray
    from std_srvs.srv import Trigger

    from controllers.se3 import quat_mul
    from nodes.messages import gripper_command_msg, pose_array, pose_msg
    from sim.experts.base import DOWN, nearest_symmetric_yaw, tcp_yaw
    from sim.experts.pick_cube import GRASP_Z
    from sim.tasks.base import quat_yaw, yaw_quat

    proc = start_node(
        "nodes.sim_robot",
        ["-p", "cameras:=[front]", "-p", "camera_fps:=1.0", "-p", "image_size:=[32, 32]"],
        env={"MUJOCO_GL": "egl"},
    )
    node = Node("harness", context=rclpy_context)
    latest: dict[str, object] = {}
    for topic, kind in (
        ("current_pose", PoseStamped),
        ("twin/object_pose", PoseStamped),
        ("joint_states", JointState),
        ("twin/success", Bool),
    ):
        node.create_subscription(
            kind, topic, lambda m, t=topic: latest.__setitem__(t, m), qos_profile_sensor_data
        )
    target_pub = node.create_publisher(PoseStamped, "target_pose", 10)
    gripper_pub = node.create_publisher(
        Float64MultiArray, "gripper_position_controller/commands", 10
    )
    place = node.create_client(Trigger, "twin/place_object")
    assert spin_until(node, lambda: len(latest) == 4 and place.service_is_ready(), 60.0), (
        proc.output()
    )

    def call(client) -> None:
        future = client.call_async(Trigger.Request())
        assert spin_until(node, future.done, 15.0)
        assert future.result().success, future.result().message

    def now(topic: str) -> np.ndarray:
        spin_until(node, lambda: False, 0.2)
        msg = latest[topic]
        return pose_array(msg) if isinstance(msg, PoseStamped) else np.array(msg.position[:7])

    tcp, joints, cube = now("current_pose"), now("joint_states"), now("twin/object_pose")
    call(place)
    placed = now("twin/object_pose")
    assert np.linalg.norm(placed[:2] - cube[:2]) > 0.005, (cube, placed)
    assert np.linalg.norm(now("current_pose")[:3] - tcp[:3]) < 1e-3
    assert np.abs(now("joint_states") - joints).max() < 1e-3
    assert latest["twin/success"].data is False

    # pick the cube where it now lies, through target_pose and the CRISP gripper command only
    yaw = nearest_symmetric_yaw(quat_yaw(placed[3:]), tcp_yaw(tcp[3:]))
    down = quat_mul(yaw_quat(yaw), DOWN)

    def send(xyz, finger: float, seconds: float, until=lambda: False) -> bool:
        """Publish the target and finger position at 10 Hz, as the actor does, for `seconds` or
        until `until()` holds."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            target_pub.publish(pose_msg(np.r_[xyz, down], time.time()))
            gripper_pub.publish(gripper_command_msg(finger))
            spin_until(node, lambda: False, 0.1)
            if until():
                return True
        return False

    def go(xyz, finger: float, tol: float = 0.004) -> None:
        def reached() -> bool:
            return np.linalg.norm(pose_array(latest["current_pose"])[:3] - xyz) < tol

        assert send(xyz, finger, 15.0, reached), (xyz, pose_array(latest["current_pose"]))

    go(np.r_[placed[0], placed[1], placed[2] + 0.07], 0.04)
    go(np.r_[placed[0], placed[1], GRASP_Z], 0.04)
    send(np.r_[placed[0], placed[1], GRASP_Z], 0.0, 1.0)  # close on the cube
    assert latest["twin/success"].data is False
    lifted = send(np.r_[placed[0], placed[1], 0.25], 0.0, 15.0, lambda: latest["twin/success"].data)
    assert lifted, (now("twin/object_pose"), pose_array(latest["current_pose"]))


def test_gripper_position_maps_to_the_nearer_end_and_config_is_checked():
    from controllers.config import ConfigError, from_dict
    from nodes.sim_robot import SimRobotConfig, gripper_value

    positions = (0.0, 0.019, 0.021, 0.04, 0.08)
    assert [gripper_value(p, 0.0, 0.04) for p in positions] == [1.0, 1.0, -1.0, -1.0, -1.0]
    assert gripper_value(0.9, 1.0, 0.0) == 1.0  # a gripper whose closed position is the larger
    assert from_dict(SimRobotConfig, {}).profile == "real_cell"
    for bad, match in (
        ({"profile": "robot"}, "profile"),
        ({"finger_joints": ["fr3_finger_joint1"]}, "finger_joints: expected 2"),
        ({"arm_joints": ["j"] * 7}, "arm_joints: expected 7 distinct"),
        ({"finger_joints": ["panda_joint7", "f2"]}, "also named in arm_joints"),
        ({"gripper_open_position": 0.0}, "two different finite finger positions"),
        ({"base_frame": ""}, "base_frame"),
    ):
        with pytest.raises(ConfigError, match=match):
            from_dict(SimRobotConfig, bad)
