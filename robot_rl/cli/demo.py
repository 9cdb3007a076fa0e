"""`robot-rl demo`: the main job `make demo` runs.

Trains pick_cube in the MuJoCo twin with the default experiment config (learner and actor
processes over ZeroMQ, scripted demonstrations, a scripted operator that intervenes), then says
where the results are. `--expert-only` runs the scripted expert instead, for a quick look at the
twin.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "sim_pick_cube.yaml"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="train pick_cube in the twin with defaults and say where results are"
    )
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="experiment config (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default=None, help="run directory (default: runs/demo-<date>-<time>)"
    )
    parser.add_argument(
        "--expert-only",
        action="store_true",
        help="skip training: run the scripted expert over randomised episodes",
    )
    parser.add_argument("--episodes", type=int, default=20, help="episodes for --expert-only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.expert_only:
        return _expert(args)
    from robot_rl.cli import train

    out = args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    print(
        "robot-rl demo: training pick_cube in the MuJoCo twin from scripted demonstrations, with a "
        "scripted operator taking over when the policy fails",
        flush=True,
    )
    return train.run(
        argparse.Namespace(config=args.config, out=out, resume=False, actors=None, endpoint=None)
    )


def _expert(args: argparse.Namespace) -> int:
    from sim.experts import evaluate

    if args.episodes < 1:
        raise SystemExit(f"robot-rl demo: --episodes must be >= 1, got {args.episodes}")
    result = evaluate("pick_cube", args.episodes, seed=0)
    successes = round(result["success_rate"] * args.episodes)
    print(
        f"robot-rl demo: MuJoCo twin, pick_cube, scripted expert: {successes}/{args.episodes} "
        f"randomised episodes succeeded (mean {result['mean_steps']:.1f} steps at 10 Hz)"
    )
    return 0
