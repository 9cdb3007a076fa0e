"""The twin's 1 kHz loop, compiled: mj_step1 -> Jacobian, mass matrix -> impedance law -> mj_step2.

Per tick the same calls as a Python loop over `mujoco.mj_step1`, `mj_jacSite`, `mj_fullM`, the
controllers/ kernel `control_tick` and `mujoco.mj_step2`, with identical results, but compiled by
numba into one function: MuJoCo's C functions are called through their addresses in the
libmujoco the bindings loaded, on the bindings' own mjModel/mjData (their `_address`). The
Python loop spent ~12 of its ~27 us per tick in call overhead (docs/benchmarks.md).

The C functions are called through an LLVM intrinsic with their addresses passed as arguments (not
ctypes objects baked into the code), so numba can cache the compiled loop on disk like the kernel.
Pointer arguments travel as 64-bit integers, which the x86-64 and AArch64 C ABIs pass exactly as
pointers.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import mujoco
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from controllers.impedance import (
    OK,
    TARGET_HELD,
    CartesianImpedanceController,
    RobotState,
    control_tick,
)


def _libmujoco() -> ctypes.CDLL:
    """The shared library the mujoco bindings are linked against (dlopen returns the loaded one)."""
    path = Path(mujoco.__file__).parent / f"libmujoco.so.{mujoco.__version__}"
    if not path.exists():
        raise ImportError(
            f"sim.physics: {path} not found; the mujoco wheel's layout changed "
            f"(mujoco {mujoco.__version__})"
        )
    return ctypes.CDLL(str(path))


_lib = _libmujoco()
_ADDRESSES = np.array(
    [
        ctypes.cast(getattr(_lib, name), ctypes.c_void_p).value
        for name in ("mj_step1", "mj_step2", "mj_jacSite", "mj_fullM")
    ],
    dtype=np.int64,
)
_STEP1, _STEP2, _JAC_SITE, _FULL_M = 0, 1, 2, 3


@intrinsic
def _c_call(typingctx, address, args):
    """Call the void C function at `address` with the (integer) values of the tuple `args`."""

    def codegen(context, builder, signature, llargs):
        values = cgutils.unpack_tuple(builder, llargs[1])
        fnty = ir.FunctionType(ir.VoidType(), [v.type for v in values])
        builder.call(builder.inttoptr(llargs[0], fnty.as_pointer()), values)
        return context.get_dummy_value()

    return types.void(address, args), codegen


@numba.njit(cache=True)
def _run(
    ticks,
    fns,
    m,
    d,
    site,
    jac,
    M,
    q,
    qd,
    tcp_pos,
    tcp_quat,
    J,
    M_arm,
    bias,
    gravity,
    coriolis,
    target_pos,
    target_quat,
    gains,
    joint_params,
    scalars,
    switches,
    target,
    tau_prev,
    wrench,
    tau,
    ctrl,
):
    """`ticks` physics steps; returns (status of the last tick, number of ticks with a held target).

    Stops before mj_step2 of a tick whose status is a failure, so no torque from it is applied.
    `jac` is the (6, nv) [jacp; jacr] buffer and J its arm columns; M the (nv, nv) mass matrix and
    M_arm its arm block; gravity the arm's gravity torques, coriolis = bias - gravity.
    """
    held = 0
    jacp, jacr = jac.ctypes.data, jac[3:].ctypes.data
    for _ in range(ticks):
        _c_call(fns[_STEP1], (m, d))
        _c_call(fns[_JAC_SITE], (m, d, jacp, jacr, np.int32(site)))
        _c_call(fns[_FULL_M], (m, d, M.ctypes.data))
        for j in range(coriolis.shape[0]):
            coriolis[j] = bias[j] - gravity[j]
        status = control_tick(
            q,
            qd,
            tcp_pos,
            tcp_quat,
            J,
            M_arm,
            coriolis,
            gravity,
            target_pos,
            target_quat,
            gains,
            joint_params,
            scalars,
            switches,
            target,
            tau_prev,
            wrench,
            tau,
        )
        if status == TARGET_HELD:
            held += 1
        elif status != OK:
            return status, held
        ctrl[:] = tau
        _c_call(fns[_STEP2], (m, d))
    return OK, held


class PhysicsLoop:
    """Runs the twin's physics with the impedance law every tick, on one model/data pair.

    `state` must be the RobotState of live views into `data` and the buffers named below, as
    PandaEnv binds them: jacobian = jac[:, :n], mass_matrix = M[:n, :n],
    gravity = qfrc_gravcomp[:n].
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        site: int,
        jac: np.ndarray,
        M: np.ndarray,
        bias: np.ndarray,
        state: RobotState,
        controller: CartesianImpedanceController,
        ctrl: np.ndarray,
    ):
        if jac.shape != (6, model.nv) or not jac.flags.c_contiguous:
            raise ValueError(
                f"PhysicsLoop: jac must be a C-contiguous (6, {model.nv}) array, got {jac.shape}"
            )
        if M.shape != (model.nv, model.nv) or not M.flags.c_contiguous:
            raise ValueError(
                f"PhysicsLoop: M must be a C-contiguous ({model.nv}, {model.nv}) array, "
                f"got {M.shape}"
            )
        self._model, self._data = (
            model,
            data,
        )  # keeps the structs alive while their addresses are used
        self._site, self._jac, self._M, self._bias = site, jac, M, bias
        self._state, self._controller, self._ctrl = state, controller, ctrl
        self._tau = np.empty(controller.n_joints)

    def run(self, ticks: int, target_pos: np.ndarray, target_quat: np.ndarray) -> None:
        """`ticks` physics steps towards the target; ValueError (no torque applied) on bad state."""
        s = self._state
        status, held = _run(
            ticks,
            _ADDRESSES,
            self._model._address,
            self._data._address,
            self._site,
            self._jac,
            self._M,
            s.q,
            s.qd,
            s.tcp_pos,
            s.tcp_quat,
            s.jacobian,
            s.mass_matrix,
            self._bias,
            s.gravity,
            s.coriolis,
            target_pos,
            target_quat,
            *self._controller.kernel_arrays(),
            self._tau,
            self._ctrl,
        )
        self._controller.report(status, s, target_pos, target_quat, held)
