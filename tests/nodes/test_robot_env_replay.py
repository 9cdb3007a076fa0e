"""The ROS actor's episodes carry the joint configuration they started from, and replay from it."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_robot_env import ARM, FINGERS, cell, robot_and_env  # noqa: F401  (robot + env over DDS)

from robot_rl.cli.replay import replay
from robot_rl.loop.actor import Actor
from robot_rl.store import EpisodeStore
from robot_rl.store.tee import StoreTee
from sim.config import EnvConfig

pytestmark = pytest.mark.ros

START = np.array([0.1, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8, 0.03, 0.03])  # arm joints, then fingers


class _Hold:
    def act(self, obs, deterministic=False):
        return np.zeros(7, np.float32)


def test_ros_actor_episode_records_joint_states_and_replays_from_them(
    robot_and_env,  # noqa: F811
    tmp_path,
):
    from nodes.messages import joint_state_msg, pose_msg

    robot, env, _, _ = robot_and_env
    robot.publishing = False  # this test's joint_states instead of the scripted robot's zeros

    def publish():
        now, zeros = time.time(), np.zeros(9)
        robot.pose_pub.publish(pose_msg(robot.pose, now))
        robot.joint_pub.publish(joint_state_msg(ARM + FINGERS, START, zeros, zeros, now))

    robot.node.create_timer(0.02, publish)
    env.config = EnvConfig(max_episode_steps=3)
    store = tmp_path / "ros.zarr"
    tee = StoreTee(None, str(store), "pick_cube", "real", "")
    Actor(env, _Hold(), tee, max_episode_steps=3).run_episode("train", seed=0)
    with EpisodeStore.open(store) as s:
        initial = s.info(0).initial_state
    np.testing.assert_allclose(initial["arm_joint_pos"], START[:7])
    np.testing.assert_allclose(initial["finger_joint_pos"], START[7:])
    assert "object_pose" not in initial and "sim_state" not in initial  # no tracker in this cell
    report = replay(store, 0, tmp_path / "out")
    assert report["start"] == "joints" and report["steps_compared"] == 3
