"""Classifier reward in place of the env's own: what a real cell has, run against the twin.

`ClassifierReward(env, model)` scores every observation with a reward model
(`robot_rl.reward.load_model`) and makes the episode end the way the actor ends it on a robot:
reward 1.0 and `terminated` on the first step whose success probability reaches the model's
threshold, `truncated` after `max_episode_steps`, and nothing else ends it (the twin's own success
no longer does). The twin's ground truth stays in `info["success"]` for evaluation;
`info["success_prob"]` and `info["classifier_success"]` carry the model's view.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium


class ClassifierReward(gymnasium.Wrapper):
    def __init__(self, env: gymnasium.Env, model: Any, max_episode_steps: int):
        super().__init__(env)
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps: must be >= 1, got {max_episode_steps}")
        missing = [c for c in model.cameras if f"image_{c}" not in env.observation_space.spaces]
        if missing:
            raise ValueError(
                f"the reward model reads cameras {list(model.cameras)}, but the env observes no "
                f"{['image_' + c for c in missing]}; add them to the env's `cameras`"
            )
        missing = [k for k in model.state_keys if k not in env.observation_space.spaces]
        if missing:
            raise ValueError(
                f"the reward model reads robot state {missing}, which the env does not observe"
            )
        self.model = model
        self.max_episode_steps = max_episode_steps
        self._steps = 0

    def reset(self, **kwargs: Any):
        self._steps = 0
        obs, info = self.env.reset(**kwargs)
        info["success_prob"] = self._prob(obs)
        info["classifier_success"] = False
        return obs, info

    def step(self, action):
        obs, _, _, _, info = self.env.step(action)
        self._steps += 1
        prob = self._prob(obs)
        success = prob >= self.model.threshold
        info["success_prob"], info["classifier_success"] = prob, success
        truncated = not success and self._steps >= self.max_episode_steps
        return obs, 1.0 if success else 0.0, success, truncated, info

    def _prob(self, obs: dict) -> float:
        prob = float(self.model.predict_proba(obs)[0])
        if not math.isfinite(prob):
            raise ValueError("the reward model gave a non-finite success probability")
        return prob
