"""The twin's observation layout from its config alone (no MuJoCo model is built).

The twin's env takes its observation space from here, and so does the ROS actor, which must
assemble the same observation from a real cell's topics: the two cannot drift apart.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from sim.config import EnvConfig
from sim.tasks import TASKS

N_ARM = 7
POSE_DIM = 7  # position xyz + quaternion wxyz


def _box(n: int) -> gymnasium.spaces.Box:
    return gymnasium.spaces.Box(-np.inf, np.inf, (n,), np.float32)


def observation_space(config: EnvConfig, task: str) -> gymnasium.spaces.Dict:
    """Keys, shapes and dtypes of the observation the env of `task` with `config` returns."""
    spaces = {
        "tcp_pose": _box(POSE_DIM),
        "tcp_vel": _box(6),
        "gripper_width": _box(1),
        "joint_pos": _box(N_ARM),
        "joint_vel": _box(N_ARM),
        "wrench": _box(6),
    }
    if config.privileged_state:
        spaces["object_pose"] = _box(POSE_DIM)
        if TASKS[task].has_goal_pose:
            spaces["goal_pose"] = _box(POSE_DIM)
    h, w = config.image_size
    for name in config.cameras:
        spaces[f"image_{name}"] = gymnasium.spaces.Box(0, 255, (h, w, 3), np.uint8)
    return gymnasium.spaces.Dict(spaces)
