"""Calibration files and the non-image steps.

Transforms, camera YAML, RealSense import, workspace, crops.
"""

import argparse
from pathlib import Path

import numpy as np
import pyrealsense2 as rs
import pytest
import yaml

from calibration import transform as tf
from calibration.camera_yaml import (
    CameraIntrinsics,
    TwinCamera,
    from_realsense,
    load_camera_info,
    load_twin_camera,
    save_camera_info,
    update_twin_cameras,
)
from calibration.charuco import BoardConfig
from calibration.crops import Crop, box_corners, fit_crop, project_world_points
from calibration.errors import CalibrationError
from calibration.files import read_image, write_yaml
from calibration.workspace import workspace_box, write_safety_yaml
from controllers.config import ConfigError, from_dict
from controllers.safety import SafetyConfig
from robot_rl.cli import calibrate as calibrate_cli

SIM_CAMERAS = Path(__file__).resolve().parents[2] / "sim" / "assets" / "cameras.yaml"


def _cli(argv):
    parser = argparse.ArgumentParser(prog="robot-rl")
    calibrate_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_quaternion_and_pose_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        R = tf.quat_to_matrix(q)
        assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1)
        assert np.allclose(tf.matrix_to_quat(R), q)
        pose = np.r_[rng.normal(size=3), q]
        T = tf.from_pose7(pose)
        assert np.allclose(tf.to_pose7(T), pose) and np.allclose(tf.inv(T) @ T, np.eye(4))
    # w, x, y, z order: a quarter turn about z maps x to y
    assert np.allclose(
        tf.quat_to_matrix([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]) @ [1, 0, 0], [0, 1, 0]
    )


def test_camera_info_yaml_round_trip_has_ros_keys(tmp_path):
    cam = CameraIntrinsics(
        640, 480, [[600, 0, 321], [0, 601, 239], [0, 0, 1]], [0.1, -0.2, 0.001, 0.002, 0.0]
    )
    path = save_camera_info(
        tmp_path / "cam.yaml",
        cam,
        "front",
        {"reprojection_error_px": 0.2, "num_views": 12, "date": "2026-11-22T00:00:00+00:00"},
    )
    data = yaml.safe_load(path.read_text())
    for key in (
        "image_width",
        "image_height",
        "camera_name",
        "camera_matrix",
        "distortion_model",
        "distortion_coefficients",
        "rectification_matrix",
        "projection_matrix",
    ):
        assert key in data
    assert data["projection_matrix"]["data"] == [600, 0, 321, 0, 0, 601, 239, 0, 0, 0, 1, 0]
    assert data["calibration"]["num_views"] == 12
    back = load_camera_info(path)
    assert np.allclose(back.K, cam.K) and np.allclose(back.D, cam.D) and back.width == 640


def test_camera_info_errors_name_the_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "image_width": 640,
                "image_height": 480,
                "distortion_model": "plumb_bob",
                "camera_matrix": {"rows": 3, "cols": 3, "data": [1, 0, 0, 0, 1, 0]},
                "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0] * 5},
            }
        )
    )
    with pytest.raises(
        ConfigError, match=r"bad.yaml: camera_matrix has rows=3 cols=3 but 6 values"
    ):
        load_camera_info(path)
    with pytest.raises(ConfigError, match="distortion_model: 'fisheye9'"):
        CameraIntrinsics(640, 480, np.eye(3), np.zeros(5), "fisheye9")


def test_realsense_intrinsics_object_and_dict():
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = (
        640,
        480,
        615.5,
        615.9,
        322.1,
        241.3,
    )
    intr.model = rs.distortion.inverse_brown_conrady
    intr.coeffs = [0.01, -0.02, 0.0, 0.0, 0.003]
    cam = from_realsense(intr)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == pytest.approx((615.5, 615.9, 322.1, 241.3))
    assert cam.distortion_model == "plumb_bob" and np.allclose(
        cam.D, [0.01, -0.02, 0, 0, 0.003], atol=1e-7
    )
    fisheye = from_realsense(
        {
            "width": 848,
            "height": 800,
            "fx": 286.0,
            "fy": 286.1,
            "ppx": 421.0,
            "ppy": 399.0,
            "model": "kannala_brandt4",
            "coeffs": [-0.01, 0.04, -0.04, 0.007, 0.0],
        }
    )
    assert fisheye.distortion_model == "equidistant" and len(fisheye.D) == 4
    with pytest.raises(ConfigError, match="missing field 'ppy'"):
        from_realsense(
            {"width": 1, "height": 1, "fx": 1, "fy": 1, "ppx": 0, "model": "none", "coeffs": []}
        )


def test_twin_cameras_yaml_of_the_sim_loads_and_updates_keep_other_cameras(tmp_path):
    front = load_twin_camera(SIM_CAMERAS, "front")
    assert front.parent_frame == "world" and front.intrinsics.width == 640
    copy = tmp_path / "cameras.yaml"
    copy.write_text(SIM_CAMERAS.read_text())
    T = tf.make(tf.quat_to_matrix([0.9, 0.1, -0.3, 0.2]), [0.05, 0.01, -0.1])
    cam = CameraIntrinsics(640, 480, [[610, 0, 318], [0, 611, 242], [0, 0, 1]])
    update_twin_cameras(copy, "wrist", TwinCamera(cam, "hand", T))
    wrist = load_twin_camera(copy, "wrist")
    assert np.allclose(wrist.T_parent_cam, T) and np.allclose(wrist.intrinsics.K, cam.K)
    assert np.allclose(load_twin_camera(copy, "front").T_parent_cam, front.T_parent_cam)
    with pytest.raises(ConfigError, match="no camera 'side'"):
        load_twin_camera(copy, "side")


def test_failed_write_keeps_the_old_file(tmp_path):
    path = write_yaml(tmp_path / "result.yaml", {"ok": 1})
    with pytest.raises(yaml.YAMLError):
        write_yaml(path, {"bad": object()})  # not representable in YAML
    assert yaml.safe_load(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.yaml"]  # no temp file left behind


def test_board_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="marker_length"):
        BoardConfig(marker_length=0.05)
    with pytest.raises(ConfigError, match="DICT_9X9"):
        BoardConfig(dictionary="DICT_9X9_1000")
    with pytest.raises(ConfigError, match="has 50 markers, the board needs 60"):
        BoardConfig(squares_x=12, squares_y=10, dictionary="DICT_4X4_50")


def test_workspace_box_margin_and_safety_yaml(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.uniform([0.3, -0.2, 0.05], [0.7, 0.2, 0.4], size=(200, 3))
    pts[7] = np.nan
    lo, hi = workspace_box(pts, margin=0.03)
    finite = pts[np.isfinite(pts).all(axis=1)]
    assert np.allclose(lo, finite.min(0) - 0.03) and np.allclose(hi, finite.max(0) + 0.03)
    out = tmp_path / "safety.yaml"
    out.write_text(yaml.safe_dump({"safety": {"max_step_trans": 0.01}, "other": 1}))
    write_safety_yaml(out, lo, hi)
    data = yaml.safe_load(out.read_text())
    assert data["other"] == 1 and data["safety"]["max_step_trans"] == 0.01
    cfg = from_dict(SafetyConfig, data["safety"])  # the safety filter accepts the file as written
    assert np.allclose(cfg.workspace_min, lo, atol=1e-5) and np.allclose(
        cfg.workspace_max, hi, atol=1e-5
    )


def test_workspace_refuses_a_flat_recording():
    pts = np.c_[np.linspace(0.3, 0.6, 20), np.linspace(-0.2, 0.2, 20), np.full(20, 0.1)]
    with pytest.raises(CalibrationError, match=r"less than 0.02 m along z \(0.000 m\)"):
        workspace_box(pts)


def test_cli_workspace_writes_only_on_success(tmp_path):
    poses = tmp_path / "poses.csv"
    rows = [
        [0.3, -0.2, 0.05, 1, 0, 0, 0],
        [0.6, 0.2, 0.3, 1, 0, 0, 0],
        [0.45, 0.0, 0.2, 0, 1, 0, 0],
    ]
    poses.write_text("x,y,z,qw,qx,qy,qz\n" + "\n".join(",".join(map(str, r)) for r in rows))
    out = tmp_path / "safety.yaml"
    assert (
        _cli(
            ["calibrate", "workspace", "--poses", str(poses), "--margin", "0.01", "--out", str(out)]
        )
        == 0
    )
    safety = yaml.safe_load(out.read_text())["safety"]
    assert safety["workspace_min"] == pytest.approx([0.29, -0.21, 0.04])
    assert safety["workspace_max"] == pytest.approx([0.61, 0.21, 0.31])
    before = out.read_bytes()
    np.save(tmp_path / "flat.npy", np.array(rows)[:, :3] * [1, 1, 0])
    assert (
        _cli(["calibrate", "workspace", "--poses", str(tmp_path / "flat.npy"), "--out", str(out)])
        == 2
    )
    assert out.read_bytes() == before


def test_fit_crop_is_square_and_inside_the_image():
    c = fit_crop(np.array([[100, 200], [300, 260]]), (640, 480), margin_px=10)
    assert (c.width, c.height) == (220, 220) and (c.x, c.y) == (90, 120)
    edge = fit_crop(np.array([[600, 400], [630, 470]]), (640, 480), margin_px=20)
    assert edge.width == edge.height and edge.x + edge.width <= 640 and edge.y + edge.height <= 480
    with pytest.raises(CalibrationError, match="outside the 640x480 image"):
        fit_crop(np.array([[700, 500], [800, 600]]), (640, 480))
    with pytest.raises(ConfigError, match="width=0"):
        Crop(0, 0, 0, 10)


def test_projected_box_crop_contains_the_box_corners():
    cam = load_twin_camera(SIM_CAMERAS, "front")
    lo, hi = np.array([0.4, -0.15, 0.0]), np.array([0.6, 0.15, 0.1])
    px = project_world_points(box_corners(lo, hi), cam)
    assert (px > 0).all() and (px[:, 0] < 640).all() and (px[:, 1] < 480).all()
    c = fit_crop(px, (640, 480), margin_px=5, square=False)
    assert (px[:, 0] >= c.x).all() and (px[:, 0] <= c.x + c.width).all()
    assert (px[:, 1] >= c.y).all() and (px[:, 1] <= c.y + c.height).all()
    with pytest.raises(CalibrationError, match="fixed camera"):
        project_world_points(box_corners(lo, hi), load_twin_camera(SIM_CAMERAS, "wrist"))


def test_cli_crop_writes_yaml_and_preview(tmp_path):
    frame = np.full((480, 640, 3), 90, np.uint8)
    import cv2

    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    safety = tmp_path / "safety.yaml"
    safety.write_text(
        yaml.safe_dump(
            {"safety": {"workspace_min": [0.3, -0.2, 0.0], "workspace_max": [0.7, 0.2, 0.3]}}
        )
    )
    out = tmp_path / "crops.yaml"
    assert (
        _cli(
            [
                "calibrate",
                "crop",
                "--camera",
                "front",
                "--image",
                str(tmp_path / "frame.png"),
                "--out",
                str(out),
                "--cameras",
                str(SIM_CAMERAS),
                "--policy-from-safety",
                str(safety),
                "--reward",
                "200",
                "150",
                "160",
                "160",
            ]
        )
        == 0
    )
    crops = yaml.safe_load(out.read_text())["crops"]["front"]
    assert crops["reward"] == {"x": 200, "y": 150, "width": 160, "height": 160}
    p = crops["policy"]
    assert p["width"] == p["height"] and p["x"] + p["width"] <= 640 and p["y"] + p["height"] <= 480
    preview = read_image(tmp_path / "crop_front.png")
    # the reward rectangle's top edge, drawn in its colour
    assert tuple(preview[150, 260]) == (230, 60, 0)
    assert tuple(preview[p["y"] + p["height"] // 2, p["x"]]) == (0, 200, 0)
    # a policy crop that exceeds the image: refused, file kept
    args = ["calibrate", "crop", "--camera", "front", "--image", str(tmp_path / "frame.png")]
    assert _cli([*args, "--out", str(out), "--policy", "600", "400", "100", "100"]) == 2
    assert yaml.safe_load(out.read_text())["crops"]["front"]["reward"]["x"] == 200
