"""robot_rl: the learning core (agents, replay, transport, store, CLI); never imports rclpy."""

__version__ = "0.1.0"
