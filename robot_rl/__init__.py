"""robot_rl: the learning core (agents, replay, transport, episode store, CLI). Never imports rclpy."""

__version__ = "0.1.0"
