"""ROS 2: every node survives hostile messages on every topic it subscribes to."""

from __future__ import annotations

import argparse
import sys

from robot_rl.bench.ros import child_json

# the runner lives with the ROS nodes (it needs rclpy); the core only starts it and reads its JSON
BENCH_MODULE = "nodes.hostile"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages", type=int, default=10_000, help="hostile messages per subscribed topic"
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=None,
        help="nodes to run: actor_train actor_demo reward tracker (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the hostile streams")
    parser.add_argument(
        "--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random 101..200)"
    )


def command(args: argparse.Namespace) -> list[str]:
    """The child process that runs the nodes and prints one JSON line."""
    cmd = [sys.executable, "-m", BENCH_MODULE, "--messages", str(args.messages)]
    cmd += ["--seed", str(args.seed)]
    if args.targets:
        cmd += ["--targets", *args.targets]
    if args.domain_id is not None:
        cmd += ["--domain-id", str(args.domain_id)]
    return cmd


def run(args: argparse.Namespace) -> dict:
    return child_json(command(args), "hostile-input run")
