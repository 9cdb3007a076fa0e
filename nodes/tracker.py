"""`tracker` node: fiducial markers in camera images -> `object_pose` (PoseStamped, frame `world`).

Subscribes `cameras/<name>/image_raw` and `camera_info` for every configured camera (and
`current_pose` for cameras on the hand or with `hold_in_gripper`, `joint_states` for the gripper
width). Each image is measured by calibration.tracker.ObjectTracker; the pose is published with
the image's stamp when no other camera measured a better view within `max_skew_s`. When the
marker is lost nothing is published (the actor's staleness rule then holds the robot) and one log
line says so; with `hold_in_gripper` the object is published moving rigidly with the hand while
the gripper is closed on it. Changes of state (lost, found, camera chosen) are logged once. A
message that cannot be used (camera_info without a calibration, an image that does not decode, a
non-finite or non-unit hand pose, a JointState whose lengths disagree) is dropped; its topic is
named when the problem changes, at most once a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState

from calibration import transform as tf
from calibration.camera_yaml import CameraIntrinsics
from calibration.tracker import (
    GripperHold,
    Measurement,
    ObjectTracker,
    TrackerConfig,
    load_mounts,
    select_view,
)
from controllers.config import ConfigError
from nodes.input_checks import joint_state_problem, pose_problem
from nodes.messages import from_time, image_array, pose_array, pose_msg
from nodes.params import declare_config


@dataclass
class TrackerNodeConfig:
    tracker: TrackerConfig = field(default_factory=TrackerConfig)


PARAMETERS = TrackerNodeConfig  # the node's ROS parameters are this dataclass's fields


def intrinsics_from_msg(msg: CameraInfo) -> CameraIntrinsics:
    """CameraIntrinsics of a camera_info message; ConfigError naming what is wrong with it."""
    if not any(msg.k) or msg.k[0] <= 0 or msg.k[4] <= 0:
        raise ConfigError(
            f"camera_info has zero focal lengths (k = {list(msg.k)}): the camera is not "
            "calibrated; run `robot-rl calibrate intrinsics` and publish its camera_info"
        )
    return CameraIntrinsics(
        msg.width, msg.height, np.reshape(msg.k, (3, 3)), list(msg.d), msg.distortion_model
    )


class TrackerNode(Node):
    def __init__(self) -> None:
        super().__init__("tracker")
        self.config = declare_config(self, TrackerNodeConfig).tracker
        self.tracker = ObjectTracker(self.config, load_mounts(self.config))
        self.hold = GripperHold(self.config.hold_width_m) if self.config.hold_in_gripper else None
        self.intrinsics: dict[str, CameraIntrinsics | None] = {}
        self.recent: dict[str, tuple[float, Measurement]] = {}
        self.hand: tuple[float, np.ndarray] | None = None
        self.gripper_width: float | None = None
        self._state = ""  # what was last logged: "found <camera>", "lost", "held"
        self._info_problem: dict[str, str] = {}
        self._said: dict[str, tuple[str, float]] = {}  # topic -> (problem, when it was logged)
        self.pub = self.create_publisher(PoseStamped, "object_pose", 10)
        for cam in self.config.cameras:
            base = f"cameras/{cam}"
            self.create_subscription(
                CameraInfo, f"{base}/camera_info", lambda m, c=cam: self._on_info(c, m), 10
            )
            self.create_subscription(
                Image,
                f"{base}/image_raw",
                lambda m, c=cam: self._on_image(c, m),
                qos_profile_sensor_data,
            )
        on_hand = any(m.parent_frame == "hand" for m in self.tracker.mounts.values())
        if on_hand or self.hold is not None:
            self.create_subscription(PoseStamped, "current_pose", self._on_pose, 10)
        if self.hold is not None:
            self.create_subscription(JointState, "joint_states", self._on_joints, 10)
        self.get_logger().info(
            f"tracking {self.config.dictionary} ids {self.config.marker_ids} "
            f"({self.config.marker_size_m * 1000:.1f} mm) in cameras {self.config.cameras}"
        )

    def _on_info(self, camera: str, msg: CameraInfo) -> None:
        try:
            self.intrinsics[camera] = intrinsics_from_msg(msg)
            self._info_problem.pop(camera, None)
        except ConfigError as exc:
            self.intrinsics[camera] = None
            self._info_problem[camera] = str(exc)
            self._report(f"cameras/{camera}/camera_info", str(exc))

    def _report(self, topic: str, problem: str) -> None:
        """Name a problem of `topic` once when it appears or changes, at most once a second."""
        now = time.monotonic()
        said = self._said.get(topic)
        if said is None or (said[0] != problem and now - said[1] >= 1.0):
            self._said[topic] = (problem, now)
            self.get_logger().error(f"{topic}: {problem}")

    def _on_pose(self, msg: PoseStamped) -> None:
        pose = pose_array(msg)
        problem = pose_problem(pose)
        if problem:
            self._report("current_pose", f"{problem}; the hand pose is not used")
            return
        self.hand = (from_time(msg.header.stamp), tf.from_pose7(pose))

    def _on_joints(self, msg: JointState) -> None:
        problem = joint_state_problem(msg.name, msg.position, msg.velocity)
        if problem:
            self._report("joint_states", f"{problem}; the gripper width is not used")
            return
        # finger joints follow the 7 arm joints, as the robot side reads the width
        if len(msg.position) >= 9:
            self.gripper_width = float(sum(msg.position[7:9]))

    def _hand_at(self, stamp: float) -> np.ndarray | None:
        if self.hand is None or abs(self.hand[0] - stamp) > self.config.max_skew_s:
            return None
        return self.hand[1]

    def _on_image(self, camera: str, msg: Image) -> None:
        stamp = from_time(msg.header.stamp)
        intrinsics = self.intrinsics.get(camera)
        if intrinsics is None:
            if camera not in self._info_problem:
                self._report(
                    f"cameras/{camera}/camera_info",
                    "no camera_info received yet; nothing is published",
                )
            return
        try:
            image = image_array(msg)
        except ValueError as exc:
            self._report(f"cameras/{camera}/image_raw", f"{exc}; not measured")
            return
        T_world_hand = self._hand_at(stamp)
        m = self.tracker.measure(camera, image, intrinsics, T_world_hand)
        if m is None:
            self.recent.pop(camera, None)
            if not any(abs(t - stamp) <= self.config.max_skew_s for t, _ in self.recent.values()):
                self._lost(image, stamp, T_world_hand)
            return
        self.recent[camera] = (stamp, m)
        window = [v for t, v in self.recent.values() if abs(t - stamp) <= self.config.max_skew_s]
        if select_view(window) is not m:
            return  # a better view of the same moment is (or was) published by its camera
        if self.hold is not None and T_world_hand is not None:
            self.hold.measured(m.T_world_object, T_world_hand)
        self._log_state(f"found {camera}", f"object_pose from camera {camera} (ids {m.marker_ids})")
        self.pub.publish(pose_msg(m.pose7, stamp))

    def _lost(self, image: np.ndarray, stamp: float, T_world_hand: np.ndarray | None) -> None:
        if self.hold is not None and T_world_hand is not None and self.gripper_width is not None:
            held = self.hold.pose(T_world_hand, self.gripper_width)
            if held is not None:
                self._log_state("held", "marker lost while grasped: object_pose follows the hand")
                self.pub.publish(pose_msg(tf.to_pose7(held), stamp))
                return
            self.hold.release()
        if self._state != "lost":
            hint = self.tracker.diagnose(image)
            self._log_state(
                "lost",
                f"marker lost ({self.tracker.problem}); object_pose not published"
                + (f"; {hint}" if hint else ""),
            )

    def _log_state(self, state: str, line: str) -> None:
        if state != self._state:
            self._state = state
            # rclpy ties a severity to each call site, so each severity has its own call
            if state == "lost":
                # a view that flickers (or frames that come and go) must not flood the log
                self.get_logger().warning(line, throttle_duration_sec=1.0)
            else:
                self.get_logger().info(line)


def main(argv: list[str] | None = None) -> int:
    from nodes.spin import run_node

    return run_node(TrackerNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
