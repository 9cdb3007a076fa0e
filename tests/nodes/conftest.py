"""Fixtures for ROS 2 tests: each test gets its own DDS domain on localhost only."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()


def _next_domain_id() -> int:
    # ids 10..100; pid-spread so parallel pytest workers/sessions rarely collide
    return 10 + (os.getpid() * 7 + next(_counter)) % 91


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh ROS_DOMAIN_ID, set for this process (rclpy reads it at init) and for children."""
    domain = str(_next_domain_id())
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    return dict(os.environ)


@pytest.fixture
def rclpy_context(ros_domain):
    """An initialised rclpy context in this process, shut down after the test."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


class NodeProcess:
    """A node started as `python -m nodes.<module> --ros-args ...` in its own process."""

    def __init__(self, module: str, ros_args: list[str], env: dict[str, str], log: Path):
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *ros_args],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: the node's normal shutdown path
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_node(ros_domain, tmp_path):
    """Factory: start_node('nodes.camera', ['-p', 'name:=front']) -> NodeProcess, stopped later."""
    started: list[NodeProcess] = []

    def start(module: str, ros_args: list[str] | None = None, env: dict[str, str] | None = None):
        log = tmp_path / f"{module.split('.')[-1]}_{len(started)}.log"
        proc = NodeProcess(module, list(ros_args or []), {**ros_domain, **(env or {})}, log)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def spin_until(rclpy_context):
    """spin_until(node, predicate, timeout) -> bool: spin `node` until predicate() holds."""
    from rclpy.executors import SingleThreadedExecutor

    def spin(node, predicate, timeout: float) -> bool:
        executor = SingleThreadedExecutor(context=rclpy_context)
        executor.add_node(node)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if predicate():
                    return True
                executor.spin_once(timeout_sec=0.05)
            return bool(predicate())
        finally:
            executor.remove_node(node)
            executor.shutdown()  # drops its wait-set iterator, which still holds the node's handles

    return spin
