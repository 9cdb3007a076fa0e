"""peg_insert: insert a held 25 mm square peg into a hole with 1.5 mm clearance at a random pose.

The peg starts grasped (the HIL-SERL set-up); the hole block sits on the table at a random
position and yaw. Success: the peg's lower end is >= 25 mm deep inside the 35 mm deep hole.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from controllers.se3 import quat_to_mat
from sim.config import RandomizationConfig
from sim.tasks.base import GRIPPER, OBJECT, STATIC, STIFF, Task, yaw_quat

PEG_HALF_SIDE = 0.0125
PEG_HALF_LEN = 0.04
CLEARANCE = 0.0015  # hole side minus peg side (m)
HOLE_HALF = PEG_HALF_SIDE + CLEARANCE / 2
HOLE_DEPTH = 0.035
WALL = 0.03  # wall thickness of the hole block
INSERTED = 0.025  # success depth of the peg's lower end below the block's top
CENTER = np.array([0.5, 0.0])
GRASP_OFFSET = np.array(
    [0.0, 0.0, 0.005]
)  # peg centre in the TCP frame (TCP z points out of the hand)


class PegInsert(Task):
    name = "peg_insert"
    object_body = "peg"
    has_goal_pose = True

    def build(self, spec: mujoco.MjSpec) -> None:
        peg = spec.worldbody.add_body(name="peg", pos=[CENTER[0], CENTER[1], 0.3])
        peg.add_freejoint(name="peg")
        peg.add_geom(
            name="peg",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[PEG_HALF_SIDE, PEG_HALF_SIDE, PEG_HALF_LEN],
            mass=0.05,
            rgba=[0.1, 0.4, 0.85, 1],
            friction=[0.3, 0.005, 0.0001],
            solref=STIFF,
            contype=OBJECT,
            conaffinity=STATIC | GRIPPER | OBJECT,
        )
        hole = spec.worldbody.add_body(name="hole", mocap=True, pos=[CENTER[0], CENTER[1], 0.0])
        h, w, d = HOLE_HALF, WALL / 2, HOLE_DEPTH / 2
        walls = (
            ([h + w, 0, d], [w, h + 2 * w, d]),
            ([-h - w, 0, d], [w, h + 2 * w, d]),
            ([0, h + w, d], [h, w, d]),
            ([0, -h - w, d], [h, w, d]),
        )
        for i, (pos, size) in enumerate(walls):
            hole.add_geom(
                name=f"hole_wall{i}",
                type=mujoco.mjtGeom.mjGEOM_BOX,
                pos=pos,
                size=size,
                rgba=[0.35, 0.35, 0.4, 1],
                friction=[0.3, 0.005, 0.0001],
                solref=STIFF,
                contype=STATIC,
                conaffinity=GRIPPER | OBJECT,
            )

    def bind(self, model: mujoco.MjModel) -> None:
        super().bind(model)
        self.hole_mocap = model.body_mocapid[model.body("hole").id]
        self.fingers = [
            model.jnt_qposadr[model.joint(n).id] for n in ("finger_left", "finger_right")
        ]

    def reset(
        self, model, data, rng: np.random.Generator, cfg: RandomizationConfig, tcp_pos, tcp_quat
    ) -> bool:
        xy = CENTER + rng.uniform(-1, 1, 2) * np.asarray(cfg.object_xy_halfrange)
        yaw = rng.uniform(-1, 1) * cfg.object_yaw_halfrange
        data.mocap_pos[self.hole_mocap] = (xy[0], xy[1], 0.0)
        data.mocap_quat[self.hole_mocap] = yaw_quat(yaw)
        # Start with the peg between the closed fingers.
        a = self.object_qpos
        data.qpos[a : a + 3] = tcp_pos + quat_to_mat(tcp_quat) @ GRASP_OFFSET
        data.qpos[a + 3 : a + 7] = tcp_quat
        for adr in self.fingers:
            data.qpos[adr] = PEG_HALF_SIDE
        return True

    def peg_bottom(self, data) -> np.ndarray:
        """Centre of the peg's lower end face (world)."""
        axis = data.xmat[self.object_id].reshape(3, 3)[:, 2] * PEG_HALF_LEN
        c = data.xpos[self.object_id]
        return c + axis if axis[2] < 0 else c - axis

    def goal_pose(self, data) -> np.ndarray:
        return np.concatenate([data.mocap_pos[self.hole_mocap], data.mocap_quat[self.hole_mocap]])

    def success(self, data) -> bool:
        bottom = self.peg_bottom(data)
        hole = data.mocap_pos[self.hole_mocap]
        return bool(
            bottom[2] <= HOLE_DEPTH - INSERTED and np.linalg.norm(bottom[:2] - hole[:2]) < HOLE_HALF
        )

    def shaping(self, data, tcp_pos) -> float:
        goal = data.mocap_pos[self.hole_mocap] + (0.0, 0.0, HOLE_DEPTH - INSERTED)
        return 0.99 * (1.0 - math.tanh(10.0 * float(np.linalg.norm(self.peg_bottom(data) - goal))))

    def params(self, data) -> dict[str, np.ndarray]:
        return {"hole_pose": self.goal_pose(data)}

    def set_params(self, data, params) -> None:
        pose = np.asarray(params["hole_pose"], dtype=np.float64)
        data.mocap_pos[self.hole_mocap] = pose[:3]
        data.mocap_quat[self.hole_mocap] = pose[3:]
