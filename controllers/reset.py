"""The reset the stack commands between episodes, identical on a real cell and on the twin.

A reset is a list of legs (`reset_plan`): move the TCP home (optionally randomised, as HIL-SERL
randomises start poses) with the gripper open; then re-place the object: wait for the operator's
`reset` event (`object: operator`), or move through scripted waypoints and home again
(`object: scripted`), or nothing (`object: none`). Each move leg ends when the measured TCP is
within `pos_tol` and `rot_tol` of its goal, each wait leg on the event; `LegClock` says when a leg
ran out of time, with the message the operator reads. The ROS side (nodes/robot_env.py) only sends
the goal through the safety filter every control tick and feeds back the measured pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from controllers.config import ConfigError
from controllers.se3 import orientation_error, quat_mul, quat_normalize, rotvec_to_quat

WAYPOINT_DIM = 8  # x y z qw qx qy qz gripper


@dataclass
class ResetConfig:
    """How the stack resets the cell between episodes."""

    home_pose: tuple[float, float, float, float, float, float, float] = (
        0.5,
        0.0,
        0.3,
        0.0,
        1.0,
        0.0,
        0.0,
    )  # x y z qw qx qy qz in the base frame
    home_pos_noise: float = 0.0  # m, uniform per axis around home_pose
    home_rot_noise: float = 0.0  # rad, uniform per axis (rotation vector) around home_pose
    pos_tol: float = 0.005  # m: home reached
    rot_tol: float = 0.05  # rad
    timeout_s: float = 15.0  # per move
    object: Literal["operator", "scripted", "none"] = "operator"
    operator_timeout_s: float = 120.0  # for the operator's `reset` event
    # object: scripted: waypoints of WAYPOINT_DIM values each, flat (ROS parameters cannot nest
    # lists): x y z qw qx qy qz in the base frame, then the gripper (> 0.5 close, < -0.5 open,
    # else keep)
    waypoints: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in self.home_pose):
            raise ConfigError(f"reset.home_pose: {self.home_pose} must be finite")
        _check_quat("reset.home_pose", self.home_pose[3:7])
        for key in ("home_pos_noise", "home_rot_noise"):
            if not 0 <= getattr(self, key) < math.inf:
                raise ConfigError(f"reset.{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("pos_tol", "rot_tol", "timeout_s", "operator_timeout_s"):
            if not 0 < getattr(self, key) < math.inf:
                raise ConfigError(f"reset.{key}: must be > 0, got {getattr(self, key)}")
        if len(self.waypoints) % WAYPOINT_DIM:
            raise ConfigError(
                f"reset.waypoints: {len(self.waypoints)} values is not a multiple of "
                f"{WAYPOINT_DIM} (x y z qw qx qy qz gripper per waypoint)"
            )
        for i, wp in enumerate(self.waypoint_rows()):
            if not np.all(np.isfinite(wp)):
                raise ConfigError(f"reset.waypoints: waypoint {i} {wp.tolist()} is not finite")
            _check_quat(f"reset.waypoints: waypoint {i}", wp[3:7])
        if self.object == "scripted" and not self.waypoints:
            raise ConfigError(
                "reset.waypoints: object 'scripted' needs at least one waypoint "
                f"({WAYPOINT_DIM} values each: x y z qw qx qy qz gripper)"
            )

    def waypoint_rows(self) -> np.ndarray:
        return np.asarray(self.waypoints, dtype=np.float64).reshape(-1, WAYPOINT_DIM)


def _check_quat(where: str, quat) -> None:
    norm = math.sqrt(sum(v * v for v in quat))
    if abs(norm - 1.0) > 1e-3:
        raise ConfigError(f"{where}: orientation {list(quat)} is not a unit quaternion")


@dataclass
class Leg:
    """One part of a reset: move to (pos, quat) with the gripper command, or wait for the
    operator's `reset` event (pos/quat None) holding the arm."""

    name: str  # how the operator hears about it: "home", "waypoint 2", "the operator's reset"
    pos: np.ndarray | None
    quat: np.ndarray | None
    gripper: int  # +1 close, -1 open, 0 keep
    timeout_s: float

    @property
    def waits_for_operator(self) -> bool:
        return self.pos is None


def home_pose(cfg: ResetConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The home pose of this reset, randomised by home_pos_noise / home_rot_noise."""
    home = np.asarray(cfg.home_pose, dtype=np.float64)
    pos = home[:3] + rng.uniform(-cfg.home_pos_noise, cfg.home_pos_noise, 3)
    rot = rng.uniform(-cfg.home_rot_noise, cfg.home_rot_noise, 3)
    return pos, quat_mul(rotvec_to_quat(rot), quat_normalize(home[3:7]))


def reset_plan(cfg: ResetConfig, rng: np.random.Generator) -> list[Leg]:
    """The legs of one reset, in order."""
    pos, quat = home_pose(cfg, rng)
    home = Leg("home", pos, quat, -1, cfg.timeout_s)
    if cfg.object == "operator":
        return [home, Leg("the operator's reset", None, None, -1, cfg.operator_timeout_s)]
    if cfg.object == "none":
        return [home]
    legs = [home]
    for i, wp in enumerate(cfg.waypoint_rows()):
        gripper = 1 if wp[7] > 0.5 else -1 if wp[7] < -0.5 else 0
        legs.append(Leg(f"waypoint {i}", wp[:3], quat_normalize(wp[3:7]), gripper, cfg.timeout_s))
    return [*legs, Leg("home", pos, quat, -1, cfg.timeout_s)]


def pose_error(pos, quat, goal_pos, goal_quat) -> tuple[float, float]:
    """(position error m, rotation error rad) between a measured pose and a goal."""
    dist = float(np.linalg.norm(np.asarray(goal_pos, np.float64) - np.asarray(pos, np.float64)))
    return dist, float(np.linalg.norm(orientation_error(goal_quat, quat)))


def reached(leg: Leg, pos, quat, cfg: ResetConfig) -> bool:
    """Whether the measured TCP pose is within the tolerances of a move leg's goal."""
    dist, angle = pose_error(pos, quat, leg.pos, leg.quat)
    return dist <= cfg.pos_tol and angle <= cfg.rot_tol


class ResetTimeout(RuntimeError):
    """A reset leg ran out of time; the message tells the operator what to check."""


class LegClock:
    """The deadline of one leg, started at `start` (s)."""

    def __init__(self, leg: Leg, start: float):
        self.leg, self.start = leg, start

    def check(self, now: float, pos=None, quat=None) -> None:
        """Raise ResetTimeout when the leg's time is up (pos/quat: the newest measured pose)."""
        if now - self.start <= self.leg.timeout_s:
            return
        leg = self.leg
        if leg.waits_for_operator:
            raise ResetTimeout(
                f"reset: no reset event within {leg.timeout_s:g} s; place the object and press "
                "reset on the teleop device (or set reset.object: none to skip this wait)"
            )
        where = "no current_pose"
        if pos is not None:
            dist, angle = pose_error(pos, quat, leg.pos, leg.quat)
            where = f"still {dist * 100:.1f} cm and {angle:.2f} rad away"
        raise ResetTimeout(
            f"reset: the TCP did not reach {leg.name} within {leg.timeout_s:g} s ({where}); "
            "check the controller is running and following target_pose, and that the goal is "
            "inside the safety workspace"
        )
