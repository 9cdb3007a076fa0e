"""`robot-rl train --config FILE --out runs/NAME`: learner + actors + operator in the twin."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train", help="train in the MuJoCo twin: learner and actor processes over ZeroMQ"
    )
    parser.add_argument(
        "--config", default=None, help="run config YAML (default: built-in defaults)"
    )
    parser.add_argument(
        "--out", required=True, help="run directory (summary.json, learning_curve.png, checkpoint/)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    parser.add_argument(
        "--actors", type=int, default=None, help="number of actor processes (overrides num_actors)"
    )
    parser.add_argument(
        "--endpoint", default=None, help="learner endpoint (default: a free localhost port)"
    )
    parser.add_argument(
        "--init-checkpoint",
        metavar="DIR",
        default=None,
        help="start the agent from this checkpoint of another run (overrides "
        "learner.init_checkpoint): fine-tuning, not a resume",
    )
    parser.set_defaults(func=run)


def _stop(signum: int, frame) -> None:
    raise SystemExit(
        f"robot-rl train: stopped by signal {signum}; learner and actors stopped, the last "
        "checkpoint kept (continue with --resume)"
    )


def run(args: argparse.Namespace) -> int:
    from controllers.config import ConfigError
    from robot_rl.loop.run_config import load_run_config
    from robot_rl.loop.train_job import run_train

    try:
        cfg = load_run_config(args.config, {"num_actors": args.actors} if args.actors else None)
    except ConfigError as exc:
        raise SystemExit(f"robot-rl train: {exc}") from None
    if args.init_checkpoint is not None:
        cfg.learner.init_checkpoint = args.init_checkpoint
    # `kill` (a scheduler, a supervisor) stops the run as Ctrl-C does: the learner and actor
    # processes with it
    signal.signal(signal.SIGTERM, _stop)
    try:
        summary = run_train(cfg, args.out, resume=args.resume, endpoint=args.endpoint)
    except (ConfigError, FileExistsError, FileNotFoundError) as exc:
        raise SystemExit(f"robot-rl train: {exc}") from None
    print(results_message(Path(args.out), summary))
    return 0


def results_message(out: Path, summary: dict) -> str:
    """What the run achieved and where its results are, for the console."""
    from robot_rl.loop.train_job import LOG_FILE

    if summary["eval_success_rate"] is None:
        outcome = "no final evaluation (final_eval_episodes: 0)"
    else:
        outcome = (
            f"final evaluation success {summary['eval_success_rate']:.2f} over "
            f"{summary['eval_episodes']} episodes"
        )
    return (
        f"done in {summary['wall_s'] / 60:.1f} min, {summary['env_steps']:,} env steps: {outcome}\n"
        f"  summary         {out / 'summary.json'}\n"
        f"  learning curve  {out / 'learning_curve.png'}\n"
        f"  checkpoint      {summary['checkpoint']}/\n"
        f"  metrics         {out / 'metrics.csv'}, tensorboard --logdir {out / 'tb'}\n"
        f"  detailed log    {out / LOG_FILE}"
    )
