"""sim_robot in its own process: real-time state topics, following target_pose and the CRISP
gripper command, cameras, twin/reset, non-finite targets and a second target_pose publisher
refused."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_sim_robot_follows_targets_in_real_time(rclpy_context, spin_until, start_node):
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import Bool, Float64MultiArray
    from std_srvs.srv import Trigger

    from nodes.messages import gripper_command_msg, image_array, pose_array, pose_msg

    proc = start_node(
        "nodes.sim_robot",
        [
            "-p",
            "cameras:=[front]",
            "-p",
            "camera_fps:=10.0",
            "-p",
            "image_size:=[96, 128]",
            "-p",
            "base_frame:=base",
            "-p",
            "finger_joints:=[fr3_finger_joint1, fr3_finger_joint2]",
        ],
        env={"MUJOCO_GL": "egl"},
    )
    node = Node("sim_robot_listener", context=rclpy_context)
    got = {"joints": [], "pose": [], "frame": [], "image": [], "info": [], "success": []}

    def on_pose(msg: PoseStamped) -> None:
        got["pose"].append(pose_array(msg))
        got["frame"].append(msg.header.frame_id)

    node.create_subscription(
        JointState,
        "joint_states",
        lambda m: got["joints"].append((time.monotonic(), m)),
        qos_profile_sensor_data,
    )
    node.create_subscription(
        PoseStamped,
        "current_pose",
        on_pose,
        qos_profile_sensor_data,
    )
    node.create_subscription(
        Image, "cameras/front/image_raw", got["image"].append, qos_profile_sensor_data
    )
    node.create_subscription(
        CameraInfo, "cameras/front/camera_info", got["info"].append, qos_profile_sensor_data
    )
    node.create_subscription(Bool, "twin/success", got["success"].append, qos_profile_sensor_data)
    target_pub = node.create_publisher(PoseStamped, "target_pose", 10)
    gripper_pub = node.create_publisher(
        Float64MultiArray, "gripper_position_controller/commands", 10
    )
    assert spin_until(node, lambda: len(got["joints"]) > 20 and got["image"], 60.0), proc.output()

    # paced by the wall clock at state_hz (100): never faster (free-running would be ~10x that);
    # slower only when the CPU is starved, which the node logs (the rate itself is not a test
    # target)
    first = len(got["joints"])
    spin_until(node, lambda: False, 2.0)
    times = [t for t, _ in got["joints"][first:]]
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 40 <= rate <= 105, f"state rate {rate:.1f} Hz"
    assert rate >= 90 or "behind real time" in proc.output()
    joint = got["joints"][-1][1]
    assert joint.name == [f"panda_joint{i}" for i in range(1, 8)] + [
        "fr3_finger_joint1",
        "fr3_finger_joint2",
    ]
    assert len(joint.position) == 9 and got["frame"][-1] == "base"
    img = image_array(got["image"][-1])
    assert img.shape == (96, 128, 3) and img.std() > 5  # a rendered scene, not a blank frame
    assert got["info"][-1].width == 128 and got["info"][-1].k[0] > 0
    assert got["success"][-1].data is False
    open_width = sum(joint.position[7:])
    assert open_width > 0.07

    # the CRISP gripper command: one finger position; nearer closed (0.0) than open (0.04) closes
    for _ in range(10):
        gripper_pub.publish(gripper_command_msg(0.005))
        spin_until(node, lambda: False, 0.1)
    assert sum(got["joints"][-1][1].position[7:]) < 0.01
    for _ in range(10):
        gripper_pub.publish(gripper_command_msg(0.03))
        spin_until(node, lambda: False, 0.1)
    assert sum(got["joints"][-1][1].position[7:]) > open_width - 0.005
    gripper_pub.publish(Float64MultiArray(data=[0.0, 0.0]))
    spin_until(node, lambda: "expected one finite finger position" in proc.output(), 5.0)
    assert sum(got["joints"][-1][1].position[7:]) > open_width - 0.005

    # follow a target 4 cm away along +x, within the 0.2 m/s speed limit
    start = got["pose"][-1].copy()
    target = start.copy()
    target[0] += 0.04
    for _ in range(15):
        target_pub.publish(pose_msg(target, time.time()))
        spin_until(node, lambda: False, 0.1)
    assert np.linalg.norm(got["pose"][-1][:3] - target[:3]) < 0.01, (start, got["pose"][-1])

    # a non-finite target is ignored: the twin holds where it is
    held = got["pose"][-1].copy()
    bad = target.copy()
    bad[1] = np.nan
    for _ in range(5):
        target_pub.publish(pose_msg(bad, time.time()))
        spin_until(node, lambda: False, 0.1)
    assert (
        np.all(np.isfinite(got["pose"][-1]))
        and np.linalg.norm(got["pose"][-1][:3] - held[:3]) < 0.005
    )
    assert "non-finite position" in proc.output() and "holding the last target" in proc.output()

    # a target far outside the workspace is nonsense, not a request to go to the workspace's edge
    spin_until(node, lambda: False, 1.1)  # refusals on one topic are named once a second
    far = held.copy()
    far[0] += 5.0
    for _ in range(5):
        target_pub.publish(pose_msg(far, time.time()))
        spin_until(node, lambda: False, 0.1)
    assert np.linalg.norm(got["pose"][-1][:3] - held[:3]) < 0.005
    spin_until(node, lambda: "outside the safety workspace" in proc.output(), 2.0)
    assert "outside the safety workspace" in proc.output()

    # a second publisher on target_pose: targets are refused and the twin holds
    intruder = Node("intruder", context=rclpy_context)
    intruder_pub = intruder.create_publisher(PoseStamped, "target_pose", 10)
    away = held.copy()
    away[2] += 0.05
    spin_until(node, lambda: False, 1.0)  # discovery of the second publisher
    for _ in range(10):
        intruder_pub.publish(pose_msg(away, time.time()))
        spin_until(node, lambda: False, 0.05)
    assert abs(got["pose"][-1][2] - held[2]) < 0.005
    assert "refusing target_pose: 2 publishers" in proc.output()
    intruder.destroy_node()

    # twin/reset: a new episode starts back near home
    client = node.create_client(Trigger, "twin/reset")
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(Trigger.Request())
    assert spin_until(node, future.done, 15.0)
    assert future.result().success, future.result().message
    spin_until(node, lambda: False, 0.3)
    assert np.linalg.norm(got["pose"][-1][:3] - start[:3]) < 0.02
    assert proc.proc.poll() is None
