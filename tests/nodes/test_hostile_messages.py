"""Hostile-input run (nodes.hostile): nodes survive bad messages on every subscribed topic, publish
no impossible output, hold while a topic carries only bad messages, and name it at most about
once a second. The variant streams themselves are checked without ROS processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def _legit_pose():
    from nodes.messages import pose_msg

    return pose_msg(np.array([0.5, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0]), time.time())


def test_streams_are_seeded_and_bad_only_draws_refusable_variants():
    from geometry_msgs.msg import PoseStamped

    from nodes.hostile_messages import VARIANTS, hostile_stream
    from nodes.input_checks import pose_problem
    from nodes.messages import pose_array

    first = [v.name for v, _ in hostile_stream(PoseStamped, _legit_pose, 200, seed=3)]
    again = [v.name for v, _ in hostile_stream(PoseStamped, _legit_pose, 200, seed=3)]
    assert first == again and len(set(first)) == len(VARIANTS[PoseStamped])
    for variant, msg in hostile_stream(PoseStamped, _legit_pose, 200, seed=4, bad_only=True):
        assert variant.bad
        assert pose_problem(pose_array(msg), (0.25, -0.35, 0.0), (0.75, 0.35, 0.5), 0.1), variant


def test_every_subscribed_message_type_has_variants_a_node_must_refuse():
    from nodes.hostile_messages import VARIANTS

    for kind, variants in VARIANTS.items():
        if kind.__name__ != "Bool":  # a Bool cannot carry an impossible value
            assert any(v.bad for v in variants), kind


@pytest.mark.slow
@pytest.mark.parametrize(
    "targets",
    [["actor_train", "tracker"], ["actor_demo", "reward"], ["sim_robot", "twin_operator"]],
)
def test_nodes_survive_hostile_messages_on_every_topic(ros_domain, targets):
    out = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "bench", "hostile-ros", "--json"]
        + ["--messages", "300", "--targets", *targets]
        + ["--domain-id", ros_domain["ROS_DOMAIN_ID"]],
        env={**ros_domain, "MUJOCO_GL": "egl"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert sorted(result["targets"]) == sorted(targets)
    assert result["crashes"] == 0, result
    assert result["bad_outputs"] == 0, result
    assert result["outputs_while_held"] == 0, result
    assert result["max_warnings_per_topic_per_s"] <= 2, result  # 2: lines 0.95 s apart
    assert result["min_mean_warning_interval_s"] >= 0.9, result  # named once a second
    assert result["not_recovered"] == [], result
    for name, report in result["targets"].items():
        assert report["outputs"] > 10, (name, report)  # it ran, so holding means something
        for topic, t in report["topics"].items():
            assert t["sent"] == 300 and t["alive"], (name, topic, t)
            if t["outputs_while_held"] is not None:
                assert t["held_window_s"] >= 0.9, (name, topic, t)
                assert t["max_warnings_per_s"] >= 1, (name, topic, t)  # the bad input is named
