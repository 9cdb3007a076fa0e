"""Scripted experts of the twin's tasks: closed-loop state machines that also play the operator."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.experts.base import Expert
from sim.experts.peg_insert import PegInsertExpert
from sim.experts.pick_cube import PickCubeExpert

EXPERTS: dict[str, type[Expert]] = {"pick_cube": PickCubeExpert, "peg_insert": PegInsertExpert}


def make_expert(env) -> Expert:
    """The scripted expert for the env's task (reads privileged sim state through env.unwrapped)."""
    name = env.unwrapped.task.name
    if name not in EXPERTS:
        raise ValueError(
            f"no scripted expert for task {name!r}; experts exist for {sorted(EXPERTS)}"
        )
    return EXPERTS[name](env)


def evaluate(task: str, episodes: int, seed: int, config: Any = None) -> dict[str, float]:
    """Run the expert on `episodes` episodes seeded seed, seed+1, ...

    Returns the success rate and mean episode length.
    """
    from sim import make_env

    if episodes < 1:
        raise ValueError(f"episodes: {episodes!r} must be >= 1")
    env = make_env(task, config)
    expert = make_expert(env)
    successes, steps = 0, []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        expert.reset()
        taken = 0
        for _ in range(env.unwrapped.config.max_episode_steps):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            taken += 1
            if terminated or truncated:
                break
        successes += bool(info["success"])
        steps.append(taken)
    env.close()
    return {
        "success_rate": successes / episodes,
        "mean_steps": float(np.mean(steps)),
        "episodes": episodes,
    }
