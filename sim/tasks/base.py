"""What a task of the twin provides to the env: its objects, resets, success test and shaping."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from sim.config import RandomizationConfig

# Collision bits (see sim/assets/panda_cell.xml): 1 static scene, 2 gripper, 4 free objects.
STATIC, GRIPPER, OBJECT = 1, 2, 4
# Grasps and tight clearances need stiffer contacts than MuJoCo's default 0.02 s time constant
# (which lets a 40 N grasp sink several mm into a light object); 0.004 s is 4 physics steps at
# 1 kHz.
STIFF = [0.004, 1.0]


def yaw_quat(yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation by `yaw` about world z."""
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def quat_yaw(quat: np.ndarray) -> float:
    """Yaw (rotation about z) of an orientation whose body z axis is roughly vertical."""
    w, x, y, z = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class Task:
    """Base class; subclasses fill in the methods below. Poses are (x y z qw qx qy qz)."""

    name = ""
    object_body = ""  # the body observed as `object_pose`
    # whether the goal sits at a pose drawn at reset (peg_insert's hole), observed as `goal_pose`
    # with privileged state: a state policy cannot find it otherwise
    has_goal_pose = False

    def build(self, spec: mujoco.MjSpec) -> None:
        """Add the task's bodies to the cell's model spec."""
        raise NotImplementedError

    def bind(self, model: mujoco.MjModel) -> None:
        """Look up ids once the model is compiled."""
        self.object_id = model.body(self.object_body).id
        self.object_qpos = model.jnt_qposadr[model.body_jntadr[self.object_id]]
        self.object_geoms = [
            g for g in range(model.ngeom) if model.geom_bodyid[g] == self.object_id
        ]

    def reset(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        rng: np.random.Generator,
        cfg: RandomizationConfig,
        tcp_pos: np.ndarray,
        tcp_quat: np.ndarray,
    ) -> bool:
        """Place the objects (arm already at its start pose); returns whether the gripper closes."""
        raise NotImplementedError

    def object_pose(self, data: mujoco.MjData) -> np.ndarray:
        return np.concatenate([data.xpos[self.object_id], data.xquat[self.object_id]])

    def goal_pose(self, data: mujoco.MjData) -> np.ndarray:
        """The goal's pose, for tasks with `has_goal_pose`."""
        raise NotImplementedError

    def success(self, data: mujoco.MjData) -> bool:
        raise NotImplementedError

    def shaping(self, data: mujoco.MjData, tcp_pos: np.ndarray) -> float:
        """Dense progress in [0, 1) for the optional shaped reward."""
        raise NotImplementedError

    def params(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """Task parameters drawn at reset that live outside qpos/qvel (part of get_sim_state)."""
        return {}

    def set_params(self, data: mujoco.MjData, params: dict[str, np.ndarray]) -> None:
        """Inverse of params()."""
