"""Cartesian impedance and operational-space control laws for a torque-controlled arm at 1 kHz.

    impedance:  tau = J^T (K e - D J qd)                       D = 2 zeta sqrt(K)
    opspace:    tau = J^T Lambda (K e - D xd),  Lambda = (J M^-1 J^T + lambda I)^-1
                (K, D act on unit-mass task space; the wrench is Lambda (K e - D xd))
    + nullspace posture term  N^T (k_n (q_rest - q) - d_n qd), projector N kinematic or dynamic
    + Coriolis / gravity compensation (switches)

The pose error e is clipped per axis (reference limiting: a contact force is bounded by about
stiffness x clip), the controller torque is rate limited per tick, and the sum is saturated at the
per-joint torque limit. A non-finite target is ignored (the last target is held); a non-finite
state raises before any torque leaves the controller.

The per-tick kernel is compiled with numba (see docs/controllers.md for the timing that decided
this); the class around it validates, preallocates and keeps the memory between ticks.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np

from controllers.config import ConfigError
from controllers.linalg import cho_solve, cholesky, matmul, matTvec, matvec
from controllers.se3 import orientation_error, slerp

log = logging.getLogger(__name__)

# Kernel status codes.
OK, TARGET_HELD, STATE_NOT_FINITE, BAD_SHAPE, NOT_POSITIVE_DEFINITE = 0, 1, 2, 3, 4


def _check_all(key: str, values, ok, what: str) -> None:
    for i, v in enumerate(values):
        if not ok(v):
            raise ConfigError(f"{key}[{i}]: {v!r} must be {what}")


def _positive(v: float) -> bool:
    return v > 0  # NaN fails; +inf passes (limit off)


@dataclass
class ImpedanceConfig:
    """Gains and limits of the Cartesian controller; validated on construction."""

    law: Literal["impedance", "opspace"] = "impedance"
    stiffness: tuple[float, float, float, float, float, float] = (
        1000.0,
        1000.0,
        1000.0,
        100.0,
        100.0,
        100.0,
    )
    damping_ratio: float = 1.0
    nullspace_stiffness: float = 10.0
    nullspace_damping_ratio: float = 1.0
    nullspace_projector: Literal["kinematic", "dynamic"] = "dynamic"
    rest_posture: tuple[float, ...] | None = None
    compensate_coriolis: bool = True
    compensate_gravity: bool = False
    error_clip: tuple[float, float, float, float, float, float] = (
        0.01,
        0.01,
        0.01,
        0.05,
        0.05,
        0.05,
    )
    torque_limit: tuple[float, ...] = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
    torque_rate_limit: float = 1.0
    target_filter_alpha: float = 1.0
    singular_damping: float = 1e-3

    def __post_init__(self) -> None:
        if self.law not in ("impedance", "opspace"):
            raise ConfigError(f"law: {self.law!r} is not one of ['impedance', 'opspace']")
        if self.nullspace_projector not in ("kinematic", "dynamic"):
            raise ConfigError(
                f"nullspace_projector: {self.nullspace_projector!r} "
                "is not one of ['kinematic', 'dynamic']"
            )
        for key in ("stiffness", "error_clip"):
            values = getattr(self, key)
            if len(values) != 6:
                raise ConfigError(f"{key}: expected 6 values (x y z rx ry rz), got {len(values)}")
        _check_all("stiffness", self.stiffness, lambda v: 0 < v < math.inf, "a finite number > 0")
        _check_all("error_clip", self.error_clip, _positive, "> 0 (inf turns clipping off)")
        _check_all("torque_limit", self.torque_limit, _positive, "> 0")
        if len(self.torque_limit) == 0:
            raise ConfigError("torque_limit: needs one value per joint, got none")
        if not 0 < self.damping_ratio < math.inf:
            raise ConfigError(f"damping_ratio: {self.damping_ratio!r} must be a finite number > 0")
        if not 0 <= self.nullspace_stiffness < math.inf:
            raise ConfigError(
                f"nullspace_stiffness: {self.nullspace_stiffness!r} "
                "must be finite and >= 0 (0 = off)"
            )
        if not 0 <= self.nullspace_damping_ratio < math.inf:
            raise ConfigError(
                f"nullspace_damping_ratio: {self.nullspace_damping_ratio!r} must be finite and >= 0"
            )
        if self.rest_posture is not None:
            _check_all("rest_posture", self.rest_posture, math.isfinite, "finite")
            if len(self.rest_posture) != len(self.torque_limit):
                raise ConfigError(
                    f"rest_posture: {len(self.rest_posture)} values but torque_limit has "
                    f"{len(self.torque_limit)} (one per joint)"
                )
        if not self.torque_rate_limit > 0:
            raise ConfigError(
                f"torque_rate_limit: {self.torque_rate_limit!r} must be > 0 (Nm per tick)"
            )
        if not 0 < self.target_filter_alpha <= 1:
            raise ConfigError(
                f"target_filter_alpha: {self.target_filter_alpha!r} must be in (0, 1] (1 = off)"
            )
        if not 0 <= self.singular_damping < math.inf:
            raise ConfigError(
                f"singular_damping: {self.singular_damping!r} must be finite and >= 0"
            )


@dataclass
class RobotState:
    """Measured state of an n-joint arm: float64, world frame, Jacobian rows [linear; angular]."""

    q: np.ndarray
    qd: np.ndarray
    tcp_pos: np.ndarray
    tcp_quat: np.ndarray
    jacobian: np.ndarray
    mass_matrix: np.ndarray
    coriolis: np.ndarray
    gravity: np.ndarray


@numba.njit(cache=True)
def _all_finite(x) -> bool:
    for v in x.flat:
        if not math.isfinite(v):
            return False
    return True


@numba.njit(cache=True)
def control_tick(
    q,
    qd,
    tcp_pos,
    tcp_quat,
    J,
    M,
    coriolis,
    gravity,
    target_pos,
    target_quat,
    task_gains,
    joint_params,
    scalars,
    switches,
    target,
    tau_prev,
    wrench,
    tau,
):
    """One control tick. Updates target, tau_prev, wrench and tau in place; returns a status code.

    Parameters come packed in a few arrays (numba's dispatch costs ~0.1 us per argument); the
    controller's `kernel_arrays()` are the ones after target_quat, for loops compiled around it.
    """
    K, D, clip = task_gains[0], task_gains[1], task_gains[2]
    rest, tau_limit = joint_params[0], joint_params[1]
    null_k, null_d, rate_limit, alpha, lam = (
        scalars[0],
        scalars[1],
        scalars[2],
        scalars[3],
        scalars[4],
    )
    opspace, dynamic_projector, add_coriolis, add_gravity = (
        switches[0],
        switches[1],
        switches[2],
        switches[3],
    )
    filt_pos, filt_quat = target[:3], target[3:]  # the filtered target, carried between ticks
    err, force = wrench[0], wrench[1]
    n = tau_prev.shape[0]
    if (
        q.shape[0] != n
        or qd.shape[0] != n
        or tcp_pos.shape[0] != 3
        or tcp_quat.shape[0] != 4
        or J.shape[0] != 6
        or J.shape[1] != n
        or M.shape[0] != n
        or M.shape[1] != n
        or coriolis.shape[0] != n
        or gravity.shape[0] != n
        or target_pos.shape[0] != 3
        or target_quat.shape[0] != 4
    ):
        return BAD_SHAPE
    # Checked up front: a non-finite entry can vanish inside the math (inf on M's diagonal gives a
    # finite, wrong torque) or hide in a clip, so finiteness of the output alone is not enough.
    if not (
        _all_finite(q)
        and _all_finite(qd)
        and _all_finite(tcp_pos)
        and _all_finite(tcp_quat)
        and _all_finite(J)
        and _all_finite(M)
        and (_all_finite(coriolis) or not add_coriolis)
        and (_all_finite(gravity) or not add_gravity)
    ):
        return STATE_NOT_FINITE

    # Target: a non-finite or zero quaternion is ignored and the last target held; otherwise
    # low-pass on SE(3) (alpha = 1 passes through).
    status = OK
    qnorm = math.sqrt(
        target_quat[0] ** 2 + target_quat[1] ** 2 + target_quat[2] ** 2 + target_quat[3] ** 2
    )
    if not (_all_finite(target_pos) and qnorm > 1e-9 and qnorm < np.inf):
        status = TARGET_HELD
    elif alpha >= 1.0:
        filt_pos[:] = target_pos
        filt_quat[:] = target_quat / qnorm
    else:
        filt_pos += alpha * (target_pos - filt_pos)
        filt_quat[:] = slerp(filt_quat, target_quat / qnorm, alpha)

    # Pose error, clipped per axis: the wrench the target can demand is bounded by K * clip.
    err[:3] = filt_pos - tcp_pos
    err[3:] = orientation_error(filt_quat, tcp_quat)
    for i in range(6):
        err[i] = min(max(err[i], -clip[i]), clip[i])

    xd = matvec(J, qd)
    f = K * err - D * xd

    nullspace = null_k > 0.0 or null_d > 0.0
    if opspace or (nullspace and dynamic_projector):
        L_M = cholesky(M, 0.0)
        if L_M is None:
            return NOT_POSITIVE_DEFINITE
        Minv_JT = np.empty((n, 6))  # M^-1 J^T, column by column
        for c in range(6):
            Minv_JT[:, c] = cho_solve(L_M, J[c])
        L_A = cholesky(matmul(J, Minv_JT), lam)  # factor of Lambda^-1, damped near singularities
        if L_A is None:
            return NOT_POSITIVE_DEFINITE
    if opspace:
        force[:] = cho_solve(L_A, f)  # Lambda (K e - D xd)
    else:
        force[:] = f
    tau[:] = matTvec(J, force)

    # Nullspace posture torque tau0, projected so that it leaves the task unaffected:
    #   kinematic  N^T tau0 = tau0 - J^T (J J^T)^-1 J tau0
    #   dynamic    N^T tau0 = tau0 - J^T Lambda J M^-1 tau0   (J M^-1 = (M^-1 J^T)^T)
    if nullspace:
        tau0 = null_k * (rest - q) - null_d * qd
        if dynamic_projector:
            y = cho_solve(L_A, matTvec(Minv_JT, tau0))
        else:
            L_JJT = cholesky(matmul(J, J.T), lam)
            if L_JJT is None:
                return NOT_POSITIVE_DEFINITE
            y = cho_solve(L_JJT, matvec(J, tau0))
        tau += tau0 - matTvec(J, y)

    if add_coriolis:
        tau += coriolis
    if not _all_finite(tau):  # overflow
        return STATE_NOT_FINITE
    # Rate limit the controller torque; gravity is added after it so that a reset (memory 0)
    # does not let the arm sag while the limit ramps up. Then saturate the total.
    for i in range(n):
        t = min(max(tau[i], tau_prev[i] - rate_limit), tau_prev[i] + rate_limit)
        tau_prev[i] = t
        if add_gravity:
            t += gravity[i]
        tau[i] = min(max(t, -tau_limit[i]), tau_limit[i])
    return status


class CartesianImpedanceController:
    """Cartesian impedance / operational-space controller: reset() once, then compute() per tick.

    `last_error` and `last_task_force` are preallocated and overwritten every tick.
    """

    def __init__(self, config: ImpedanceConfig, n_joints: int):
        if n_joints < 1:
            raise ConfigError(f"n_joints: {n_joints!r} must be >= 1")
        if len(config.torque_limit) != n_joints:
            raise ConfigError(
                f"torque_limit: {len(config.torque_limit)} values for {n_joints} joints"
            )
        if config.rest_posture is not None and len(config.rest_posture) != n_joints:
            raise ConfigError(
                f"rest_posture: {len(config.rest_posture)} values for {n_joints} joints"
            )
        self.config = config
        self.n_joints = n_joints
        K = np.array(config.stiffness, dtype=np.float64)
        # Rows: stiffness, damping (critical for unit mass; exact for opspace, where K and D act
        # on accelerations), error clip.
        self._task_gains = np.array([K, 2.0 * config.damping_ratio * np.sqrt(K), config.error_clip])
        # Rows: rest posture (set by reset()), torque limit.
        self._joint_params = np.zeros((2, n_joints))
        self._joint_params[1] = config.torque_limit
        self._rest = self._joint_params[0]
        null_d = 2.0 * config.nullspace_damping_ratio * math.sqrt(config.nullspace_stiffness)
        self._scalars = np.array(
            [
                config.nullspace_stiffness,
                null_d,
                config.torque_rate_limit,
                config.target_filter_alpha,
                config.singular_damping,
            ]
        )
        self._switches = np.array(
            [
                config.law == "opspace",
                config.nullspace_projector == "dynamic",
                config.compensate_coriolis,
                config.compensate_gravity,
            ]
        )
        # Memory between ticks, with views for reading: filtered target (pos, quat wxyz), the rate
        # limiter's last torque, and this tick's clipped error and task wrench.
        self._target = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
        self._filt_pos, self._filt_quat = self._target[:3], self._target[3:]
        self._tau_prev = np.zeros(n_joints)
        self._wrench = np.zeros((2, 6))
        self.last_error, self.last_task_force = self._wrench[0], self._wrench[1]
        self._is_reset = False
        self._held_ticks = 0
        self._last_warning = -math.inf

    def reset(self, state: RobotState) -> None:
        """Target := current TCP pose, rest posture := config or current q, rate memory := 0."""
        for name in ("q", "tcp_pos", "tcp_quat"):
            value = np.asarray(getattr(state, name), dtype=np.float64)
            expected = {"q": self.n_joints, "tcp_pos": 3, "tcp_quat": 4}[name]
            if value.shape != (expected,) or not np.all(np.isfinite(value)):
                raise ValueError(
                    f"reset: RobotState.{name} must be {expected} finite values, got {value!r}"
                )
        if abs(np.linalg.norm(state.tcp_quat) - 1.0) > 1e-3:
            raise ValueError(
                f"reset: RobotState.tcp_quat {state.tcp_quat!r} is not a unit quaternion"
            )
        self._filt_pos[:] = state.tcp_pos
        self._filt_quat[:] = state.tcp_quat / np.linalg.norm(state.tcp_quat)
        self._rest[:] = state.q if self.config.rest_posture is None else self.config.rest_posture
        self._tau_prev[:] = 0.0
        self.last_error[:] = 0.0
        self.last_task_force[:] = 0.0
        self._held_ticks = 0
        # One tick on scratch memory: compiles (or loads from numba's cache) the kernel for these
        # array types and layouts now, not on the first tick of a 1 kHz loop, and checks the state.
        status = self._tick(
            state,
            self._filt_pos,
            self._filt_quat,
            self._target.copy(),
            np.zeros(self.n_joints),
            np.zeros((2, 6)),
            np.empty(self.n_joints),
        )
        if status not in (OK, TARGET_HELD):
            raise ValueError(f"reset: {self._describe_failure(status, state)}")
        self._is_reset = True

    def memory(self) -> dict[str, np.ndarray]:
        """Copies of what the controller carries from tick to tick (exact save/restore of a run)."""
        return {
            "target_pos": self._filt_pos.copy(),
            "target_quat": self._filt_quat.copy(),
            "tau_prev": self._tau_prev.copy(),
            "rest_posture": self._rest.copy(),
        }

    def set_memory(self, memory: dict[str, np.ndarray]) -> None:
        """Restore what memory() returned (after reset(), which it overrides)."""
        for key, array in (
            ("target_pos", self._filt_pos),
            ("target_quat", self._filt_quat),
            ("tau_prev", self._tau_prev),
            ("rest_posture", self._rest),
        ):
            value = np.asarray(memory[key], dtype=np.float64)
            if value.shape != array.shape or not np.all(np.isfinite(value)):
                raise ValueError(
                    f"set_memory: {key} must be {array.shape} finite values, got {value!r}"
                )
            array[:] = value

    @property
    def target(self) -> tuple[np.ndarray, np.ndarray]:
        """The (filtered) target pose the controller is tracking, as copies."""
        return self._filt_pos.copy(), self._filt_quat.copy()

    def compute(
        self, state: RobotState, target_pos: np.ndarray, target_quat: np.ndarray
    ) -> np.ndarray:
        """Joint torques (n,) for this tick towards the target pose (float64 (3,), (4,) wxyz)."""
        if not self._is_reset:
            raise RuntimeError("CartesianImpedanceController.compute() called before reset(state)")
        tau = np.empty(self.n_joints)
        status = self._tick(
            state, target_pos, target_quat, self._target, self._tau_prev, self._wrench, tau
        )
        self.report(status, state, target_pos, target_quat, held_ticks=int(status == TARGET_HELD))
        return tau

    def kernel_arrays(self) -> tuple[np.ndarray, ...]:
        """The packed gains and the live memory that `control_tick` takes after target_quat, for a
        loop compiled around the kernel (sim/physics.py); call report() with what it returns."""
        if not self._is_reset:
            raise RuntimeError(
                "CartesianImpedanceController.kernel_arrays() called before reset(state)"
            )
        return (
            self._task_gains,
            self._joint_params,
            self._scalars,
            self._switches,
            self._target,
            self._tau_prev,
            self._wrench,
        )

    def report(
        self,
        status: int,
        state: RobotState,
        target_pos: np.ndarray,
        target_quat: np.ndarray,
        held_ticks: int,
    ) -> None:
        """Act on a kernel status: warn about held targets, raise naming the problem on failure."""
        if held_ticks:
            self._warn_held(target_pos, target_quat, held_ticks)
        if status not in (OK, TARGET_HELD):
            raise ValueError(self._describe_failure(status, state))

    def _tick(self, state, target_pos, target_quat, target, tau_prev, wrench, tau) -> int:
        return control_tick(
            state.q,
            state.qd,
            state.tcp_pos,
            state.tcp_quat,
            state.jacobian,
            state.mass_matrix,
            state.coriolis,
            state.gravity,
            target_pos,
            target_quat,
            self._task_gains,
            self._joint_params,
            self._scalars,
            self._switches,
            target,
            tau_prev,
            wrench,
            tau,
        )

    def _warn_held(self, target_pos, target_quat, ticks: int) -> None:
        # One line per second at most: this runs at 1 kHz.
        self._held_ticks += ticks
        now = time.monotonic()
        if now - self._last_warning >= 1.0:
            log.warning(
                "impedance: ignoring invalid target (pos %s, quat %s), holding the last target "
                "(%d ticks held so far)",
                target_pos,
                target_quat,
                self._held_ticks,
            )
            self._last_warning = now

    def _describe_failure(self, status: int, state: RobotState) -> str:
        fields = (
            "q",
            "qd",
            "tcp_pos",
            "tcp_quat",
            "jacobian",
            "mass_matrix",
            "coriolis",
            "gravity",
        )
        if status == BAD_SHAPE:
            n = self.n_joints
            expected = {
                "q": (n,),
                "qd": (n,),
                "tcp_pos": (3,),
                "tcp_quat": (4,),
                "jacobian": (6, n),
                "mass_matrix": (n, n),
                "coriolis": (n,),
                "gravity": (n,),
            }
            wrong = [
                f"{k} {np.shape(getattr(state, k))} != {v}"
                for k, v in expected.items()
                if np.shape(getattr(state, k)) != v
            ]
            shapes = ", ".join(wrong) or "target_pos/target_quat must be (3,)/(4,)"
            return f"RobotState has wrong shapes: {shapes}"
        bad = [k for k in fields if not np.all(np.isfinite(getattr(state, k)))]
        if bad or status == STATE_NOT_FINITE:
            where = ", ".join(bad) or "derived quantities"
            return f"RobotState has non-finite values in {where}; no torque computed"
        return (
            "mass matrix or J M^-1 J^T is not positive definite (singular Jacobian with "
            "singular_damping = 0?); no torque computed"
        )
