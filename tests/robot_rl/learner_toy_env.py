"""A small env on the robot env contract (Dict observation, Box(-1, 1, (7,)) action) for learners.

Reach-and-grasp on the table plane: the TCP starts at the origin, a cube sits at a random point in
the plane z = 0 (action dz is ignored); moving within 5 cm of it and closing the gripper there is
success (reward 1, terminated).
Closing elsewhere does nothing but close the gripper; opening reopens it. Optional camera images
draw the cube and the TCP as coloured squares.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

STEP = 0.05  # m per unit action
REACH = 0.05


class ToyGraspEnv(gym.Env):
    def __init__(
        self,
        max_steps: int = 20,
        image_size: int = 0,
        cameras: tuple[str, ...] = (),
        spread: float = 0.15,
    ):
        self.max_steps, self.image_size, self.cameras, self.spread = (
            max_steps,
            image_size,
            cameras,
            spread,
        )
        spaces = {
            "tcp_pose": gym.spaces.Box(-np.inf, np.inf, (7,), np.float32),
            "object_pose": gym.spaces.Box(-np.inf, np.inf, (7,), np.float32),
            "gripper_width": gym.spaces.Box(0, 0.08, (1,), np.float32),
        }
        for cam in cameras:
            spaces[f"image_{cam}"] = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

    def _obs(self) -> dict:
        quat = np.array([1, 0, 0, 0], np.float32)
        obs = {
            "tcp_pose": np.concatenate([self.tcp, quat]).astype(np.float32),
            "object_pose": np.concatenate([self.cube, quat]).astype(np.float32),
            "gripper_width": np.array([0.0 if self.closed else 0.08], np.float32),
        }
        for i, cam in enumerate(self.cameras):
            img = np.full((self.image_size, self.image_size, 3), 40 + 30 * i, np.uint8)
            for pos, colour in ((self.cube, (220, 30, 30)), (self.tcp, (30, 220, 30))):
                px = np.clip(
                    ((pos[:2] + 0.3) / 0.6 * self.image_size).astype(int), 2, self.image_size - 3
                )
                img[px[1] - 2 : px[1] + 3, px[0] - 2 : px[0] + 3] = colour
            obs[f"image_{cam}"] = img
        return obs

    def reset(self, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self.tcp = np.zeros(3)
        self.cube = np.append(self.np_random.uniform(-self.spread, self.spread, 2), 0.0)
        self.closed, self.t = False, 0
        return self._obs(), {"success": False}

    def step(self, action):
        action = np.asarray(action, np.float64)
        if action.shape != (7,) or not np.all(np.abs(action) <= 1.0):
            raise ValueError(f"action must be 7 values in [-1, 1], got {action}")
        self.tcp = self.tcp + STEP * np.append(action[:2], 0.0)
        self.t += 1
        success = False
        if action[6] > 0.5:
            success = not self.closed and np.linalg.norm(self.tcp - self.cube) < REACH
            self.closed = True
        elif action[6] < -0.5:
            self.closed = False
        info = {
            "success": bool(success),
            "safety_clipped": False,
            "safety_held": False,
            "safety_reason": "",
        }
        return self._obs(), float(success), bool(success), self.t >= self.max_steps, info


class ToyExpert:
    """Scripted expert: move straight to the cube (open gripper), close when there."""

    def __init__(self, env: ToyGraspEnv):
        self.env = env

    def reset(self) -> None:
        pass

    def act(self, obs: dict) -> np.ndarray:
        delta = obs["object_pose"][:3] - obs["tcp_pose"][:3]
        action = np.zeros(7, np.float32)
        action[:3] = np.clip(delta / STEP, -1, 1)
        action[6] = 1.0 if np.linalg.norm(delta) < REACH * 0.6 else -1.0
        return action
