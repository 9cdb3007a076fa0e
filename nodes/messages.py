"""Conversions between numpy arrays and the standard ROS messages the nodes speak.

Quaternions are (w, x, y, z) in numpy (MuJoCo's order, docs/contracts.md) and (x, y, z, w) in
geometry_msgs, so the conversion lives here and nowhere else.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray

from controllers.velocity import DerivativeEstimator

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


def gripper_command_msg(position: float) -> Float64MultiArray:
    """A position controller's command with one finger target (CRISP's gripper, crisp_py's
    Gripper): `data = [position]` in the gripper's raw units."""
    return Float64MultiArray(data=[float(position)])


def gripper_command_position(msg: Float64MultiArray) -> float:
    """The finger target of a gripper position command; ValueError unless it holds one value."""
    if len(msg.data) != 1:
        raise ValueError(f"gripper command holds {len(msg.data)} values, expected 1")
    return float(msg.data[0])


class JointStates:
    """The newest position and velocity of each named joint, merged over JointState messages.

    Joints are matched by name, never by index: the arm's joint_state_broadcaster and a gripper
    driver may publish separate messages on one topic. Each joint keeps its own arrival time
    (monotonic s) for staleness. Where a message leaves `velocity` empty, the joint's velocity is
    differentiated from its positions on the header stamps (controllers.velocity).
    """

    def __init__(self, names: list[str], velocity_cutoff_hz: float):
        self.names = list(names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.position = np.full(len(self.names), np.nan)
        self.velocity = np.full(len(self.names), np.nan)
        self.arrival = np.full(len(self.names), -np.inf)
        self._derivatives = [DerivativeEstimator(velocity_cutoff_hz) for _ in self.names]

    def put(self, msg: JointState, arrival: float) -> None:
        stamp = from_time(msg.header.stamp)
        has_velocity = len(msg.velocity) == len(msg.name)
        for j, name in enumerate(msg.name):
            i = self._index.get(name)
            if i is None or j >= len(msg.position):
                continue
            self.position[i] = msg.position[j]
            derived = self._derivatives[i].update(stamp, np.array([msg.position[j]]))
            if has_velocity:
                self.velocity[i] = msg.velocity[j]
            elif derived is not None:
                self.velocity[i] = derived[0]
            self.arrival[i] = arrival

    def missing(self, names: list[str]) -> list[str]:
        """The joints among `names` no message has named yet."""
        return [n for n in names if not np.isfinite(self.arrival[self._index[n]])]

    def read(
        self, names: list[str], now: float, stale_s: float
    ) -> tuple[np.ndarray, np.ndarray] | str:
        """(positions, velocities) of `names`, or why not (missing or stale joints, named)."""
        missing = self.missing(names)
        if missing:
            return f"joint_states has not named joint(s) {missing} yet"
        idx = [self._index[n] for n in names]
        age = now - self.arrival[idx]
        stale = [n for n, a in zip(names, age) if a > stale_s]
        if stale:
            return (
                f"joint_states is stale for {stale} ({age.max() * 1000:.0f} ms old > "
                f"{stale_s * 1000:.0f} ms)"
            )
        return self.position[idx].copy(), self.velocity[idx].copy()


# a Franka's joint names as franka_ros2 / CRISP publish them; every node takes its own as parameters
FRANKA_ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FRANKA_FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")

# observation key -> the real-cell topic it is built from (images: image_<camera> <-
# cameras/<camera>/image_raw); tcp_vel is derived from current_pose's stamps, as the actor does,
# because a real cell under CRISP's controllers publishes no twist
STATE_TOPICS = {
    "tcp_pose": "current_pose",
    "tcp_vel": "current_pose",
    "gripper_width": "joint_states",
    "joint_pos": "joint_states",
    "joint_vel": "joint_states",
    "wrench": "wrench",
    "object_pose": "object_pose",
}
TOPIC_TYPES = {
    "current_pose": PoseStamped,
    "joint_states": JointState,
    "wrench": WrenchStamped,
    "object_pose": PoseStamped,
}


def observation_value(
    key: str,
    msg: Any,
    arm_joints: Sequence[str] = FRANKA_ARM_JOINTS,
    finger_joints: Sequence[str] = FRANKA_FINGER_JOINTS,
) -> np.ndarray:
    """The observation array (docs/contracts.md) of state key `key` from one message of its topic
    (tcp_vel needs two: controllers.velocity.PoseVelocityEstimator). Joints are matched by name;
    KeyError names a joint the JointState lacks."""
    if key in ("tcp_pose", "object_pose"):
        return pose_array(msg)
    if key == "wrench":
        return wrench_array(msg)
    index = {name: i for i, name in enumerate(msg.name)}

    def pick(values: Sequence[float], names: Sequence[str]) -> np.ndarray:
        missing = [n for n in names if n not in index or index[n] >= len(values)]
        if missing:
            raise KeyError(f"joint_states has no value for joint(s) {missing}")
        return np.array([values[index[n]] for n in names], dtype=np.float64)

    if key == "joint_pos":
        return pick(msg.position, arm_joints)
    if key == "joint_vel":
        return pick(msg.velocity, arm_joints)
    if key == "gripper_width":
        return np.array([pick(msg.position, finger_joints).sum()])
    raise KeyError(key)
