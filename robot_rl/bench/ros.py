"""ROS 2: 640x480 image latency between processes, 10 Hz control rate and tick latency."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

# the body lives with the ROS nodes (it needs rclpy); the core only starts it and reads its JSON
BENCH_MODULE = "nodes.bench_ros"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the policy in the control tick"
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="the policy backbone's arithmetic (sac.image.dtype)",
    )
    parser.add_argument(
        "--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random 101..200)"
    )


def command(args: argparse.Namespace) -> list[str]:
    """The child process that runs the measurements and prints one JSON line."""
    cmd = [sys.executable, "-m", BENCH_MODULE, "--seconds", str(args.seconds)]
    cmd += ["--threads", str(args.threads), "--dtype", args.dtype]
    if args.domain_id is not None:
        cmd += ["--domain-id", str(args.domain_id)]
    return cmd


def child_json(cmd: list[str], what: str) -> dict:
    """Run a ROS child process (`what` names it in errors) and parse its last line as JSON."""
    # stderr stays on the terminal: ROS and DDS report their problems there
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"the {what} ({' '.join(cmd[1:])}) exited with status {proc.returncode}; "
            "its error is printed above. Check that ROS 2 (rclpy) is installed and sourced."
        )
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"the {what} ({' '.join(cmd[1:])}) did not end with its JSON figures; "
            f"its last output line was: {lines[-1]!r}"
        ) from exc


def run(args: argparse.Namespace) -> dict:
    return child_json(command(args), "ROS benchmark")
