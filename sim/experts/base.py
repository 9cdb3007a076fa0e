"""Shared pieces of the scripted experts: turning a desired TCP motion into a policy action."""

from __future__ import annotations

import math

import numpy as np

from controllers.action import POS, ROT, action_from_delta
from controllers.se3 import orientation_error, quat_mul, quat_to_mat
from sim.tasks.base import yaw_quat

IN_FLIGHT = 0.8
DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # TCP pointing at the table, hand x along world x


def tcp_yaw(tcp_quat: np.ndarray) -> float:
    """Yaw of a downward-pointing TCP: the angle of its x axis in the table plane."""
    R = quat_to_mat(tcp_quat)
    return math.atan2(R[1, 0], R[0, 0])


def nearest_symmetric_yaw(
    object_yaw: float, current_yaw: float, period: float = math.pi / 2
) -> float:
    """The yaw equivalent to `object_yaw` under `period` symmetry closest to `current_yaw`."""
    return current_yaw + (object_yaw - current_yaw + period / 2) % period - period / 2


class Expert:
    """Closed-loop scripted operator: every act() decides from the current observation and sim
    state."""

    def __init__(self, env):
        self.env = env.unwrapped

    def reset(self) -> None:
        """Forget per-episode memory (the experts keep none that a takeover could invalidate)."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def move(
        self, obs, goal_pos: np.ndarray, goal_yaw: float, gripper: float, max_speed: float = 1.0
    ) -> np.ndarray:
        """Action that moves the TCP towards goal_pos with the TCP pointing down at goal_yaw."""
        tcp = np.asarray(obs["tcp_pose"], dtype=np.float64)
        target, target_quat = self.env.target_pose
        # The TCP still has to travel (target - tcp) towards the commanded target; counting most
        # of it as done stops the overshoot a pure TCP-error loop gets from the arm's lag, and
        # the rest keeps an integral action that removes steady offsets (contact, posture torque).
        lead = goal_pos - tcp[:3] - IN_FLIGHT * (target - tcp[:3])
        goal_quat = quat_mul(yaw_quat(goal_yaw), DOWN)
        rot_lead = orientation_error(goal_quat, tcp[3:]) - IN_FLIGHT * orientation_error(
            target_quat, tcp[3:]
        )
        a = action_from_delta(lead, rot_lead, self.env.action_scales, gripper)
        a[POS] = np.clip(a[POS], -max_speed, max_speed)
        a[ROT] = np.clip(a[ROT], -1.0, 1.0)
        return a.astype(np.float32)
