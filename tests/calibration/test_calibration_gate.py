"""The hand-eye sample gate: shared by `robot-rl calibrate handeye` and `calibrate selftest`."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from calibration.camera_yaml import CameraIntrinsics  # noqa: E402
from calibration.charuco import BoardConfig, CharucoFinder  # noqa: E402
from calibration.errors import CalibrationError  # noqa: E402
from calibration.handeye import HandEyeConfig, gate_samples  # noqa: E402
from calibration.selftest import default_rigs, run_rig  # noqa: E402

BOARD = BoardConfig()
CAM = CameraIntrinsics(640, 480, [[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])


def test_gate_drops_a_view_without_the_board():
    blank = np.full((480, 640, 3), 128, np.uint8)
    samples, rejected = gate_samples(
        [("s0", blank, np.eye(4))], CharucoFinder(BOARD), CAM, HandEyeConfig()
    )
    assert samples == [] and rejected == {"s0": "0 board corners (need 12)"}


def test_gate_refuses_views_without_robot_pose_or_of_another_size():
    finder, cfg = CharucoFinder(BOARD), HandEyeConfig()
    image = np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(CalibrationError, match="folder_x has no robot poses"):
        gate_samples([("s0", image, None)], finder, CAM, cfg, "folder_x")
    with pytest.raises(CalibrationError, match="s0 is 320x240 but the intrinsics are for 640x480"):
        gate_samples([("s0", image[:240, :320], np.eye(4))], finder, CAM, cfg)


def test_selftest_runs_the_gate_and_refuses_degenerate_samples(tmp_path):
    # a board-pose fit limit no real view meets: every render is a degenerate sample for the gate
    rig = default_rigs()[0]
    strict = HandEyeConfig(setup=rig.setup, max_pnp_error_px=1e-6)
    with pytest.raises(CalibrationError) as info:
        run_rig(rig, BOARD, n_views=12, seed=0, folder=tmp_path, handeye=strict)
    message = str(info.value)
    assert "hand-eye calibration refused: need 8 samples; 0 usable sample(s)." in message
    assert message.count("board pose fits its corners to") == 12
    assert "rejected view_011" in message and "Next: record at least 8 samples" in message


def test_selftest_refuses_too_few_samples(tmp_path):
    rig = default_rigs()[1]
    wanting = HandEyeConfig(setup=rig.setup, min_samples=16)
    with pytest.raises(CalibrationError, match="need 16 samples; 12 usable sample"):
        run_rig(rig, BOARD, n_views=12, seed=0, folder=tmp_path, handeye=wanting)
