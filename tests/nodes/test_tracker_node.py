"""tracker node: a rendered marker cube image in, object_pose with the image's stamp out."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def front_frame():
    """A 640x480 front-camera render of the marker cube (two faces in view) and its true pose."""
    import sim

    env = sim.make_env(
        "pick_cube",
        marker={"dictionary": "DICT_4X4_50", "id": 0, "size_m": 0.03},
        cameras=("front",),
        image_size=(480, 640),
        privileged_state=False,
    )
    obs, _ = env.reset(seed=1)
    truth = env.unwrapped.task.object_pose(env.unwrapped.data).copy()
    env.close()
    return obs["image_front"], truth


def test_publishes_measured_pose_with_image_stamp_and_nothing_when_lost(
    start_node, rclpy_context, spin_until, front_frame
):
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image

    from nodes.messages import camera_info_msg, from_time, image_msg, pose_array

    node_proc = start_node(
        "nodes.tracker",
        ["--params-file", "config/tracker.yaml", "-p", "tracker.cameras:=[front]"],
    )
    image, truth = front_frame
    test = Node("tracker_test", context=rclpy_context)
    received: list = []
    test.create_subscription(PoseStamped, "object_pose", received.append, 10)
    info_pub = test.create_publisher(CameraInfo, "cameras/front/camera_info", 10)
    from rclpy.qos import qos_profile_sensor_data

    image_pub = test.create_publisher(Image, "cameras/front/image_raw", qos_profile_sensor_data)
    info = camera_info_msg(640, 480, 605.0, 605.0, 320.0, 240.0, "plumb_bob", [0.0] * 5, 0.0, "")

    def send(frame: np.ndarray, stamp: float) -> None:
        info_pub.publish(info)
        image_pub.publish(image_msg(frame, stamp, "front_optical_frame"))

    stamp = 1234.5
    try:
        ok = spin_until(
            test,
            lambda: send(image, stamp) or any(from_time(m.header.stamp) == stamp for m in received),
            timeout=30.0,
        )
        assert ok, node_proc.output()
        msg = next(m for m in received if from_time(m.header.stamp) == stamp)
        assert msg.header.frame_id == "world"
        assert np.linalg.norm(pose_array(msg)[:3] - truth[:3]) < 0.005

        blank = np.full_like(image, 128)
        lost_stamp = 1300.0
        spin_until(test, lambda: send(blank, lost_stamp) or False, timeout=2.0)
        assert not any(from_time(m.header.stamp) == lost_stamp for m in received)
        assert "marker lost" in node_proc.output()
    finally:
        test.destroy_node()


def test_zero_intrinsics_publish_nothing_and_name_the_problem(
    start_node, rclpy_context, spin_until, front_frame
):
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from nodes.messages import camera_info_msg, image_msg

    node_proc = start_node(
        "nodes.tracker",
        ["--params-file", "config/tracker.yaml", "-p", "tracker.cameras:=[front]"],
    )
    image, _ = front_frame
    test = Node("tracker_test", context=rclpy_context)
    received: list = []
    test.create_subscription(PoseStamped, "object_pose", received.append, 10)
    info_pub = test.create_publisher(CameraInfo, "cameras/front/camera_info", 10)
    image_pub = test.create_publisher(Image, "cameras/front/image_raw", qos_profile_sensor_data)
    info = camera_info_msg(640, 480, 0.0, 0.0, 0.0, 0.0, "plumb_bob", [0.0] * 5, 0.0, "")

    def send() -> bool:
        info_pub.publish(info)
        image_pub.publish(image_msg(image, 10.0, "front_optical_frame"))
        return "zero focal lengths" in node_proc.output()

    try:
        assert spin_until(test, send, timeout=30.0), node_proc.output()
        assert not received
        assert node_proc.output().count("zero focal lengths") == 1
    finally:
        test.destroy_node()
