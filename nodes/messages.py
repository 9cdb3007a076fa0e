"""Conversions between numpy arrays and the standard ROS messages the nodes speak.

Quaternions are (w, x, y, z) in numpy (MuJoCo's order, docs/contracts.md) and (x, y, z, w) in
geometry_msgs, so the conversion lives here and nowhere else.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray

ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "mono8": (np.uint8, 1),
    "16UC1": (np.uint16, 1),
}


def to_time(seconds: float) -> Time:
    sec = int(seconds // 1)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def from_time(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _uint8_array(arr: np.ndarray) -> array.array:
    # array.array + frombytes is one memcpy; assigning bytes or a list is checked element by element
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(arr).tobytes())
    return out


def image_msg(arr: np.ndarray, stamp: float, frame_id: str, encoding: str = "rgb8") -> Image:
    dtype, channels = ENCODINGS[encoding]
    if (
        arr.dtype != dtype
        or arr.ndim not in (2, 3)
        or (arr.shape[2] if arr.ndim == 3 else 1) != channels
    ):
        raise ValueError(f"image of shape {arr.shape} and dtype {arr.dtype} is not {encoding}")
    msg = Image()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * channels * arr.itemsize)
    msg.data = _uint8_array(arr)
    return msg


def image_array(msg: Image) -> np.ndarray:
    """The image as an (H, W, C) or (H, W) array; ValueError on an unknown encoding or size."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(
            f"unsupported image encoding {msg.encoding!r}; expected one of {sorted(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[msg.encoding]
    flat = np.frombuffer(msg.data, dtype=np.uint8)
    row = msg.width * channels * np.dtype(dtype).itemsize
    if msg.step != row or flat.size != msg.height * row:
        raise ValueError(
            f"image {msg.width}x{msg.height} {msg.encoding}: step {msg.step}, {flat.size} bytes"
        )
    arr = flat.view(dtype).reshape(msg.height, msg.width, channels)
    return arr[..., 0] if channels == 1 else arr


def camera_info_msg(
    width: int,
    height: int,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    distortion_model: str,
    coeffs: list[float],
    stamp: float,
    frame_id: str,
) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = distortion_model
    msg.d = [float(c) for c in coeffs]
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def pose_msg(pose: np.ndarray, stamp: float, frame_id: str = "world") -> PoseStamped:
    """pose = (x, y, z, qw, qx, qy, qz) -> PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    p, o = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pose[:3])
    o.w, o.x, o.y, o.z = (float(v) for v in pose[3:7])
    return msg


def pose_array(msg: PoseStamped) -> np.ndarray:
    p, o = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, o.w, o.x, o.y, o.z])


def wrench_msg(wrench: np.ndarray, stamp: float, frame_id: str) -> WrenchStamped:
    msg = WrenchStamped()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    f, t = msg.wrench.force, msg.wrench.torque
    f.x, f.y, f.z, t.x, t.y, t.z = (float(v) for v in wrench[:6])
    return msg


def wrench_array(msg: WrenchStamped) -> np.ndarray:
    f, t = msg.wrench.force, msg.wrench.torque
    return np.array([f.x, f.y, f.z, t.x, t.y, t.z])


def twist_msg(twist: np.ndarray, stamp: float, frame_id: str) -> TwistStamped:
    msg = TwistStamped()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    lin, ang = msg.twist.linear, msg.twist.angular
    lin.x, lin.y, lin.z, ang.x, ang.y, ang.z = (float(v) for v in twist[:6])
    return msg


def twist_array(msg: TwistStamped) -> np.ndarray:
    lin, ang = msg.twist.linear, msg.twist.angular
    return np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z])


def joint_state_msg(
    names: list[str], position: np.ndarray, velocity: np.ndarray, effort: np.ndarray, stamp: float
) -> JointState:
    msg = JointState()
    msg.header.stamp = to_time(stamp)
    msg.name = list(names)
    msg.position = [float(v) for v in position]
    msg.velocity = [float(v) for v in velocity]
    msg.effort = [float(v) for v in effort]
    return msg


def float64_array_msg(values: Any) -> Float64MultiArray:
    """A Float64MultiArray with no layout (a flat vector, as ros2_control's forward controllers
    take their commands)."""
    return Float64MultiArray(data=[float(v) for v in np.asarray(values, dtype=np.float64).ravel()])


def float64_array(msg: Float64MultiArray) -> np.ndarray:
    return np.asarray(msg.data, dtype=np.float64)


# observation key -> topic it is built from (images: image_<camera> <- cameras/<camera>/image_raw)
STATE_TOPICS = {
    "tcp_pose": "current_pose",
    "tcp_vel": "current_twist",
    "gripper_width": "joint_states",
    "joint_pos": "joint_states",
    "joint_vel": "joint_states",
    "wrench": "wrench",
    "object_pose": "object_pose",
}
TOPIC_TYPES = {
    "current_pose": PoseStamped,
    "current_twist": TwistStamped,
    "joint_states": JointState,
    "wrench": WrenchStamped,
    "object_pose": PoseStamped,
}


def observation_value(key: str, msg: Any) -> np.ndarray:
    """The observation array (docs/contracts.md) of state key `key` from its topic's message."""
    if key in ("tcp_pose", "object_pose"):
        return pose_array(msg)
    if key == "tcp_vel":
        return twist_array(msg)
    if key == "wrench":
        return wrench_array(msg)
    if key == "joint_pos":
        return np.asarray(msg.position[:7])
    if key == "joint_vel":
        return np.asarray(msg.velocity[:7])
    if key == "gripper_width":
        return np.array([sum(msg.position[7:9])])
    raise KeyError(key)
