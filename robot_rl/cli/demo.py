"""`robot-rl demo`: the main job `make demo` runs.

For now it runs the MuJoCo twin's pick_cube with the scripted expert over randomised episodes and
prints the success rate (a later issue makes it train a policy).
"""
from __future__ import annotations

import argparse
import os


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the main job with defaults and say where results are")
    parser.add_argument("--task", default="pick_cube", help="twin task (pick_cube or peg_insert)")
    parser.add_argument("--episodes", type=int, default=20, help="randomised episodes to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from sim.experts import evaluate

    if args.episodes < 1:
        raise SystemExit(f"robot-rl demo: --episodes must be >= 1, got {args.episodes}")
    result = evaluate(args.task, args.episodes, args.seed)
    successes = round(result["success_rate"] * args.episodes)
    print(f"robot-rl demo: MuJoCo twin, task {args.task}, scripted expert: "
          f"{successes}/{args.episodes} randomised episodes succeeded "
          f"(success rate {result['success_rate']:.2f}, mean {result['mean_steps']:.1f} steps at 10 Hz)")
    return 0
