"""`robot-rl bench ros --json` runs end to end over real DDS between processes (short run)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest


@pytest.mark.ros
@pytest.mark.slow
def test_bench_ros_reports_latencies_and_control_rate(ros_domain):
    domain = ros_domain["ROS_DOMAIN_ID"]
    out = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "bench", "ros", "--json", "--seconds", "2"]
        + ["--domain-id", domain],
        env=ros_domain,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in (
        "image_latency_ms_p50",
        "image_latency_ms_p99",
        "control_rate_hz",
        "tick_latency_ms_p99",
    ):
        assert key in result
    assert 0 < result["image_latency_ms_p50"] <= result["image_latency_ms_p99"]
    assert result["image_frames"] >= 20  # 30 fps for 2 s after discovery
    assert result["ticks"] >= 15 and abs(result["control_rate_hz"] - 10.0) < 1.0
    # the tick runs the image policy: its latency includes the policy's inference
    assert 0 < result["policy_ms_p50"] <= result["tick_latency_ms_p99"]


def test_bench_ros_failure_names_the_child(monkeypatch):
    from robot_rl.bench import ros

    monkeypatch.setattr(ros, "BENCH_MODULE", "nodes.no_such_bench")
    args = argparse.Namespace(seconds=1.0, threads=1, dtype="float32", domain_id=7)
    with pytest.raises(RuntimeError, match="nodes.no_such_bench .*exited with status 1"):
        ros.run(args)
