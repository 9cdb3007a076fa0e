"""The robot's node set with the twin standing in for robot and cameras: sim_robot, the twin
operator (a scripted person in place of the teleop device), the reward node and the actor;
parameters from config/ros_sim.yaml.

sim_robot runs its `real_cell` profile there (a real cell's topics only; its ground truth under
twin/ for harnesses and the twin operator); set `profile: privileged` for state-based jobs.

    ros2 launch robot_rl sim.launch.py          (or, without a ROS install: robot-rl bringup sim)

Kept plain (string literals, one config("...") per parameter file) so that CI can check it without
`launch` installed and `robot-rl bringup` starts the same node set: see robot_rl/cli/launch_file.py.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import SetEnvironmentVariable
from launch_ros.actions import Node

from launch import LaunchDescription

SHARE = get_package_share_directory("robot_rl")


def config(name):
    return os.path.join(SHARE, "config", name)


def generate_launch_description():
    return LaunchDescription(
        [
            SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", config("fastdds_shm.xml")),
            SetEnvironmentVariable("MUJOCO_GL", "egl"),
            Node(
                package="robot_rl",
                executable="sim_robot",
                name="sim_robot",
                parameters=[config("ros_sim.yaml")],
                output="screen",
            ),
            Node(
                package="robot_rl",
                executable="twin_operator",
                name="twin_operator",
                parameters=[config("ros_sim.yaml")],
                output="screen",
            ),
            Node(
                package="robot_rl",
                executable="reward",
                name="reward",
                parameters=[config("ros_sim.yaml")],
                output="screen",
            ),
            Node(
                package="robot_rl",
                executable="actor",
                name="actor",
                parameters=[config("ros_sim.yaml")],
                output="screen",
            ),
        ]
    )
