"""MuJoCo twin speed: env steps/s (state and two 128x128 cameras), real-time factor, control-law tick."""
from __future__ import annotations

import argparse
import os
import statistics
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="pick_cube", help="twin task to step (default pick_cube)")
    parser.add_argument("--steps", type=int, default=200, help="state env steps per repeat")
    parser.add_argument("--image-steps", type=int, default=100, help="two-camera env steps per repeat")
    parser.add_argument("--ticks", type=int, default=5000, help="control-law ticks per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; figures are medians")


def _env_steps_per_s(env, steps: int, seed: int) -> float:
    """Steps per second of env.step with random actions (resets when an episode ends are not timed)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps, 7)).astype(np.float32)
    env.reset(seed=seed)
    elapsed = 0.0
    for a in actions:
        t0 = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(a)
        elapsed += time.perf_counter() - t0
        if terminated or truncated:
            env.reset()
    return steps / elapsed


def _tick_us(env, ticks: int) -> tuple[float, float]:
    """Mean microseconds per control-law call and per bare mj_step, at the env's current state."""
    import mujoco

    unwrapped = env.unwrapped
    state, controller = unwrapped.robot_state(), unwrapped.controller
    target_pos, target_quat = unwrapped.target_pose
    t0 = time.perf_counter()
    for _ in range(ticks):
        controller.compute(state, target_pos, target_quat)
    law = (time.perf_counter() - t0) / ticks * 1e6
    m, d = unwrapped.model, unwrapped.data
    t0 = time.perf_counter()
    for _ in range(ticks):
        mujoco.mj_step(m, d)
    physics = (time.perf_counter() - t0) / ticks * 1e6
    return law, physics


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np

    from sim import make_env

    state_env = make_env(args.task)
    image_env = make_env(args.task, cameras=("front", "wrist"))
    cfg = state_env.unwrapped.config
    state_rates, image_rates, law_us, mj_us = [], [], [], []
    _env_steps_per_s(state_env, 10, 0)  # warm-up: numba kernels, renderer context
    _env_steps_per_s(image_env, 5, 0)
    for r in range(args.repeats):
        state_rates.append(_env_steps_per_s(state_env, args.steps, r))
        image_rates.append(_env_steps_per_s(image_env, args.image_steps, r))
        state_env.reset(seed=r)
        law, physics = _tick_us(state_env, args.ticks)
        law_us.append(law)
        mj_us.append(physics)
    state_env.close()
    image_env.close()
    env_rate = statistics.median(state_rates)
    return {
        "task": args.task,
        "env_steps_per_s": round(env_rate, 1),
        "image_env_steps_per_s": round(statistics.median(image_rates), 1),
        "realtime_factor": round(env_rate / cfg.control_hz, 2),
        "physics_hz": cfg.physics_hz,
        "control_hz": cfg.control_hz,
        "controller_tick_us": round(statistics.median(law_us), 2),
        "mj_step_us": round(statistics.median(mj_us), 2),
        "physics_tick_us": round(1e6 / (env_rate * cfg.substeps), 2),
        "image_size": list(cfg.image_size),
        "repeats": args.repeats,
        "env_steps_per_s_all": [round(float(v), 1) for v in np.sort(state_rates)],
    }
