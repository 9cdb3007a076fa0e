"""Plausibility checks of what arrives on a topic, before any node acts on it.

Each check returns "" for a usable value, else one sentence naming what is wrong, for a log line an
operator next to the robot reads. Finite-but-impossible values count as wrong: a pose far outside
the workspace, a non-unit quaternion, a stamp far from the robot PC's clock, joint names given
twice. Plain numpy: the nodes call these from their subscription callbacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

QUAT_NORM_TOL = 1e-3  # |norm - 1| above this: not a rotation (drivers send unit quaternions)
JOINT_LIMIT = 100.0  # rad, m, rad/s or m/s: no joint of a manipulator gets near it
MAX_WRENCH = 1e4  # N and N m: beyond any F/T sensor on a manipulator's wrist


def _values(values: Sequence[float] | np.ndarray) -> str:
    return np.array2string(np.asarray(values, dtype=np.float64), precision=4, threshold=12)


def quaternion_problem(quat: Sequence[float] | np.ndarray) -> str:
    """Why (w, x, y, z) is not a unit quaternion, or ""."""
    q = np.asarray(quat, dtype=np.float64)
    if not np.all(np.isfinite(q)):
        return f"non-finite quaternion {_values(q)}"
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUAT_NORM_TOL:
        return f"quaternion {_values(q)} has norm {norm:.4g}, expected 1"
    return ""


def pose_problem(
    pose: Sequence[float] | np.ndarray,
    lo: Sequence[float] | None = None,
    hi: Sequence[float] | None = None,
    margin: float = 0.0,
) -> str:
    """Why a pose (x, y, z, qw, qx, qy, qz) is unusable, or "".

    With `lo`/`hi` (the safety workspace box), a position more than `margin` outside it is refused.
    """
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (7,):
        return f"pose has {p.size} values, expected 7"
    if not np.all(np.isfinite(p[:3])):
        return f"non-finite position {_values(p[:3])}"
    if lo is not None and hi is not None:
        outside = np.maximum(np.asarray(lo) - p[:3], p[:3] - np.asarray(hi))
        if np.any(outside > margin):
            return (
                f"position {_values(p[:3])} is {float(outside.max()):.3g} m outside the safety "
                f"workspace {list(lo)}..{list(hi)} (allowed margin {margin:g} m)"
            )
    return quaternion_problem(p[3:7])


def stamp_problem(stamp: float, now: float, max_offset_s: float) -> str:
    """Why a header stamp (s) is implausible against the receiving clock `now` (s), or ""."""
    offset = stamp - now
    if not abs(offset) <= max_offset_s:
        return (
            f"stamp {stamp:.3f} s is {offset:+.3g} s from this PC's clock (more than "
            f"{max_offset_s:g} s): a wrong clock on the sender or a corrupt message"
        )
    return ""


def vector_problem(
    name: str, values: Sequence[float] | np.ndarray, size: int, limit: float = math.inf
) -> str:
    """Why `values` is not `size` finite numbers of magnitude <= `limit`, or ""."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size != size:
        return f"{name} has {v.size} values, expected {size}"
    if not np.all(np.isfinite(v)):
        return f"non-finite {name} {_values(v)}"
    if np.any(np.abs(v) > limit):
        return f"{name} {_values(v)} exceeds {limit:g} in magnitude"
    return ""


def probability_problem(value: float) -> str:
    """Why `value` is not a probability in [0, 1], or ""."""
    if not 0.0 <= value <= 1.0:  # NaN fails too
        return f"success probability {value!r} is not in [0, 1]"
    return ""


def joint_state_problem(
    names: Sequence[str], position: Sequence[float], velocity: Sequence[float]
) -> str:
    """Why a JointState's names/positions/velocities cannot be matched joint by joint, or "".

    An empty `velocity` is allowed (the receiver differentiates positions); extra joints are too.
    """
    if not names:
        return "names no joint"
    duplicated = sorted({n for n in names if list(names).count(n) > 1})
    if duplicated:
        return f"names joint(s) {duplicated} more than once"
    if len(position) != len(names):
        return f"has {len(names)} names but {len(position)} positions"
    if len(velocity) not in (0, len(names)):
        return f"has {len(names)} names but {len(velocity)} velocities"
    for what, values in (("positions", position), ("velocities", velocity)):
        if not np.all(np.abs(np.asarray(values, dtype=np.float64)) <= JOINT_LIMIT):
            return f"impossible {what} {_values(values)} (non-finite or above {JOINT_LIMIT:g})"
    return ""
