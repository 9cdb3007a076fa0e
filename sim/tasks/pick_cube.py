"""pick_cube: grasp a 4 cm cube at a random position and yaw on the table; lift it >= 10 cm."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from sim.config import RandomizationConfig
from sim.tasks.base import GRIPPER, OBJECT, STATIC, STIFF, Task, yaw_quat

CUBE_HALF = 0.02
CENTER = np.array([0.5, 0.0])  # nominal cube position on the table (m)
LIFT = 0.10  # success: cube centre this much above its resting height


class PickCube(Task):
    name = "pick_cube"
    object_body = "cube"

    def build(self, spec: mujoco.MjSpec) -> None:
        body = spec.worldbody.add_body(name="cube", pos=[CENTER[0], CENTER[1], CUBE_HALF])
        body.add_freejoint(name="cube")
        body.add_geom(
            name="cube",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[CUBE_HALF] * 3,
            mass=0.05,
            rgba=[0.85, 0.15, 0.1, 1],
            friction=[1.0, 0.005, 0.0001],
            solref=STIFF,
            contype=OBJECT,
            conaffinity=STATIC | GRIPPER | OBJECT,
        )

    def reset(
        self, model, data, rng: np.random.Generator, cfg: RandomizationConfig, tcp_pos, tcp_quat
    ) -> bool:
        xy = CENTER + rng.uniform(-1, 1, 2) * np.asarray(cfg.object_xy_halfrange)
        yaw = rng.uniform(-1, 1) * cfg.object_yaw_halfrange
        a = self.object_qpos
        data.qpos[a : a + 3] = (xy[0], xy[1], CUBE_HALF)
        data.qpos[a + 3 : a + 7] = yaw_quat(yaw)
        return False

    def success(self, data) -> bool:
        return bool(data.xpos[self.object_id, 2] >= CUBE_HALF + LIFT)

    def shaping(self, data, tcp_pos) -> float:
        cube = data.xpos[self.object_id]
        reach = 1.0 - math.tanh(10.0 * float(np.linalg.norm(cube - tcp_pos)))
        lift = min(max((cube[2] - CUBE_HALF) / LIFT, 0.0), 1.0)
        return 0.5 * reach + 0.49 * lift
