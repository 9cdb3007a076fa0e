"""Seeded streams of hostile variants of the ROS messages the nodes subscribe to.

Each variant starts from a legitimate message (made by the caller, so it carries the right joint
names, frame and image size) and breaks one thing: non-finite or huge numbers, zero / non-unit /
NaN quaternions, positions far outside any workspace, JointStates with missing, extra or repeated
names and mismatched lengths, Images whose size, step, encoding or data disagree, CameraInfo
without a usable calibration, wrong or empty frames, stamps at 0, in the far future or negative,
unknown operator events. `bad` says whether a node must refuse the message (no output from it);
the others are odd but usable and only checked for crashes. Message types only, no rclpy: the
runner (nodes.hostile) publishes them.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float32, Float64MultiArray, String

HUGE = 1e30
FAR_FUTURE_S = 4.0e9  # year 2096
BAD_NUMBERS = (float("nan"), float("inf"), -float("inf"), HUGE, -HUGE)

Mutate = Callable[[Any, np.random.Generator], None]


@dataclass(frozen=True)
class Variant:
    """One way to break a message: `mutate(msg, rng)` edits a legitimate message in place."""

    name: str
    bad: bool  # the node must not act on it
    mutate: Mutate


def _bad_number(rng: np.random.Generator) -> float:
    return BAD_NUMBERS[int(rng.integers(len(BAD_NUMBERS)))]


def _set_header(field: str, value: Any) -> Mutate:
    def mutate(msg: Any, rng: np.random.Generator) -> None:
        if field == "frame_id":
            msg.header.frame_id = value
        else:
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(value), 0

    return mutate


HEADER = [
    Variant("frame_wrong", False, _set_header("frame_id", "no_such_frame")),
    Variant("frame_empty", False, _set_header("frame_id", "")),
    Variant("stamp_zero", False, _set_header("stamp", 0)),
    Variant("stamp_far_future", False, _set_header("stamp", FAR_FUTURE_S)),
    Variant("stamp_negative", False, _set_header("stamp", -1000)),
]


def _position(value: Callable[[np.random.Generator], float]) -> Mutate:
    def mutate(msg: PoseStamped, rng: np.random.Generator) -> None:
        setattr(msg.pose.position, "xyz"[int(rng.integers(3))], value(rng))

    return mutate


def _far_away(msg: PoseStamped, rng: np.random.Generator) -> None:
    p = msg.pose.position
    p.x, p.y, p.z = (float(v) for v in rng.uniform(3.0, 50.0, 3) * rng.choice([-1.0, 1.0], 3))


def _quaternion(values: Callable[[np.random.Generator, np.ndarray], np.ndarray]) -> Mutate:
    def mutate(msg: PoseStamped, rng: np.random.Generator) -> None:
        o = msg.pose.orientation
        q = values(rng, np.array([o.x, o.y, o.z, o.w]))
        o.x, o.y, o.z, o.w = (float(v) for v in q)

    return mutate


def _one_bad(rng: np.random.Generator, q: np.ndarray) -> np.ndarray:
    q[int(rng.integers(4))] = _bad_number(rng)
    return q


POSE = [
    Variant("position_bad_number", True, _position(_bad_number)),
    Variant("position_far_outside", True, _far_away),
    Variant("quaternion_zero", True, _quaternion(lambda rng, q: np.zeros(4))),
    Variant("quaternion_tiny", True, _quaternion(lambda rng, q: np.full(4, 1e-20))),
    Variant("quaternion_not_unit", True, _quaternion(lambda rng, q: q * rng.uniform(1.1, 3.0))),
    Variant("quaternion_bad_number", True, _quaternion(_one_bad)),
    *HEADER,
]


def _twist_bad(msg: TwistStamped, rng: np.random.Generator) -> None:
    vector = msg.twist.linear if rng.random() < 0.5 else msg.twist.angular
    setattr(vector, "xyz"[int(rng.integers(3))], _bad_number(rng))


def _wrench_bad(msg: WrenchStamped, rng: np.random.Generator) -> None:
    vector = msg.wrench.force if rng.random() < 0.5 else msg.wrench.torque
    setattr(vector, "xyz"[int(rng.integers(3))], _bad_number(rng))


TWIST = [Variant("twist_bad_number", True, _twist_bad), *HEADER]
WRENCH = [Variant("wrench_bad_number", True, _wrench_bad), *HEADER]


def _missing(msg: JointState, rng: np.random.Generator) -> None:
    keep = sorted(rng.choice(len(msg.name), int(rng.integers(len(msg.name))), replace=False))
    msg.name = [msg.name[i] for i in keep]
    msg.position = [msg.position[i] for i in keep]
    msg.velocity = [msg.velocity[i] for i in keep] if len(msg.velocity) else []


def _extra(msg: JointState, rng: np.random.Generator) -> None:
    msg.name = [*msg.name, "hostile_extra_joint"]
    msg.position = [*msg.position, 0.0]
    msg.velocity = [*msg.velocity, 0.0] if len(msg.velocity) else []


def _duplicated(msg: JointState, rng: np.random.Generator) -> None:
    i = int(rng.integers(len(msg.name)))
    msg.name = [*msg.name, msg.name[i]]
    msg.position = [*msg.position, float(rng.uniform(-3, 3))]
    msg.velocity = [*msg.velocity, 0.0] if len(msg.velocity) else []


def _short_positions(msg: JointState, rng: np.random.Generator) -> None:
    msg.position = list(msg.position)[: int(rng.integers(len(msg.name)))]


def _long_positions(msg: JointState, rng: np.random.Generator) -> None:
    msg.position = [*msg.position, 0.0, 0.0]


def _velocity_length(msg: JointState, rng: np.random.Generator) -> None:
    msg.velocity = [0.0] * int(rng.integers(1, len(msg.name)))


def _empty(msg: JointState, rng: np.random.Generator) -> None:
    msg.name, msg.position, msg.velocity, msg.effort = [], [], [], []


def _joint_number(field: str) -> Mutate:
    def mutate(msg: JointState, rng: np.random.Generator) -> None:
        values = list(getattr(msg, field)) or [0.0] * len(msg.name)
        values[int(rng.integers(len(values)))] = _bad_number(rng)
        setattr(msg, field, values)

    return mutate


JOINTS = [
    Variant("joints_missing", True, _missing),
    Variant("joints_extra", False, _extra),
    Variant("joints_duplicated", True, _duplicated),
    Variant("positions_fewer_than_names", True, _short_positions),
    Variant("positions_more_than_names", True, _long_positions),
    Variant("velocities_length_mismatch", True, _velocity_length),
    Variant("joints_empty", True, _empty),
    Variant("position_bad_number", True, _joint_number("position")),
    Variant("velocity_bad_number", True, _joint_number("velocity")),
    *HEADER,
]


def _wrong_size(msg: Image, rng: np.random.Generator) -> None:
    if rng.random() < 0.5:
        msg.width = int(msg.width + rng.integers(1, 50))
    else:
        msg.height = int(max(1, msg.height - rng.integers(1, msg.height)))


def _wrong_step(msg: Image, rng: np.random.Generator) -> None:
    msg.step = int(rng.integers(0, 4 * msg.step + 1))
    if msg.step == msg.width * 3:
        msg.step += 1


def _encoding(msg: Image, rng: np.random.Generator) -> None:
    msg.encoding = str(rng.choice(["yuv422", "", "RGB8", "rgb8\x00", "32FC1", "bayer_rggb8"]))


def _single_channel(msg: Image, rng: np.random.Generator) -> None:
    msg.encoding, msg.step = "mono8", msg.width
    msg.data = array.array("B", bytes(msg.width * msg.height))


def _empty_data(msg: Image, rng: np.random.Generator) -> None:
    msg.data = array.array("B")


def _huge(msg: Image, rng: np.random.Generator) -> None:
    msg.width, msg.height = 100_000, 100_000
    msg.step = msg.width * 3
    msg.data = array.array("B", bytes(int(rng.integers(0, 1000))))


def _short_data(msg: Image, rng: np.random.Generator) -> None:
    msg.data = msg.data[: int(rng.integers(0, len(msg.data)))]


IMAGE = [
    Variant("size_disagrees_with_data", True, _wrong_size),
    Variant("step_disagrees_with_width", True, _wrong_step),
    Variant("unknown_encoding", True, _encoding),
    Variant("single_channel", True, _single_channel),
    Variant("empty_data", True, _empty_data),
    Variant("huge_dimensions_little_data", True, _huge),
    Variant("data_truncated", True, _short_data),
    *HEADER,
]


def _float(values: tuple[float, ...]) -> Mutate:
    """Float32's value, or a one-value Float64MultiArray's."""

    def mutate(msg: Float32 | Float64MultiArray, rng: np.random.Generator) -> None:
        value = float(values[int(rng.integers(len(values)))])
        msg.data = [value] if isinstance(msg, Float64MultiArray) else value

    return mutate


FLOAT = [
    Variant("bad_number", True, _float(BAD_NUMBERS)),
    Variant("out_of_range", True, _float((-0.5, 1.5, -7.0, 1e6))),
]
BOOL = [Variant("flip", False, lambda msg, rng: setattr(msg, "data", bool(rng.random() < 0.5)))]


def _command_length(msg: Float64MultiArray, rng: np.random.Generator) -> None:
    msg.data = [float(v) for v in rng.uniform(0.0, 0.04, int(rng.choice([0, 2, 3, 100])))]


COMMAND = [
    Variant("bad_number", True, _float(BAD_NUMBERS)),
    Variant("out_of_range", True, _float((-0.5, 0.5, -7.0, 1e6))),
    Variant("length_wrong", True, _command_length),
]


def _event(msg: String, rng: np.random.Generator) -> None:
    msg.data = str(
        rng.choice(["explode", "", "SUCCESS", "success ", "réset", "x" * 10_000, "reset\nsuccess"])
    )


STRING = [Variant("unknown_event", True, _event)]


def _intrinsics(edit: Callable[[list[float], np.random.Generator], None]) -> Mutate:
    def mutate(msg: CameraInfo, rng: np.random.Generator) -> None:
        k = [float(v) for v in msg.k]
        edit(k, rng)
        msg.k = k

    return mutate


def _k_bad(k: list[float], rng: np.random.Generator) -> None:
    k[int(rng.choice([0, 2, 4, 5]))] = _bad_number(rng)


def _k_zero(k: list[float], rng: np.random.Generator) -> None:
    k[:] = [0.0] * 9


def _k_negative(k: list[float], rng: np.random.Generator) -> None:
    k[0], k[4] = -abs(k[0]), -abs(k[4])


def _distortion(msg: CameraInfo, rng: np.random.Generator) -> None:
    msg.d = [_bad_number(rng)] * max(1, len(msg.d))


def _info_size(msg: CameraInfo, rng: np.random.Generator) -> None:
    msg.width, msg.height = (0, 0) if rng.random() < 0.5 else (100_000, 100_000)


def _model(msg: CameraInfo, rng: np.random.Generator) -> None:
    msg.distortion_model = "no_such_model"
    msg.d = [0.1] * int(rng.integers(0, 20))


CAMERA_INFO = [
    Variant("intrinsics_bad_number", True, _intrinsics(_k_bad)),
    Variant("intrinsics_zero", True, _intrinsics(_k_zero)),
    Variant("focal_negative", True, _intrinsics(_k_negative)),
    Variant("distortion_bad_number", True, _distortion),
    Variant("size_impossible", True, _info_size),
    Variant("distortion_model_unknown", True, _model),
    *HEADER,
]

VARIANTS: dict[type, list[Variant]] = {
    PoseStamped: POSE,
    JointState: JOINTS,
    Image: IMAGE,
    Float32: FLOAT,
    Bool: BOOL,
    String: STRING,
    TwistStamped: TWIST,
    WrenchStamped: WRENCH,
    CameraInfo: CAMERA_INFO,
    Float64MultiArray: COMMAND,
}


def hostile_stream(
    kind: type, legit: Callable[[], Any], count: int, seed: int, bad_only: bool = False
) -> Iterator[tuple[Variant, Any]]:
    """`count` hostile messages of type `kind`, each a fresh `legit()` broken by a variant drawn
    with `seed`; `bad_only` draws only variants a node must refuse."""
    variants = [v for v in VARIANTS[kind] if v.bad or not bad_only]
    if not variants:
        raise ValueError(f"{kind.__name__} has no variant a node must refuse")
    rng = np.random.default_rng(seed)
    for _ in range(count):
        variant = variants[int(rng.integers(len(variants)))]
        msg = legit()
        variant.mutate(msg, rng)
        yield variant, msg
