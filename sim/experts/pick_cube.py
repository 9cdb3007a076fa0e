"""Scripted pick_cube operator: hover over the cube aligned with its faces, descend, close, lift."""

from __future__ import annotations

import numpy as np

from sim.experts.base import Expert, nearest_symmetric_yaw, tcp_yaw
from sim.tasks.base import quat_yaw
from sim.tasks.pick_cube import CUBE_HALF, LIFT

GRASP_Z = 0.01  # TCP height at grasp: the pads cover the cube's lower three quarters
HOVER = 0.07  # TCP height above the cube centre while aligning
LIFT_Z = CUBE_HALF + LIFT + 0.05


class PickCubeExpert(Expert):
    def act(self, obs):
        task, data = self.env.task, self.env.data
        cube = data.xpos[task.object_id].copy()
        tcp = np.asarray(obs["tcp_pose"], dtype=np.float64)
        width = float(obs["gripper_width"][0])
        yaw = nearest_symmetric_yaw(quat_yaw(data.xquat[task.object_id]), tcp_yaw(tcp[3:]))
        xy_err = float(np.linalg.norm(cube[:2] - tcp[:2]))
        yaw_err = abs(yaw - tcp_yaw(tcp[3:]))
        between_fingers = xy_err < 0.012 and abs(cube[2] - tcp[2]) < 0.025

        if between_fingers and 2 * CUBE_HALF - 0.006 < width < 2 * CUBE_HALF + 0.004:
            # Holding it: lift straight up.
            return self.move(obs, np.array([tcp[0], tcp[1], LIFT_Z]), yaw, 1.0)
        if between_fingers and tcp[2] < GRASP_Z + 0.006:
            # At grasp height with the cube between open (or closing) fingers: close and wait.
            return self.move(obs, np.array([cube[0], cube[1], GRASP_Z]), yaw, 1.0)
        hover_z = cube[2] + HOVER
        low = tcp[2] < cube[2] + 2 * CUBE_HALF
        # Aligned above the cube with open fingers: go down to grasp height (looser once low, so
        # that small drift on the way down does not send it back up).
        if xy_err < (0.012 if low else 0.006) and yaw_err < 0.05 and width > 2 * CUBE_HALF + 0.01:
            return self.move(obs, np.array([cube[0], cube[1], GRASP_Z]), yaw, -1.0)
        if low:
            # Low and misaligned (a failed grasp, or a takeover from a bad state): rise first.
            return self.move(obs, np.array([tcp[0], tcp[1], hover_z]), yaw, -1.0)
        return self.move(
            obs, np.array([cube[0], cube[1], max(hover_z, min(tcp[2], hover_z + 0.1))]), yaw, -1.0
        )
