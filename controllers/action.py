"""The action contract: a policy action <-> the next target pose, and the gripper semantics.

An action is 7 values in [-1, 1], `ACTION_NAMES`: a translation (dx dy dz, scaled by `pos_scale`
metres per step at 1) and a rotation vector (drx dry drz, scaled by `rot_scale` radians per step
at 1), both in the world frame and applied to the current *target* pose (not the measured TCP);
the rotation is composed on the left of the target quaternion. The gripper value closes above
`GRIPPER_CLOSE_THRESHOLD`, opens below `GRIPPER_OPEN_THRESHOLD` and keeps the last command between.

The twin, the ROS robot env, `sim_robot`, teleop, the scripted experts and the agent all use this
module, so a target the twin reaches is the target a real cell is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from controllers.config import ConfigError
from controllers.se3 import quat_conj, quat_mul, quat_to_rotvec, rotvec_to_quat

ACTION_NAMES = ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")
ACTION_DIM = len(ACTION_NAMES)
POS, ROT, GRIPPER = slice(0, 3), slice(3, 6), 6  # where each part sits in an action
GRIPPER_CLOSE_THRESHOLD = 0.5
GRIPPER_OPEN_THRESHOLD = -GRIPPER_CLOSE_THRESHOLD


@dataclass(frozen=True)
class ActionScales:
    """How far one step at action 1 moves the target."""

    pos_scale: float  # m per step
    rot_scale: float  # rad per step

    def __post_init__(self) -> None:
        for key in ("pos_scale", "rot_scale"):
            v = getattr(self, key)
            if not 0 < v < math.inf:
                raise ConfigError(f"{key}: {v!r} must be a finite number > 0")


def check_action(action: Any) -> np.ndarray:
    """The action as a float64 (7,) array clipped to [-1, 1]; NaN stays NaN (the safety filter
    downstream holds on it); any other number of values is a ValueError."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (ACTION_DIM,):
        raise ValueError(
            f"action: expected {ACTION_DIM} values [{' '.join(ACTION_NAMES)}], "
            f"got shape {np.shape(action)}"
        )
    return np.clip(a, -1.0, 1.0)


def apply_action(
    target_pos: np.ndarray, target_quat: np.ndarray, action: Any, scales: ActionScales
) -> tuple[np.ndarray, np.ndarray]:
    """The next target pose (position, quaternion wxyz) after `action` from the current target."""
    a = check_action(action)
    pos = np.asarray(target_pos, dtype=np.float64) + a[POS] * scales.pos_scale
    quat = quat_mul(rotvec_to_quat(a[ROT] * scales.rot_scale), target_quat)
    return pos, quat


def action_from_delta(
    delta_pos: np.ndarray, delta_rotvec: np.ndarray, scales: ActionScales, gripper: float = 0.0
) -> np.ndarray:
    """The (7,) float64 action for a target move of `delta_pos` (m) and `delta_rotvec` (rad,
    world frame), not clipped: callers clip to their own speed limit within [-1, 1]."""
    a = np.empty(ACTION_DIM)
    a[POS] = np.asarray(delta_pos, dtype=np.float64) / scales.pos_scale
    a[ROT] = np.asarray(delta_rotvec, dtype=np.float64) / scales.rot_scale
    a[GRIPPER] = gripper
    return a


def action_from_target(
    target_pos: np.ndarray,
    target_quat: np.ndarray,
    goal_pos: np.ndarray,
    goal_quat: np.ndarray,
    scales: ActionScales,
    gripper: float = 0.0,
) -> np.ndarray:
    """The action that moves the target from (target_pos, target_quat) toward the goal pose,
    clipped to [-1, 1]: it reaches the goal in one step when the goal is within one step."""
    rotvec = quat_to_rotvec(quat_mul(goal_quat, quat_conj(target_quat)))
    delta = np.asarray(goal_pos, dtype=np.float64) - np.asarray(target_pos, dtype=np.float64)
    return np.clip(action_from_delta(delta, rotvec, scales, gripper), -1.0, 1.0)


def action_from_twist(
    twist: np.ndarray, period: float, scales: ActionScales, gripper: float = 0.0
) -> np.ndarray:
    """The action for a world-frame twist (vx vy vz m/s, wx wy wz rad/s) held over one control
    `period` (s), clipped to [-1, 1]."""
    t = np.asarray(twist, dtype=np.float64) * period
    return np.clip(action_from_delta(t[:3], t[3:6], scales, gripper), -1.0, 1.0)


def twist_from_action(action: Any, period: float, scales: ActionScales) -> np.ndarray:
    """The world-frame twist (vx vy vz m/s, wx wy wz rad/s) that moves the target as `action`
    does when held over one control `period` (s): action_from_twist's inverse, gripper left out."""
    a = check_action(action)
    return np.concatenate([a[POS] * scales.pos_scale, a[ROT] * scales.rot_scale]) / period


def gripper_masks(values: Any) -> tuple[Any, Any]:
    """(close, open) boolean masks of gripper values; numpy arrays and torch tensors alike."""
    return values > GRIPPER_CLOSE_THRESHOLD, values < GRIPPER_OPEN_THRESHOLD


def gripper_class(values: Any) -> np.ndarray:
    """Gripper values -> int8 command: +1 close, -1 open, 0 keep (NaN keeps)."""
    close, open_ = gripper_masks(np.asarray(values))
    return close.astype(np.int8) - open_.astype(np.int8)


def gripper_command(value: float, prev_closed: bool) -> bool:
    """Whether the gripper is closed after a gripper value, given whether it was closed before."""
    cmd = int(gripper_class(value))
    return prev_closed if cmd == 0 else cmd > 0
