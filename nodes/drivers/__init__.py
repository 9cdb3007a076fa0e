"""Hardware readers for the nodes (teleop input devices): plain Python, no rclpy."""
