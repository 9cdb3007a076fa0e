"""Scripted peg_insert operator: hover the peg above the hole aligned with it, descend, push in."""

from __future__ import annotations

import numpy as np

from sim.experts.base import Expert, nearest_symmetric_yaw, tcp_yaw
from sim.tasks.base import quat_yaw
from sim.tasks.peg_insert import HOLE_DEPTH


class PegInsertExpert(Expert):
    def act(self, obs):
        task, data = self.env.task, self.env.data
        tcp = np.asarray(obs["tcp_pose"], dtype=np.float64)
        hole = task.goal_pose(data)
        bottom = task.peg_bottom(data)
        peg_yaw = quat_yaw(data.xquat[task.object_id])
        # Rotate the TCP by the peg's yaw error to the nearest of the hole's four symmetric yaws.
        yaw_err = nearest_symmetric_yaw(quat_yaw(hole[3:]), peg_yaw) - peg_yaw
        yaw = tcp_yaw(tcp[3:]) + yaw_err
        xy_err = hole[:2] - bottom[:2]
        dist = float(np.linalg.norm(xy_err))
        goal = tcp[:3].copy()
        goal[:2] += xy_err
        if bottom[2] < HOLE_DEPTH - 0.002:
            # In the hole: keep pushing down, centring as we go.
            goal[2] -= 0.01
            return self.move(obs, goal, yaw, 1.0, max_speed=0.5)
        if dist < 0.001 and abs(yaw_err) < 0.02:
            # Aligned above the hole: go down slowly.
            goal[2] -= 0.005
            return self.move(obs, goal, yaw, 1.0)
        hover = HOLE_DEPTH + 0.01
        if bottom[2] < hover - 0.004 and dist > 0.002:
            # Resting on the block's top or stuck at the rim: lift before moving sideways.
            goal[:2] = tcp[:2]
        goal[2] += hover - bottom[2]
        return self.move(obs, goal, yaw, 1.0)
