"""A scripted operator that intervenes the way a HIL-SERL human does, for runs in the twin.

It watches the policy and takes over when the policy stalls (the TCP barely moves for a while)
or drifts (its arm command keeps pointing away from where the expert would go), drives with the
scripted expert for `takeover_steps`, then hands control back. Each episode it may drive at most
a budget of steps, which shrinks as the recent success rate of the policy's episodes grows.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import numpy as np

from robot_rl.loop.run_config import OperatorConfig


class ScriptedOperator:
    """`act(obs, policy_action)` returns the operator's action when it intervenes, else None."""

    def __init__(
        self, expert_act: Callable[[dict[str, np.ndarray]], np.ndarray], cfg: OperatorConfig
    ):
        self.expert_act = expert_act
        self.cfg = cfg
        self.outcomes: collections.deque[bool] = collections.deque(maxlen=cfg.success_window)
        self._demo = False
        self._budget = 0
        self._used = 0
        self._driving = 0
        self._positions: collections.deque[np.ndarray] = collections.deque(
            maxlen=cfg.stall_steps + 1
        )
        self._drift = 0

    @property
    def budget_fraction(self) -> float:
        """Share of an episode the operator may drive, from the recent success rate.

        budget_start at 0 % success, budget_min at 100 %, linear in between.
        """
        rate = float(np.mean(self.outcomes)) if self.outcomes else 0.0
        return self.cfg.budget_min + (self.cfg.budget_start - self.cfg.budget_min) * (1.0 - rate)

    def start_episode(self, max_steps: int, demo: bool = False) -> None:
        """demo=True: the operator drives the whole episode (a demonstration)."""
        self._demo = demo
        self._budget = max_steps if demo else int(round(self.budget_fraction * max_steps))
        self._used = self._driving = self._drift = 0
        self._positions.clear()

    def end_episode(self, success: bool) -> None:
        if not self._demo:
            self.outcomes.append(bool(success))

    def act(self, obs: dict[str, np.ndarray], policy_action: np.ndarray) -> np.ndarray | None:
        expert = np.asarray(self.expert_act(obs), np.float32)
        if self._demo:
            return expert
        if not self.cfg.enabled:
            return None
        self._positions.append(np.asarray(obs["tcp_pose"][:3], np.float64))
        if self._driving:
            self._driving -= 1
            self._used += 1
            return expert
        p, e = np.asarray(policy_action[:3], np.float64), expert[:3].astype(np.float64)
        if np.linalg.norm(p) > 0.1 and np.linalg.norm(e) > 0.1:
            away = p @ e / (np.linalg.norm(p) * np.linalg.norm(e)) < self.cfg.drift_cosine
            self._drift = self._drift + 1 if away else 0
        stalled = (
            len(self._positions) == self._positions.maxlen
            and np.linalg.norm(self._positions[-1] - self._positions[0]) < self.cfg.stall_distance
        )
        if (stalled or self._drift >= self.cfg.drift_steps) and self._used < self._budget:
            self._driving = min(self.cfg.takeover_steps, self._budget - self._used) - 1
            self._used += 1
            self._drift = 0
            self._positions.clear()
            return expert
        return None
