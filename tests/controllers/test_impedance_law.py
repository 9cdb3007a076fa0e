"""The compiled control law against a plain numpy transcription of the formulas, plus its limits.

States come from the MuJoCo arm in conftest (random posture and velocity), so J, M and the bias
torques are those of a real 7-DoF model.
"""

import dataclasses
import logging

import mujoco
import numpy as np
import pytest
from conftest import HOME, ArmSim

from controllers.impedance import CartesianImpedanceController, ImpedanceConfig
from controllers.se3 import orientation_error, quat_mul, rotvec_to_quat

NO_LIMITS = dict(
    error_clip=(1e9,) * 6,
    torque_rate_limit=1e9,
    torque_limit=(1e9,) * 7,
    compensate_gravity=True,
    rest_posture=tuple(HOME),
)


def random_state(seed: int):
    rng = np.random.default_rng(seed)
    sim = ArmSim(q0=HOME + 0.2 * rng.normal(size=7))
    sim.data.qvel[:] = rng.normal(size=7)
    mujoco.mj_forward(sim.model, sim.data)
    state = sim.state()
    target_pos = state.tcp_pos + rng.uniform(-0.03, 0.03, 3)
    target_quat = quat_mul(rotvec_to_quat(rng.uniform(-0.1, 0.1, 3)), state.tcp_quat)
    return state, target_pos, target_quat


def reference_torque(cfg: ImpedanceConfig, state, target_pos, target_quat):
    """The law written with numpy's dense linear algebra, no limits."""
    J, M, q, qd = state.jacobian, state.mass_matrix, state.q, state.qd
    K = np.array(cfg.stiffness)
    D = 2 * cfg.damping_ratio * np.sqrt(K)
    e = np.r_[target_pos - state.tcp_pos, orientation_error(target_quat, state.tcp_quat)]
    f = K * e - D * (J @ qd)
    Minv = np.linalg.inv(M)
    Lam = np.linalg.inv(J @ Minv @ J.T + cfg.singular_damping * np.eye(6))
    F = Lam @ f if cfg.law == "opspace" else f
    kn = cfg.nullspace_stiffness
    tau0 = (
        kn * (np.array(cfg.rest_posture) - q) - 2 * cfg.nullspace_damping_ratio * np.sqrt(kn) * qd
    )
    if cfg.nullspace_projector == "kinematic":
        NT = np.eye(7) - J.T @ np.linalg.inv(J @ J.T + cfg.singular_damping * np.eye(6)) @ J
    else:
        NT = np.eye(7) - J.T @ Lam @ J @ Minv
    return J.T @ F + NT @ tau0 + state.coriolis + state.gravity, F


@pytest.mark.parametrize("law", ["impedance", "opspace"])
@pytest.mark.parametrize("projector", ["kinematic", "dynamic"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_law_matches_numpy_reference(law, projector, seed):
    cfg = ImpedanceConfig(law=law, nullspace_projector=projector, **NO_LIMITS)
    state, target_pos, target_quat = random_state(seed)
    controller = CartesianImpedanceController(cfg, 7)
    controller.reset(state)
    tau = controller.compute(state, target_pos, target_quat)
    expected_tau, expected_force = reference_torque(cfg, state, target_pos, target_quat)
    np.testing.assert_allclose(controller.last_task_force, expected_force, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tau, expected_tau, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("projector", ["kinematic", "dynamic"])
def test_nullspace_torque_leaves_the_task_alone(projector):
    # Only the posture term acts (task gains ~0): kinematic N^T tau0 is orthogonal to range(J^T),
    # dynamic N^T tau0 causes no task-space acceleration (J M^-1 tau = 0).
    cfg = ImpedanceConfig(
        nullspace_projector=projector,
        stiffness=(1e-12,) * 6,
        damping_ratio=1e-12,
        singular_damping=0.0,
        compensate_coriolis=False,
        **{**NO_LIMITS, "compensate_gravity": False},
    )
    state, _, _ = random_state(3)
    controller = CartesianImpedanceController(cfg, 7)
    controller.reset(state)
    tau = controller.compute(state, state.tcp_pos, state.tcp_quat)
    J, M = state.jacobian, state.mass_matrix
    assert np.linalg.norm(tau) > 0.1
    residual = J @ np.linalg.solve(M, tau) if projector == "dynamic" else np.linalg.pinv(J.T) @ tau
    assert np.abs(residual).max() < 1e-8 * np.linalg.norm(tau)


def test_at_target_and_at_rest_the_task_force_is_zero(arm):
    controller = CartesianImpedanceController(ImpedanceConfig(compensate_gravity=True), 7)
    state = arm.state()
    controller.reset(state)
    tau = controller.compute(state, state.tcp_pos, state.tcp_quat)
    np.testing.assert_allclose(controller.last_task_force, np.zeros(6), atol=1e-12)
    np.testing.assert_allclose(tau, state.gravity + state.coriolis, atol=1e-12)


def test_switches_add_exactly_the_compensation_terms():
    state, target_pos, target_quat = random_state(4)
    base = ImpedanceConfig(compensate_coriolis=False, **{**NO_LIMITS, "compensate_gravity": False})
    torques = {}
    for coriolis in (False, True):
        for gravity in (False, True):
            cfg = dataclasses.replace(
                base, compensate_coriolis=coriolis, compensate_gravity=gravity
            )
            controller = CartesianImpedanceController(cfg, 7)
            controller.reset(state)
            torques[coriolis, gravity] = controller.compute(state, target_pos, target_quat)
    np.testing.assert_allclose(
        torques[True, False] - torques[False, False], state.coriolis, atol=1e-9
    )
    np.testing.assert_allclose(
        torques[False, True] - torques[False, False], state.gravity, atol=1e-9
    )
    np.testing.assert_allclose(
        torques[True, True] - torques[False, False], state.coriolis + state.gravity, atol=1e-9
    )


def test_pose_error_is_clipped_per_axis(arm):
    clip = (0.01, 0.02, 0.03, 0.05, 0.06, 0.07)
    controller = CartesianImpedanceController(ImpedanceConfig(error_clip=clip), 7)
    state = arm.state()
    controller.reset(state)
    target_quat = quat_mul(rotvec_to_quat(np.array([0.5, -0.5, 0.5])), state.tcp_quat)
    controller.compute(state, state.tcp_pos + [0.5, -0.5, 0.5], target_quat)
    np.testing.assert_allclose(
        controller.last_error, np.array(clip) * [1, -1, 1, 1, -1, 1], atol=1e-12
    )
    K = np.array(ImpedanceConfig().stiffness)
    np.testing.assert_allclose(controller.last_task_force, K * controller.last_error)  # qd = 0


def test_torque_rate_and_torque_limits_hold_every_tick():
    state, target_pos, target_quat = random_state(5)
    limit = (20.0, 20.0, 20.0, 20.0, 5.0, 5.0, 5.0)
    cfg = ImpedanceConfig(torque_rate_limit=0.5, torque_limit=limit, error_clip=(1.0,) * 6)
    controller = CartesianImpedanceController(cfg, 7)
    controller.reset(state)
    previous = np.zeros(7)
    far = target_pos + [0.2, 0.2, -0.2]
    for tick in range(100):
        tau = controller.compute(state, far if tick % 20 < 10 else target_pos, target_quat)
        assert np.all(np.abs(tau) <= np.array(limit) + 1e-12)
        assert np.all(np.abs(tau - previous) <= 0.5 + 1e-12)
        previous = tau
    assert np.abs(tau).max() > 4.0  # the limits shaped a real command, not a zero one


def test_target_filter_moves_alpha_of_the_way_per_tick(arm):
    controller = CartesianImpedanceController(ImpedanceConfig(target_filter_alpha=0.1), 7)
    state = arm.state()
    controller.reset(state)
    goal = state.tcp_pos + [0.05, 0.0, 0.0]
    goal_quat = quat_mul(rotvec_to_quat(np.array([0.0, 0.0, 0.2])), state.tcp_quat)
    for tick in range(1, 4):
        controller.compute(state, goal, goal_quat)
        pos, quat = controller.target
        np.testing.assert_allclose(pos[0] - state.tcp_pos[0], 0.05 * (1 - 0.9**tick), atol=1e-12)
        np.testing.assert_allclose(
            orientation_error(quat, state.tcp_quat), [0, 0, 0.2 * (1 - 0.9**tick)], atol=1e-9
        )


@pytest.mark.parametrize(
    "bad_pos, bad_quat",
    [
        ([np.nan, 0, 0], None),
        ([np.inf, 0, 0], None),
        (None, [np.nan, 1, 0, 0]),
        (None, [0, 0, 0, 0]),
    ],
)
def test_invalid_target_holds_the_last_target_and_warns(arm, caplog, bad_pos, bad_quat):
    controller = CartesianImpedanceController(ImpedanceConfig(torque_rate_limit=1e9), 7)
    state = arm.state()
    controller.reset(state)
    good = state.tcp_pos + [0.005, 0, 0]
    expected = controller.compute(state, good, state.tcp_quat)
    pos = good if bad_pos is None else np.array(bad_pos, dtype=float)
    quat = state.tcp_quat if bad_quat is None else np.array(bad_quat, dtype=float)
    with caplog.at_level(logging.WARNING, logger="controllers.impedance"):
        for _ in range(5):
            tau = controller.compute(state, pos, quat)
            assert np.all(np.isfinite(tau))
    np.testing.assert_allclose(tau, expected, atol=1e-12)  # same state, same (held) target
    np.testing.assert_allclose(controller.target[0], good)
    warnings = [r for r in caplog.records if "ignoring invalid target" in r.getMessage()]
    assert len(warnings) == 1  # rate limited: one line, not one per tick


@pytest.mark.parametrize("field", ["q", "qd", "jacobian", "mass_matrix", "coriolis", "tcp_pos"])
def test_non_finite_state_raises_naming_the_field(arm, field):
    controller = CartesianImpedanceController(ImpedanceConfig(), 7)
    state = arm.state()
    controller.reset(state)
    getattr(state, field).flat[0] = np.nan
    with pytest.raises(ValueError, match=f"non-finite values in {field}"):
        controller.compute(state, state.tcp_pos, state.tcp_quat)


def test_wrong_shapes_and_missing_reset_are_clear_errors(arm):
    controller = CartesianImpedanceController(ImpedanceConfig(), 7)
    state = arm.state()
    with pytest.raises(RuntimeError, match="before reset"):
        controller.compute(state, state.tcp_pos, state.tcp_quat)
    controller.reset(state)
    state.jacobian = state.jacobian[:, :6].copy()
    with pytest.raises(ValueError, match=r"jacobian \(6, 6\) != \(6, 7\)"):
        controller.compute(state, state.tcp_pos, state.tcp_quat)


def test_memory_round_trip_replays_exactly():
    state, target_pos, target_quat = random_state(6)
    cfg = ImpedanceConfig(target_filter_alpha=0.05)
    first = CartesianImpedanceController(cfg, 7)
    first.reset(state)
    for _ in range(10):
        first.compute(state, target_pos, target_quat)
    second = CartesianImpedanceController(cfg, 7)
    second.reset(state)
    second.set_memory(first.memory())
    for _ in range(5):
        np.testing.assert_array_equal(
            first.compute(state, target_pos, target_quat),
            second.compute(state, target_pos, target_quat),
        )
    with pytest.raises(ValueError, match=r"set_memory: tau_prev must be \(7,\) finite values"):
        second.set_memory({**first.memory(), "tau_prev": np.zeros(6)})


def test_reset_checks_the_whole_state(arm):
    controller = CartesianImpedanceController(ImpedanceConfig(), 7)
    state = arm.state()
    state.mass_matrix = state.mass_matrix.copy()
    state.mass_matrix[2, 2] = np.inf
    with pytest.raises(ValueError, match="reset: RobotState has non-finite values in mass_matrix"):
        controller.reset(state)
    state = arm.state()
    state.coriolis = np.zeros(6)
    with pytest.raises(
        ValueError, match=r"reset: RobotState has wrong shapes: coriolis \(6,\) != \(7,\)"
    ):
        controller.reset(state)


def test_singular_jacobian_is_damped_or_reported():
    state, target_pos, target_quat = random_state(7)
    state.jacobian[5] = 0.0  # lost a rotational direction: J M^-1 J^T is singular
    damped = CartesianImpedanceController(ImpedanceConfig(law="opspace"), 7)
    damped.reset(state)
    assert np.all(np.isfinite(damped.compute(state, target_pos, target_quat)))
    undamped = CartesianImpedanceController(ImpedanceConfig(law="opspace", singular_damping=0.0), 7)
    with pytest.raises(ValueError, match="not positive definite"):
        undamped.reset(state)
