"""A Panda-like 7-DoF arm in MuJoCo, written here so controller tests do not depend on sim/.

Kinematics and link masses follow the Franka Panda (mujoco_menagerie numbers, rounded); the
fingertip is a 1 cm collision sphere at the TCP, and an optional rigid wall stands at x = wall_x.
"""

from __future__ import annotations

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from controllers.impedance import RobotState  # noqa: E402

HOME = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])

_LINKS = [  # (body pos, body quat, mass, diag inertia, capsule to the next joint)
    ("0 0 0.333", "1 0 0 0", 4.97, "0.70 0.70 0.009", "0 0 -0.3 0 0 0"),
    ("0 0 0", "1 -1 0 0", 0.65, "0.008 0.03 0.03", "0 0 0 0 -0.316 0"),
    ("0 -0.316 0", "1 1 0 0", 3.23, "0.037 0.036 0.011", "0 0 0 0.0825 0 0"),
    ("0.0825 0 0", "1 1 0 0", 3.59, "0.026 0.028 0.018", "0 0 0 -0.0825 0.384 0"),
    ("-0.0825 0.384 0", "1 -1 0 0", 1.23, "0.036 0.029 0.009", "0 0 0 0 0 -0.2"),
    ("0 0 0", "1 1 0 0", 1.67, "0.002 0.004 0.005", "0 0 0 0.088 0 0"),
    ("0.088 0 0", "1 1 0 0", 1.47, "0.01 0.01 0.005", "0 0 0 0 0 0.2"),
]


def arm_xml(wall_x: float | None = None) -> str:
    """MJCF of the arm (and a wall at x = wall_x, normal -x, when given)."""
    body = (
        '<site name="tcp" pos="0 0 0.2104" quat="0.9238795 0 0 -0.3826834"/>'
        '<geom name="fingertip" type="sphere" size="0.01" pos="0 0 0.2104" '
        'contype="1" conaffinity="0"/>'
    )
    for i in reversed(range(7)):
        pos, quat, mass, inertia, capsule = _LINKS[i]
        body = (
            f'<body name="link{i + 1}" pos="{pos}" quat="{quat}">'
            f'<inertial pos="0 0 0" mass="{mass}" diaginertia="{inertia}"/>'
            f'<joint name="joint{i + 1}" axis="0 0 1"/>'
            f'<geom type="capsule" fromto="{capsule}" size="0.04"/>{body}</body>'
        )
    wall = (
        ""
        if wall_x is None
        else (
            f'<body name="wall" pos="{wall_x + 0.05} 0 0.3">'
            '<geom name="wall" type="box" size="0.05 0.5 0.5" contype="0" conaffinity="1"/></body>'
        )
    )
    return f"""
<mujoco model="panda_like">
  <option timestep="0.001" integrator="implicitfast" gravity="0 0 -9.81"/>
  <default>
    <joint armature="0.1" range="-3 3" limited="false"/><geom contype="0" conaffinity="0"/>
  </default>
  <worldbody>{body}{wall}</worldbody>
</mujoco>"""


class ArmSim:
    """Steps the arm with the controller in the loop: mj_step1, read state, torques, mj_step2."""

    def __init__(self, wall_x: float | None = None, q0: np.ndarray = HOME):
        self.model = mujoco.MjModel.from_xml_string(arm_xml(wall_x))
        self.data = mujoco.MjData(self.model)
        self._static = mujoco.MjData(self.model)  # same qpos, zero velocity: gravity torques alone
        self.site = self.model.site("tcp").id
        n = self.model.nv
        self._jacp, self._jacr = np.zeros((3, n)), np.zeros((3, n))
        self._M = np.zeros((n, n))
        self.data.qpos[:] = q0
        mujoco.mj_forward(self.model, self.data)

    def state(self) -> RobotState:
        m, d = self.model, self.data
        mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site)
        mujoco.mj_fullM(m, d, self._M)
        self._static.qpos[:] = d.qpos
        mujoco.mj_forward(m, self._static)
        gravity = self._static.qfrc_bias.copy()
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, d.site_xmat[self.site])
        return RobotState(
            q=d.qpos.copy(),
            qd=d.qvel.copy(),
            tcp_pos=d.site_xpos[self.site].copy(),
            tcp_quat=quat,
            jacobian=np.vstack([self._jacp, self._jacr]),
            mass_matrix=self._M.copy(),
            coriolis=d.qfrc_bias - gravity,
            gravity=gravity,
        )

    def run(self, controller, target_pos, target_quat, seconds: float, record=None) -> None:
        """Step `seconds` of physics at 1 kHz; record(state, tau) is called every tick if given."""
        for _ in range(round(seconds / self.model.opt.timestep)):
            mujoco.mj_step1(self.model, self.data)
            state = self.state()
            tau = controller.compute(state, target_pos, target_quat)
            self.data.qfrc_applied[:] = tau
            mujoco.mj_step2(self.model, self.data)
            if record is not None:
                record(state, tau)

    def wall_force(self) -> np.ndarray:
        """World-frame force the fingertip exerts on the wall, summed over contacts (N)."""
        total = np.zeros(3)
        wall = self.model.geom("wall").id
        f6 = np.zeros(6)
        for i in range(self.data.ncon):
            con = self.data.contact[i]
            if wall not in (con.geom1, con.geom2):
                continue
            mujoco.mj_contactForce(self.model, self.data, i, f6)
            # f6[:3] is in the contact frame (rows of con.frame), acting on geom2 from geom1.
            force = con.frame.reshape(3, 3).T @ f6[:3]
            total += force if con.geom2 == wall else -force
        return total


@pytest.fixture
def arm() -> ArmSim:
    return ArmSim()
