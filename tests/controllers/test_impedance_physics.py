"""The control laws closing the loop on the MuJoCo arm at 1 kHz (mj_step1 / compute / mj_step2).

Stated bounds (also in docs/controllers.md):
  - holding the reset pose for 1 s: task force < 1e-9 N, TCP drift < 1e-9 m;
  - opspace law, damping_ratio 1 (critically damped): a 2 cm step on each axis and a 0.2 rad
    rotation step overshoot by < 1 % of the step and are within 1 % of it after 1 s;
  - impedance law: the same steps end within 0.5 mm and 1 mrad of the target after 2 s (its damping
    is critical for unit task mass: the arm's apparent mass of 2-5 kg makes translations
    underdamped, its wrist inertia of < 0.1 kg m^2 makes rotations overdamped and slow);
  - pushing into a rigid wall 7 cm behind it with error clipping: the steady wall-normal force
    is within 3 % of stiffness x clip, the tangential force below 10 % of it.
"""

import numpy as np
import pytest
from conftest import ArmSim

from controllers.impedance import CartesianImpedanceController, ImpedanceConfig
from controllers.se3 import orientation_error, quat_mul, rotvec_to_quat

STEPS = {
    "x": (np.array([0.02, 0, 0]), np.zeros(3)),
    "y": (np.array([0, 0.02, 0]), np.zeros(3)),
    "z": (np.array([0, 0, -0.02]), np.zeros(3)),
    "rot": (np.zeros(3), np.array([0.1, -0.1, 0.1]) / np.sqrt(3) * 2),
}


def make_controller(sim: ArmSim, **overrides) -> CartesianImpedanceController:
    config = ImpedanceConfig(compensate_gravity=True, **overrides)  # the test arm feels gravity
    controller = CartesianImpedanceController(config, sim.model.nv)
    controller.reset(sim.state())
    return controller


@pytest.mark.parametrize("law", ["impedance", "opspace"])
def test_holding_the_reset_pose_gives_zero_task_force(law):
    sim = ArmSim()
    start = sim.state()
    controller = make_controller(sim, law=law)
    forces = []
    sim.run(
        controller,
        start.tcp_pos,
        start.tcp_quat,
        1.0,
        record=lambda state, tau: forces.append(controller.last_task_force.copy()),
    )
    assert np.abs(forces).max() < 1e-9
    assert np.abs(sim.state().tcp_pos - start.tcp_pos).max() < 1e-9


def step_response(law: str, step: str, seconds: float):
    sim = ArmSim()
    start = sim.state()
    controller = make_controller(
        sim, law=law, error_clip=(0.05,) * 3 + (0.2,) * 3
    )  # steps stay unclipped
    dpos, drot = STEPS[step]
    target_pos = start.tcp_pos + dpos
    target_quat = quat_mul(rotvec_to_quat(drot), start.tcp_quat)
    # Progress along the step direction, as a fraction of the step.
    direction = np.r_[dpos, drot] / np.linalg.norm(np.r_[dpos, drot])
    size = np.linalg.norm(np.r_[dpos, drot])
    progress = []

    def record(state, tau):
        moved = np.r_[
            state.tcp_pos - start.tcp_pos, orientation_error(state.tcp_quat, start.tcp_quat)
        ]
        progress.append(moved @ direction / size)

    sim.run(controller, target_pos, target_quat, seconds, record)
    final = sim.state()
    residual = np.r_[final.tcp_pos - target_pos, orientation_error(target_quat, final.tcp_quat)]
    return np.array(progress), residual


@pytest.mark.parametrize("step", list(STEPS))
def test_opspace_step_is_critically_damped(step):
    progress, _ = step_response("opspace", step, 1.0)
    assert progress.max() < 1.01, f"overshoot {100 * (progress.max() - 1):.2f} % of the step"
    # Ideal critically damped: 1 - (1 + w t) exp(-w t) is within 1 % at w t = 6.6;
    # w = sqrt(K) >= 10 rad/s.
    assert abs(progress[-1] - 1.0) < 0.01, f"at 1 s only {100 * progress[-1]:.1f} % of the step"


@pytest.mark.parametrize("step", list(STEPS))
def test_impedance_step_converges(step):
    _, residual = step_response("impedance", step, 2.0)
    assert np.abs(residual[:3]).max() < 5e-4 and np.abs(residual[3:]).max() < 1e-3, residual


@pytest.mark.parametrize(
    "stiffness, clip, projector",
    [
        (1000.0, 0.01, "dynamic"),
        (2000.0, 0.01, "dynamic"),
        (500.0, 0.02, "kinematic"),
    ],
)
def test_wall_contact_force_is_bounded_by_stiffness_times_clip(stiffness, clip, projector):
    x0 = ArmSim().state().tcp_pos[0]
    sim = ArmSim(wall_x=x0 + 0.03)  # fingertip (1 cm radius) touches after 2 cm
    start = sim.state()
    controller = make_controller(
        sim,
        stiffness=(stiffness,) * 3 + (100.0,) * 3,
        nullspace_projector=projector,
        error_clip=(clip,) * 3 + (0.05,) * 3,
    )
    forces = []
    sim.run(
        controller,
        start.tcp_pos + [0.10, 0, 0],
        start.tcp_quat,
        2.0,
        record=lambda state, tau: forces.append(sim.wall_force()),
    )
    steady = np.array(forces[-500:])
    expected = stiffness * clip
    assert np.all(np.abs(steady[:, 0] - expected) < 0.03 * expected), (
        steady[:, 0].min(),
        steady[:, 0].max(),
    )
    assert np.all(np.linalg.norm(steady[:, 1:], axis=1) < 0.1 * expected)
    assert controller.last_error[0] == pytest.approx(clip)  # the clip is what bounded it
