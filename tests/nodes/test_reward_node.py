"""reward node in its own process: camera frames in, the classifier's probabilities out."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    from robot_rl.reward.classifier import ClassifierConfig, SuccessClassifier

    torch.manual_seed(0)
    torch.set_num_threads(1)
    return SuccessClassifier(ClassifierConfig(), threshold=0.5).save(
        tmp_path_factory.mktemp("reward") / "clf"
    )


def test_reward_node_scores_frames(model_dir, rclpy_context, spin_until, start_node):
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, Float32

    from nodes.messages import image_msg
    from robot_rl.reward import load_model

    proc = start_node("nodes.reward", ["-p", f"model_dir:={model_dir}", "-p", "threshold:=0.5"])
    node = Node("reward_listener", context=rclpy_context)
    pub = node.create_publisher(Image, "cameras/front/image_raw", qos_profile_sensor_data)
    got = {"prob": [], "success": [], "latency": []}
    node.create_subscription(
        Float32, "reward/success_prob", lambda m: got["prob"].append(m.data), 50
    )
    node.create_subscription(Bool, "reward/success", lambda m: got["success"].append(m.data), 50)
    node.create_subscription(Float32, "reward/latency", lambda m: got["latency"].append(m.data), 50)

    rng = np.random.default_rng(0)
    # a 256x256 camera: the node resizes to the classifier's 128x128 like cv2.INTER_AREA does here
    frames = [rng.integers(0, 255, (256, 256, 3), dtype=np.uint8) for _ in range(4)]
    deadline = (
        time.monotonic() + 60.0
    )  # the node process imports torch and loads the backbone first
    i = 0
    while len(got["prob"]) < 8 and time.monotonic() < deadline:
        pub.publish(image_msg(frames[i % len(frames)], time.time(), "front"))
        i += 1
        spin_until(node, lambda: False, 0.1)
    assert len(got["prob"]) >= 8, proc.output()
    assert spin_until(node, lambda: len(got["latency"]) >= 8 and len(got["success"]) >= 8, 5.0)

    import cv2

    model = load_model(model_dir)
    expected = [
        float(
            model.predict_proba(
                {"image_front": cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA)}
            )[0]
        )
        for f in frames
    ]
    for p in got["prob"]:
        assert min(abs(p - e) for e in expected) < 1e-5, (p, expected)
    assert [s for s in got["success"][:8]] == [p >= 0.5 for p in got["prob"][:8]]
    assert all(0.0 <= lat < 5.0 for lat in got["latency"])


def test_reward_node_bad_model_dir_exits_with_the_key(tmp_path, start_node):
    proc = start_node("nodes.reward", ["-p", f"model_dir:={tmp_path / 'missing'}"])
    assert proc.proc.wait(60) == 2
    assert "model_dir" in proc.output()


def test_reward_node_feeds_robot_state_to_a_proprio_classifier(
    tmp_path, rclpy_context, spin_until, start_node
):
    """A classifier reading TCP pose and gripper width gets them from current_pose / joint_states.

    It scores nothing while that state is missing.
    """
    import torch
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float32

    from nodes.messages import image_msg, joint_state_msg, pose_msg
    from robot_rl.reward.classifier import ClassifierConfig, ProprioConfig, SuccessClassifier

    torch.manual_seed(0)
    config = ClassifierConfig(
        proprio=(ProprioConfig("gripper_width", 1), ProprioConfig("tcp_pose", 7))
    )
    model = SuccessClassifier(config, threshold=0.5)
    model.proprio_mean.copy_(torch.tensor([0.04, 0.5, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0]))
    model.proprio_std.copy_(torch.tensor([0.02, 0.1, 0.1, 0.05, 0.01, 0.01, 0.01, 0.01]))
    model_dir = model.save(tmp_path / "clf")

    proc = start_node("nodes.reward", ["-p", f"model_dir:={model_dir}"])
    node = Node("reward_state_listener", context=rclpy_context)
    image_pub = node.create_publisher(Image, "cameras/front/image_raw", qos_profile_sensor_data)
    pose_pub = node.create_publisher(PoseStamped, "current_pose", qos_profile_sensor_data)
    joint_pub = node.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
    got = []
    node.create_subscription(Float32, "reward/success_prob", lambda m: got.append(m.data), 50)
    frame = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)

    deadline = time.monotonic() + 30.0  # images only, no state: never scored
    while time.monotonic() < deadline and "state" not in proc.output():
        image_pub.publish(image_msg(frame, time.time(), "front"))
        spin_until(node, lambda: False, 0.1)
    for _ in range(10):
        image_pub.publish(image_msg(frame, time.time(), "front"))
        spin_until(node, lambda: False, 0.1)
    assert got == [], proc.output()

    pose = np.array([0.5, 0.0, 0.25, 1.0, 0.0, 0.0, 0.0])
    # fingers first: joints are matched by name, not by their place in the message
    arm = [f"panda_joint{i}" for i in range(1, 8)]
    names = ["panda_finger_joint1", "panda_finger_joint2", *arm]
    joints = np.r_[0.015, 0.015, np.zeros(7)]  # gripper width 0.03
    deadline = time.monotonic() + 30.0
    while len(got) < 5 and time.monotonic() < deadline:
        now = time.time()
        pose_pub.publish(pose_msg(pose, now))
        joint_pub.publish(joint_state_msg(names, joints, np.zeros(9), np.zeros(9), now))
        image_pub.publish(image_msg(frame, now, "front"))
        spin_until(node, lambda: False, 0.1)
    assert len(got) >= 5, proc.output()
    expected = model.predict_proba(
        {"image_front": frame, "tcp_pose": pose, "gripper_width": np.array([0.03])}
    )[0]
    other = model.predict_proba(
        {"image_front": frame, "tcp_pose": pose, "gripper_width": np.array([0.08])}
    )[0]
    assert (
        abs(expected - other) > 1e-4
    )  # the state does move the score, so matching it below means something
    assert all(abs(p - expected) < 1e-5 for p in got), (got, expected)
