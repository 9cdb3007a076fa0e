"""The real cell: two RealSense cameras, teleop, the reward classifier and the actor.

Parameters come from config/ros_robot.yaml.

    ros2 launch robot_rl robot.launch.py        (or: robot-rl bringup robot)

The robot's own real-time controller (e.g. a ros2_control Cartesian impedance controller that
follows `target_pose` and publishes `current_pose`, `current_twist`, `joint_states`, `wrench`, and
serves `reset`) is launched with the robot's driver, not here. Kept plain for the static check in
CI (nodes/launch_file.py).
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
            Node(
                package="robot_rl",
                executable="camera",
                name="camera_front",
                parameters=[config("ros_robot.yaml")],
                output="screen",
            ),
            Node(
                package="robot_rl",
                executable="camera",
                name="camera_wrist",
                parameters=[config("ros_robot.yaml")],
                output="screen",
            ),
            Node(
                package="robot_rl",
                executable="teleop",
                name="teleop",
                parameters=[config("ros_robot.yaml")],
                output="screen",
            ),
            Node(
                package="robot_rl",
                executable="reward",
                name="reward",
                parameters=[config("ros_robot.yaml")],
                output="screen",
            ),
            Node(
                package="robot_rl",
                executable="actor",
                name="actor",
                parameters=[config("ros_robot.yaml")],
                output="screen",
            ),
        ]
    )
