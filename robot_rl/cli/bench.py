"""`robot-rl bench NAME [--json]`: speed and memory figures, one JSON object per run."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

# name -> module with `add_arguments(parser)` (optional) and `run(args) -> dict`
BENCHES = {
    "sim": "robot_rl.bench.sim",
    "learner": "robot_rl.bench.learner",
    "transport": "robot_rl.bench.transport",
    "ros": "robot_rl.bench.ros",
    "hostile-ros": "robot_rl.bench.hostile_ros",
    "reward": "robot_rl.bench.reward",
    "store": "robot_rl.bench.store",
    "tracker": "robot_rl.bench.tracker",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="run a benchmark and print its figures")
    names = parser.add_subparsers(dest="bench", required=True, metavar="NAME")
    for name, module in BENCHES.items():
        mod = importlib.import_module(module)
        p = names.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0])
        p.add_argument("--json", action="store_true", help="print one JSON object only")
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
        p.set_defaults(func=_runner(mod))


def _runner(mod):
    def run(args: argparse.Namespace) -> int:
        from controllers.config import ConfigError

        try:
            result = mod.run(args)
        except ConfigError as exc:  # e.g. --device cuda on a machine without a GPU
            print(f"bench {args.bench}: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(result))
        else:
            width = max(len(k) for k in result)
            for key, value in result.items():
                print(f"{key:<{width}}  {value}")
        return 0

    return run
