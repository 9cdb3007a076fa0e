"""`robot-rl demo`: the main job `make demo` runs."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the main job with defaults and say where results are")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("robot-rl demo: not wired yet")
