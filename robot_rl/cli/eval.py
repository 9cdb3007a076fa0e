"""`robot-rl eval CHECKPOINT --episodes 100`: success rate and time to success in the twin.

Reads any checkpoint the stack writes (train/demo job, learner); the task, env config and
observation layout come from the checkpoint, or with `--config FILE` from that run config (a
zero-shot evaluation on another cell, e.g. config/sim_pick_cube_shifted.yaml).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint's deterministic policy in the twin")
    p.add_argument(
        "checkpoint", help="checkpoint directory (weights.safetensors, config.json, ...)"
    )
    p.add_argument(
        "--task",
        default=None,
        help="twin task (pick_cube, peg_insert); default and only accepted value: the checkpoint's",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="evaluate in the twin this run config describes (task, env, tracker) instead of "
        "the checkpoint's own; refused where the observations or action scales differ",
    )
    p.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    p.add_argument(
        "--seed", type=int, default=10_000, help="episode i uses seed SEED+i (default 10000)"
    )
    p.add_argument(
        "--record", metavar="STORE", help="also record every episode into this episode store"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from controllers.config import ConfigError
    from robot_rl.loop.evaluation import evaluate, open_checkpoint
    from robot_rl.loop.run_config import load_run_config
    from robot_rl.store import StoreError

    try:
        if args.episodes < 1:
            raise ValueError(f"--episodes: {args.episodes} must be >= 1")
        torch.set_num_threads(args.threads)
        info = open_checkpoint(args.checkpoint, args.task)
        run_config = load_run_config(args.config) if args.config else None
        seeds = list(range(args.seed, args.seed + args.episodes))
        results = evaluate(
            args.checkpoint,
            seeds,
            task=args.task,
            record=args.record,
            progress=True,
            run=run_config,
        )
    except (StoreError, ConfigError, ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"robot-rl eval: {exc}") from exc
    won = [r for r in results if r["success"]]
    print(
        json.dumps(
            {
                "checkpoint": str(args.checkpoint),
                "task": info.task,
                "config": args.config,
                "episodes": args.episodes,
                "seeds": [seeds[0], seeds[-1]],
                "successes": len(won),
                "success_rate": len(won) / args.episodes,
                "mean_steps_to_success": float(np.mean([r["steps"] for r in won])) if won else None,
                "mean_time_to_success_s": float(np.mean([r["time_s"] for r in won]))
                if won
                else None,
                "policy_version": info.policy_version,
                "recorded_to": str(args.record) if args.record else None,
            }
        )
    )
    return 0
