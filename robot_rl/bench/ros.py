"""ROS 2: 640x480 image latency between processes, 10 Hz control rate and tick latency."""

from __future__ import annotations

import argparse


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


def run(args: argparse.Namespace) -> dict:
    # the core never imports rclpy: the bench body lives with the nodes and is loaded only here
    from nodes import bench_ros

    return bench_ros.run(
        seconds=args.seconds, domain_id=args.domain_id, threads=args.threads, dtype=args.dtype
    )
