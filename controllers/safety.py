"""Command safety filter at the policy rate (e.g. 10 Hz), between policy/operator and controller.

Every target pose passes through `filter()`, which guarantees, relative to the last safe target:
  - non-finite values or a zero quaternion are rejected: the last safe target is held (held=True);
  - the position ends inside the workspace box and the orientation inside the per-axis bounds
    around `orientation_ref` (when the last safe target was inside them, which reset() starts from
    unless the robot starts outside: then the target walks back at the step limits);
  - translation per step <= max_step_trans, rotation per step <= max_step_rot.
`watchdog()` is called every control tick; when no command has been accepted within
`command_timeout_s` it holds the last safe target and says so.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from controllers.config import ConfigError
from controllers.se3 import orientation_error, quat_mul, quat_normalize, rotvec_to_quat, slerp

log = logging.getLogger(__name__)

_TOL = 1e-9  # slack for float rounding when checking the bounds we just enforced
_WARN_INTERVAL_S = 1.0


@dataclass
class SafetyConfig:
    """Workspace and step limits of the safety filter; validated on construction."""

    workspace_min: tuple[float, float, float] = (0.25, -0.35, 0.0)
    workspace_max: tuple[float, float, float] = (0.75, 0.35, 0.5)
    max_step_trans: float = 0.02
    max_step_rot: float = 0.1
    orientation_ref: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 0.0)
    max_orientation_dev: tuple[float, float, float] = (0.5, 0.5, 3.2)
    command_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        for key, size in (
            ("workspace_min", 3),
            ("workspace_max", 3),
            ("orientation_ref", 4),
            ("max_orientation_dev", 3),
        ):
            values = getattr(self, key)
            if len(values) != size:
                raise ConfigError(f"{key}: expected {size} values, got {len(values)}")
            for i, v in enumerate(values):
                if not math.isfinite(v):
                    raise ConfigError(f"{key}[{i}]: {v!r} must be finite")
        for i, axis in enumerate("xyz"):
            if not self.workspace_min[i] < self.workspace_max[i]:
                raise ConfigError(
                    f"workspace_min[{i}] ({axis}) = {self.workspace_min[i]} must be < "
                    f"workspace_max[{i}] = {self.workspace_max[i]}"
                )
            if not self.max_orientation_dev[i] > 0:
                raise ConfigError(
                    f"max_orientation_dev[{i}]: {self.max_orientation_dev[i]!r} must be > 0"
                )
        for key in ("max_step_trans", "max_step_rot", "command_timeout_s"):
            value = getattr(self, key)
            if not 0 < value < math.inf:
                raise ConfigError(f"{key}: {value!r} must be a finite number > 0")
        norm = math.sqrt(sum(v * v for v in self.orientation_ref))
        if abs(norm - 1.0) > 1e-3:
            raise ConfigError(
                f"orientation_ref: {self.orientation_ref} is not a unit quaternion "
                f"(norm {norm:.4f})"
            )


@dataclass
class SafetyResult:
    """The target to send, and what the filter did to it (reason is "" when nothing happened)."""

    pos: np.ndarray
    quat: np.ndarray
    clipped: bool
    held: bool
    reason: str


class SafetyFilter:
    """Workspace box, step limits, orientation bounds, NaN/inf rejection, stale-command watchdog."""

    def __init__(self, config: SafetyConfig):
        self.config = config
        self._lo = np.array(config.workspace_min, dtype=np.float64)
        self._hi = np.array(config.workspace_max, dtype=np.float64)
        self._ref = quat_normalize(np.array(config.orientation_ref, dtype=np.float64))
        self._max_dev = np.array(config.max_orientation_dev, dtype=np.float64)
        self._pos: np.ndarray | None = None
        self._quat: np.ndarray | None = None
        self._last_accept = -math.inf
        self._last_warning: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def reset(self, pos, quat, now: float) -> None:
        """Start from the robot's current pose (the last safe target from now on) at `now` (s)."""
        pos = np.asarray(pos, dtype=np.float64)
        quat = np.asarray(quat, dtype=np.float64)
        if (
            pos.shape != (3,)
            or quat.shape != (4,)
            or not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat)))
        ):
            raise ValueError(
                "SafetyFilter.reset: pos must be 3 and quat 4 finite numbers, "
                f"got {pos!r}, {quat!r}"
            )
        self._pos = pos.copy()
        self._quat = quat_normalize(quat)
        self._last_accept = float(now)
        if not self._in_box(self._pos) or not self._in_bounds(self._quat):
            log.warning(
                "safety: reset pose %s %s is outside the workspace box or orientation bounds; "
                "targets will move back inside at the step limits",
                self._pos,
                self._quat,
            )

    @property
    def last_safe(self) -> tuple[np.ndarray, np.ndarray]:
        """The last safe target (position, quaternion), as copies."""
        self._require_reset()
        return self._pos.copy(), self._quat.copy()

    def filter(self, target_pos, target_quat, now: float) -> SafetyResult:
        """Make a commanded target pose safe; see the module docstring for the guarantees."""
        self._require_reset()
        pos = np.asarray(target_pos, dtype=np.float64)
        quat = np.asarray(target_quat, dtype=np.float64)
        if pos.shape != (3,) or quat.shape != (4,):
            raise ValueError(
                f"SafetyFilter.filter: target_pos must have shape (3,) and target_quat (4,), "
                f"got {pos.shape} and {quat.shape}"
            )
        invalid = []
        if not np.all(np.isfinite(pos)):
            invalid.append(f"non-finite target_pos {pos.tolist()}")
        if not np.all(np.isfinite(quat)):
            invalid.append(f"non-finite target_quat {quat.tolist()}")
        elif not np.any(quat):
            invalid.append("zero target_quat")
        if invalid:
            reason = "; ".join(invalid) + ": holding last safe target"
            self._warn("invalid", reason, now)
            return SafetyResult(
                self._pos.copy(), self._quat.copy(), clipped=False, held=True, reason=reason
            )

        notes = []
        box_pos = np.clip(pos, self._lo, self._hi)
        if np.any(box_pos != pos):
            notes.append("workspace box")
        step = box_pos - self._pos
        dist = float(np.linalg.norm(step))
        if dist > self.config.max_step_trans:
            notes.append(f"translation step {dist:.4f} m > {self.config.max_step_trans} m")
            box_pos = self._pos + step * (self.config.max_step_trans / dist)

        quat = quat_normalize(
            quat / np.max(np.abs(quat))
        )  # pre-scaled: huge entries must not overflow
        dev = orientation_error(quat, self._ref)
        dev_clipped = np.clip(dev, -self._max_dev, self._max_dev)
        if np.any(dev_clipped != dev):
            notes.append("orientation bounds")
            quat = quat_mul(rotvec_to_quat(dev_clipped), self._ref)
        new_quat = self._rotation_step(quat, notes)

        self._pos, self._quat = box_pos, new_quat
        self._last_accept = float(now)
        reason = ("clipped: " + ", ".join(notes)) if notes else ""
        return SafetyResult(
            box_pos.copy(), new_quat.copy(), clipped=bool(notes), held=False, reason=reason
        )

    def watchdog(self, now: float) -> SafetyResult:
        """Hold the last safe target (held=True) if no command was accepted in command_timeout_s."""
        self._require_reset()
        age = now - self._last_accept
        if age > self.config.command_timeout_s:
            reason = (
                f"stale command: none accepted for {age:.3f} s "
                f"(timeout {self.config.command_timeout_s} s); "
                f"holding last safe target"
            )
            self._warn("stale", reason, now)
            return SafetyResult(
                self._pos.copy(), self._quat.copy(), clipped=False, held=True, reason=reason
            )
        return SafetyResult(
            self._pos.copy(), self._quat.copy(), clipped=False, held=False, reason=""
        )

    def _rotation_step(self, quat: np.ndarray, notes: list[str]) -> np.ndarray:
        """Rotate from the last safe target towards quat by at most max_step_rot (geodesic)."""
        angle = float(np.linalg.norm(orientation_error(quat, self._quat)))
        t = 1.0
        if angle > self.config.max_step_rot:
            notes.append(f"rotation step {angle:.4f} rad > {self.config.max_step_rot} rad")
            t = self.config.max_step_rot / angle
        candidate = slerp(self._quat, quat, t)
        if self._in_bounds(candidate) or not self._in_bounds(self._quat):
            return candidate
        # The geodesic between two in-bound orientations can bulge out of the per-axis box of
        # rotation vectors; bisect for the furthest in-bound point (t = 0, the last target, is one).
        lo, hi = 0.0, t
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            if self._in_bounds(slerp(self._quat, quat, mid)):
                lo = mid
            else:
                hi = mid
        return slerp(self._quat, quat, lo)

    def _in_box(self, pos: np.ndarray) -> bool:
        return bool(np.all(pos >= self._lo - _TOL) and np.all(pos <= self._hi + _TOL))

    def _in_bounds(self, quat: np.ndarray) -> bool:
        return bool(np.all(np.abs(orientation_error(quat, self._ref)) <= self._max_dev + _TOL))

    def _require_reset(self) -> None:
        if self._pos is None:
            raise RuntimeError("SafetyFilter used before reset(pos, quat, now)")

    def _warn(self, kind: str, reason: str, now: float) -> None:
        # One line per kind per second at most, with the count of lines left out.
        if now - self._last_warning.get(kind, -math.inf) >= _WARN_INTERVAL_S:
            skipped = self._suppressed.pop(kind, 0)
            log.warning(
                "safety: %s%s",
                reason,
                f" ({skipped} similar messages suppressed)" if skipped else "",
            )
            self._last_warning[kind] = now
        else:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
