"""`robot-rl bringup {sim,robot} --config FILE`: the launch file's node set as separate processes.

For machines without the `ros2` CLI: reads launch/<which>.launch.py (launch_file.py beside this
module), checks it, and starts each node as
`python -m <module> --ros-args -r __node:=<name> --params-file FILE` with the same environment the
launch file sets. Ctrl-C stops them all; a node that dies is
reported with its exit status and the others are stopped too.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bringup", help="start the ROS 2 nodes of a launch file as separate processes"
    )
    parser.add_argument(
        "which", choices=["sim", "robot"], help="launch/sim.launch.py or launch/robot.launch.py"
    )
    parser.add_argument("--config", help="ROS parameter file (default: config/ros_<which>.yaml)")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: run)"
    )
    parser.set_defaults(func=run)


def _default_sigint() -> None:
    signal.signal(
        signal.SIGINT, signal.SIG_DFL
    )  # a Python node then turns SIGINT into KeyboardInterrupt


def _stop(procs: dict[str, subprocess.Popen], timeout: float = 10.0) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for name, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"bringup: {name} did not stop on SIGINT; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


def run(args: argparse.Namespace) -> int:
    from robot_rl.cli.launch_file import REPO, check_launch_file, node_module, read_launch_file

    launch = REPO / "launch" / f"{args.which}.launch.py"
    params = Path(args.config or REPO / "config" / f"ros_{args.which}.yaml").resolve()
    if not params.is_file():
        print(f"bringup: parameter file not found: {params}", file=sys.stderr)
        return 2
    problems = check_launch_file(launch, params_file=params)
    if problems:
        print("bringup: " + "\n  ".join([f"{launch} has problems:", *problems]), file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm.xml"))
    env.setdefault("MUJOCO_GL", "egl")
    procs: dict[str, subprocess.Popen] = {}
    interrupted = False

    def terminate(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    # SIGINT is how bringup is stopped and how it stops its nodes: take it even when started from a
    # shell that ignores it for background jobs (nohup ... &), and do not pass that on to the nodes
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for node in read_launch_file(launch):
            cmd = [
                sys.executable,
                "-m",
                node_module(node.executable),
                "--ros-args",
                "-r",
                f"__node:={node.name}",
                "--params-file",
                str(params),
            ]
            procs[node.name] = subprocess.Popen(cmd, env=env, preexec_fn=_default_sigint)
            print(
                f"bringup: started {node.name} ({node.executable}, pid {procs[node.name].pid})",
                flush=True,
            )
        start = time.monotonic()
        while not args.duration or time.monotonic() - start < args.duration:
            dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
            if dead:
                for name, code in dead.items():
                    print(
                        f"bringup: {name} exited with status {code}; stopping the others",
                        file=sys.stderr,
                    )
                return 1 if any(dead.values()) else 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        _stop(procs)
    return 130 if interrupted else 0
