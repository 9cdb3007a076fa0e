"""`robot-rl learner --config FILE --out runs/NAME [--resume]`: serve actors over ZeroMQ, train."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "learner", help="run the learner: receive transitions, train, publish weights"
    )
    parser.add_argument(
        "--config", default=None, help="run config YAML (the actors must use the same)"
    )
    parser.add_argument(
        "--out", required=True, help="run directory (checkpoint/, journal/, metrics.csv, tb/)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--bind", default=None, help="endpoint to listen on, e.g. tcp://*:5555 (default: config)"
    )
    parser.add_argument(
        "--keys", default=None, help="CURVE key folder from `robot-rl keys generate`"
    )
    parser.add_argument(
        "--init-checkpoint",
        metavar="DIR",
        default=None,
        help="start the agent from this checkpoint of another run, e.g. the twin's (overrides "
        "learner.init_checkpoint): fine-tuning, not a resume",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controllers.config import ConfigError
    from robot_rl.loop.run_config import load_run_config
    from robot_rl.loop.train_job import learner_process

    try:
        cfg = load_run_config(args.config)
    except ConfigError as exc:
        raise SystemExit(f"robot-rl learner: {exc}") from None
    if args.keys:
        cfg.transport.keys = args.keys
    if args.init_checkpoint is not None:
        cfg.learner.init_checkpoint = args.init_checkpoint
    try:
        learner_process(cfg, args.out, args.resume, args.bind)
    except (ConfigError, FileExistsError, FileNotFoundError, OSError) as exc:
        raise SystemExit(f"robot-rl learner: {exc}") from None
    return 0
