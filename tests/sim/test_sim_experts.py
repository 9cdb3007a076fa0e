"""Scripted experts: success over randomised seeds, and taking over from any state a policy left."""

import numpy as np
import pytest

from sim import make_env
from sim.experts import evaluate, make_expert


@pytest.mark.parametrize("task", ["pick_cube", "peg_insert"])
def test_expert_solves_a_few_seeds(task):
    result = evaluate(task, episodes=5, seed=1000)
    assert result["success_rate"] >= 0.8, result
    assert result["mean_steps"] < 100


@pytest.mark.slow
@pytest.mark.parametrize("task, required", [("pick_cube", 0.95), ("peg_insert", 0.90)])
def test_expert_success_rate_over_100_seeds(task, required):
    result = evaluate(task, episodes=100, seed=0)
    assert result["success_rate"] >= required, result


@pytest.mark.parametrize("task", ["pick_cube", "peg_insert"])
def test_expert_takes_over_mid_episode_from_a_disturbed_state(task):
    # A "policy" wanders for 15 steps (for pick_cube also toggling the gripper), then the expert
    # takes over: being closed-loop, it must still finish within the episode.
    env = make_env(task, max_episode_steps=130)
    expert = make_expert(env)
    rng = np.random.default_rng(5)
    wins = 0
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for _ in range(15):
            a = rng.uniform(-1, 1, 7).astype(np.float32)
            if task == "peg_insert":
                a[6] = 1.0  # the peg task has no re-grasp: a policy that drops the peg has failed
            obs, *_ = env.step(a)
        expert.reset()
        done = False
        while not done:
            a = expert.act(obs)
            assert a.shape == (7,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
            obs, reward, terminated, truncated, info = env.step(a)
            done = terminated or truncated
        wins += info["success"]
    assert wins == 3


def test_expert_refuses_unknown_task():
    env = make_env("pick_cube")
    env.unwrapped.task.name = "stack"
    with pytest.raises(ValueError, match="no scripted expert for task 'stack'"):
        make_expert(env)
