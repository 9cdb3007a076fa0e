"""ROS 2 nodes (rclpy): thin adapters between topics and the cores (robot_rl, controllers, sim)."""
