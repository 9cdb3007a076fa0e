"""Twin speed: env steps/s (state, two 128x128 cameras), real-time factor, control-law tick."""

from __future__ import annotations

import argparse
import os
import statistics
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="pick_cube", help="twin task to step (default pick_cube)")
    parser.add_argument("--steps", type=int, default=200, help="state env steps per repeat")
    parser.add_argument(
        "--image-steps", type=int, default=100, help="two-camera env steps per repeat"
    )
    parser.add_argument("--ticks", type=int, default=5000, help="control-law ticks per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; figures are medians")
    parser.add_argument(
        "--physics-hz", type=float, default=1000.0, help="physics (and control-law) rate"
    )


def _env_steps_per_s(env, steps: int, seed: int) -> tuple[float, float]:
    """Steps per wall-clock second and per CPU second (this process) of env.step with random
    actions; resets when an episode ends are not timed. The CPU figure is what one process gets
    from a core of its own, which a shared machine's wall clock does not show."""
    import numpy as np

    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps, 7)).astype(np.float32)
    env.reset(seed=seed)
    wall = cpu = 0.0
    for a in actions:
        t0, c0 = time.perf_counter(), time.process_time()
        _, _, terminated, truncated, _ = env.step(a)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if terminated or truncated:
            env.reset()
    return steps / wall, steps / cpu


def _tick_us(env, ticks: int) -> tuple[float, float, float]:
    """Microseconds per control-law call (wall, CPU) and per bare mj_step (CPU) at the env state."""
    import mujoco

    unwrapped = env.unwrapped
    state, controller = unwrapped.robot_state(), unwrapped.controller
    target_pos, target_quat = unwrapped.target_pose
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(ticks):
        controller.compute(state, target_pos, target_quat)
    law_wall = (time.perf_counter() - t0) / ticks * 1e6
    law_cpu = (time.process_time() - c0) / ticks * 1e6
    m, d = unwrapped.model, unwrapped.data
    c0 = time.process_time()
    for _ in range(ticks):
        mujoco.mj_step(m, d)
    return law_wall, law_cpu, (time.process_time() - c0) / ticks * 1e6


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np

    from sim import make_env

    state_env = make_env(args.task, physics_hz=args.physics_hz)
    image_env = make_env(args.task, physics_hz=args.physics_hz, cameras=("front", "wrist"))
    cfg = state_env.unwrapped.config
    state, image, ticks = [], [], []
    _env_steps_per_s(state_env, 10, 0)  # warm-up: numba kernels, renderer context
    _env_steps_per_s(image_env, 5, 0)
    for r in range(args.repeats):
        state.append(_env_steps_per_s(state_env, args.steps, r))
        image.append(_env_steps_per_s(image_env, args.image_steps, r))
        state_env.reset(seed=r)
        state_env.step(np.zeros(7, np.float32))
        ticks.append(_tick_us(state_env, args.ticks))
    state_env.close()
    image_env.close()
    env_rate = statistics.median(w for w, _ in state)
    cpu_rate = statistics.median(c for _, c in state)
    return {
        "task": args.task,
        "env_steps_per_s": round(env_rate, 1),
        "image_env_steps_per_s": round(statistics.median(w for w, _ in image), 1),
        "realtime_factor": round(env_rate / cfg.control_hz, 2),
        "physics_hz": cfg.physics_hz,
        "control_hz": cfg.control_hz,
        "controller_tick_us": round(statistics.median(t[0] for t in ticks), 2),
        "physics_tick_us": round(1e6 / (env_rate * cfg.substeps), 2),
        "controller_tick_cpu_us": round(statistics.median(t[1] for t in ticks), 2),
        "mj_step_cpu_us": round(statistics.median(t[2] for t in ticks), 2),
        "env_steps_per_cpu_s": round(cpu_rate, 1),
        "image_env_steps_per_cpu_s": round(statistics.median(c for _, c in image), 1),
        "physics_tick_cpu_us": round(1e6 / (cpu_rate * cfg.substeps), 2),
        "image_size": list(cfg.image_size),
        "repeats": args.repeats,
        "env_steps_per_s_all": sorted(round(w, 1) for w, _ in state),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
