"""Camera calibration for the cell: ChArUco intrinsics, hand-eye, workspace bounds, image crops.

OpenCV and numpy only; no ROS and no simulator imports (the selftest imports MuJoCo inside itself).
"""
