"""`robot-rl actor --config FILE --learner tcp://HOST:PORT`: act in the twin, feed the learner."""

from __future__ import annotations

import argparse
import socket


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "actor", help="run one actor: act, stream transitions, take new weights"
    )
    parser.add_argument("--config", default=None, help="run config YAML (the learner's)")
    parser.add_argument(
        "--learner", default=None, help="learner endpoint tcp://HOST:PORT (default: config)"
    )
    parser.add_argument("--id", default=None, help="actor id (default: <hostname>-<index>)")
    parser.add_argument(
        "--index", type=int, default=0, help="actor index: seeds and the default id"
    )
    parser.add_argument(
        "--demos", type=int, default=0, help="scripted demonstrations to record first"
    )
    parser.add_argument("--episodes", type=int, default=None, help="stop after this many episodes")
    parser.add_argument("--spool", default=None, help="spool folder (default: spool/<id>)")
    parser.add_argument(
        "--store", default=None, help="zarr episode store to commit every episode to"
    )
    parser.add_argument(
        "--keys", default=None, help="CURVE key folder from `robot-rl keys generate`"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controllers.config import ConfigError
    from robot_rl.loop.run_config import load_run_config
    from robot_rl.loop.train_job import actor_process

    try:
        cfg = load_run_config(args.config)
    except ConfigError as exc:
        raise SystemExit(f"robot-rl actor: {exc}") from None
    if args.keys:
        cfg.transport.keys = args.keys
    actor_id = args.id or f"{socket.gethostname()}-{args.index}"
    actor_process(
        cfg,
        args.learner or cfg.transport.endpoint,
        actor_id,
        args.spool or f"spool/{actor_id}",
        args.demos,
        args.index,
        args.episodes,
        args.store,
    )
    return 0
