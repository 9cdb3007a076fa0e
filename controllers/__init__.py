"""Robot-side control laws and safety filters (numpy only; no MuJoCo, no ROS)."""
