"""The `robot-rl` command: one subcommand per module listed in COMMANDS.

Each command module exposes `add_parser(subparsers)` and sets `func` on its parser.
Command modules import heavy packages (torch, mujoco) inside their functions so that
`robot-rl --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = (
    "robot_rl.cli.demo",
    "robot_rl.cli.bench",
    "robot_rl.cli.keys",
    "robot_rl.cli.learner",
    "robot_rl.cli.actor",
    "robot_rl.cli.train",
    "robot_rl.cli.chaos",
    "robot_rl.cli.calibrate",
    "robot_rl.cli.reward",
    "robot_rl.cli.data",
    "robot_rl.cli.record",
    "robot_rl.cli.replay",
    "robot_rl.cli.eval",
    "robot_rl.cli.bringup",
    "robot_rl.cli.rehearse",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robot-rl",
        description="Real-robot reinforcement learning with a MuJoCo twin of the cell.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("robot-rl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
