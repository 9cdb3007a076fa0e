"""`robot-rl bench ros` body runs end to end over real DDS between two processes (short run)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_bench_ros_reports_latencies_and_control_rate(ros_domain):
    from nodes import bench_ros

    result = bench_ros.run(seconds=2.0, domain_id=int(ros_domain["ROS_DOMAIN_ID"]))
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
