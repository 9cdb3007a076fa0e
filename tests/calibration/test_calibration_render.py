"""Calibration against rendered ground truth.

A ChArUco board in a real MuJoCo scene with known cameras.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

os.environ.setdefault("MUJOCO_GL", "egl")

from calibration import transform as tf  # noqa: E402
from calibration.camera_yaml import from_realsense  # noqa: E402
from calibration.charuco import BoardConfig, CharucoFinder, Detection  # noqa: E402
from calibration.collector import SampleCollector  # noqa: E402
from calibration.errors import CalibrationError  # noqa: E402
from calibration.handeye import (
    ALL_METHODS,
    HandEyeConfig,
    HandEyeSample,
    board_pose,
    calibrate_hand_eye,
)  # noqa: E402
from calibration.intrinsics import IntrinsicsConfig, calibrate_intrinsics  # noqa: E402
from calibration.selftest import (
    Scene,
    board_points,
    default_rigs,
    run,
    sample_hand_poses,
    world_poses,
)  # noqa: E402
from robot_rl.cli import calibrate as calibrate_cli  # noqa: E402

BOARD = BoardConfig()
N_VIEWS = 16


def _render(rig, n, seed, folder):
    scene = Scene(rig, BOARD, folder)
    try:
        poses = sample_hand_poses(rig, BOARD, n, np.random.default_rng(seed))
        return poses, [scene.render(T) for T in poses]
    finally:
        scene.close()


@pytest.fixture(scope="module")
def wrist_views(tmp_path_factory):
    """Eye-in-hand rig: ground truth, hand poses, rendered images and detections."""
    rig = default_rigs()[0]
    poses, images = _render(rig, N_VIEWS, 1, tmp_path_factory.mktemp("wrist"))
    finder = CharucoFinder(BOARD)
    return rig, poses, images, [finder.detect(im) for im in images]


def _cli(argv):
    parser = argparse.ArgumentParser(prog="robot-rl")
    calibrate_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_mujoco_render_matches_pinhole_model(wrist_views):
    rig, poses, _, dets = wrist_views
    errs = []
    for T, det in zip(poses, dets):
        assert len(det) >= 30  # the sampled poses keep the whole board in view
        T_world_cam, T_world_board = world_poses(rig, T)
        T_cam_board = tf.inv(T_world_cam) @ T_world_board
        pts = det.object_points(BOARD)
        px = rig.intrinsics.project(pts @ T_cam_board[:3, :3].T + T_cam_board[:3, 3])
        errs.append(np.linalg.norm(px - det.corners, axis=1))
    errs = np.concatenate(errs)
    assert np.median(errs) < 0.1 and errs.max() < 0.3


def test_selftest_recovers_ground_truth_for_both_setups():
    result = run(n_views=20, seed=0)
    assert [s["setup"] for s in result["setups"]] == ["eye_in_hand", "eye_to_hand"]
    assert result["focal_err_pct"] < 1.0
    assert result["pp_err_px"] < 2.0
    assert result["handeye_trans_mm"] < 2.0
    assert result["handeye_rot_deg"] < 0.2
    assert result["writeback_px_max"] < 1.0
    assert result["seconds"] < 60


def test_intrinsics_drops_a_corrupted_view_and_stays_accurate(wrist_views):
    rig, _, _, dets = wrist_views
    views = {f"v{i}": d for i, d in enumerate(dets)}
    bad = views["v3"]
    shifted = bad.corners.copy()
    shifted[::2] += 4.0  # half the corners misplaced by 4 px in x and y
    views["v3"] = Detection(shifted, bad.ids, bad.num_markers)
    res = calibrate_intrinsics(views, BOARD, (640, 480), IntrinsicsConfig(min_views=8))
    assert "v3" in res.rejected and "reprojection error" in res.rejected["v3"]
    assert "v3" not in res.view_errors_px and len(res.view_errors_px) == N_VIEWS - 1
    k = rig.intrinsics
    assert abs(res.camera.fx - k.fx) / k.fx < 0.01 and abs(res.camera.fy - k.fy) / k.fy < 0.01
    assert np.hypot(res.camera.cx - k.cx, res.camera.cy - k.cy) < 2.0


def test_intrinsics_too_few_views_names_every_rejection(wrist_views):
    _, _, _, dets = wrist_views
    blank = CharucoFinder(BOARD).detect(np.full((480, 640, 3), 128, np.uint8))
    few = Detection(dets[0].corners[:5], dets[0].ids[:5], 3)
    views = {"a": dets[0], "b": dets[1], "empty": blank, "few": few}
    with pytest.raises(CalibrationError) as exc:
        calibrate_intrinsics(views, BOARD, (640, 480), IntrinsicsConfig(min_views=5))
    msg = str(exc.value)
    assert "2 usable view(s)" in msg
    assert "rejected empty: no board corners detected" in msg
    assert "rejected few: only 5 corners" in msg
    assert "Next:" in msg


def test_intrinsics_seeded_with_realsense_factory_values(wrist_views):
    rig, _, _, dets = wrist_views
    views = {f"v{i}": d for i, d in enumerate(dets)}
    factory = from_realsense(
        {
            "width": 640,
            "height": 480,
            "fx": 612.0,
            "fy": 612.0,
            "ppx": 320.0,
            "ppy": 240.0,
            "model": "distortion.inverse_brown_conrady",
            "coeffs": [0.0] * 5,
        }
    )
    res = calibrate_intrinsics(views, BOARD, (640, 480), IntrinsicsConfig(), initial=factory)
    k = rig.intrinsics
    assert (
        abs(res.camera.fx - k.fx) / k.fx < 0.01
        and np.hypot(res.camera.cx - k.cx, res.camera.cy - k.cy) < 2.0
    )
    with pytest.raises(CalibrationError, match="for 1280x720 images, the views are 640x480"):
        calibrate_intrinsics(
            views,
            BOARD,
            (640, 480),
            IntrinsicsConfig(),
            initial=from_realsense({**_realsense_dict(factory), "width": 1280, "height": 720}),
        )


def _realsense_dict(cam):
    return {
        "width": cam.width,
        "height": cam.height,
        "fx": cam.fx,
        "fy": cam.fy,
        "ppx": cam.cx,
        "ppy": cam.cy,
        "model": "none",
        "coeffs": [0.0] * 5,
    }


def _handeye_samples(rig, poses, dets):
    return [
        HandEyeSample(f"s{i}", T, board_pose(d, BOARD, rig.intrinsics)[0])
        for i, (T, d) in enumerate(zip(poses, dets))
    ]


def test_handeye_chooses_method_by_heldout_error_and_rejects_a_bad_pose(wrist_views):
    rig, poses, _, dets = wrist_views
    samples = _handeye_samples(rig, poses, dets)
    # a robot pose read while the wrist was still turning: 3 degrees off
    samples[5].T_base_hand = samples[5].T_base_hand @ tf.make(
        tf.quat_to_matrix([np.cos(0.026), 0, np.sin(0.026), 0]), np.zeros(3)
    )
    res = calibrate_hand_eye(samples, board_points(BOARD), HandEyeConfig(setup="eye_in_hand"))
    assert set(res.heldout) == set(ALL_METHODS)
    assert res.method == min(res.heldout, key=lambda m: res.heldout[m]["point_mm"])
    assert "s5" in res.rejected and "rotations disagree" in res.rejected["s5"]
    dt, dr = tf.errors(res.T_parent_cam, rig.T_parent_cam)
    assert dt < 2e-3 and np.degrees(dr) < 0.2
    doc = res.to_dict()
    assert (
        doc["transform"]["parent_frame"] == "hand" and len(doc["transform"]["quaternion_xyzw"]) == 4
    )


def test_handeye_with_wrong_quaternion_order_is_refused(wrist_views):
    rig, poses, _, dets = wrist_views
    samples = _handeye_samples(rig, poses, dets)
    for s in samples:  # poses given as x y z qx qy qz qw by mistake
        p = tf.to_pose7(s.T_base_hand)
        s.T_base_hand = tf.from_pose7(np.r_[p[:3], p[4:], p[3]])
    with pytest.raises(CalibrationError) as exc:
        calibrate_hand_eye(samples, board_points(BOARD), HandEyeConfig(setup="eye_in_hand"))
    msg = str(exc.value)
    assert "robot and camera motions agree" in msg and "0 usable sample(s)" in msg
    assert "quaternion w,x,y,z" in msg


def test_collector_and_cli_calibrate_a_wrist_camera_end_to_end(wrist_views, tmp_path):
    rig, poses, images, _ = wrist_views
    collector = SampleCollector(tmp_path / "samples", BOARD, camera="wrist")
    for T, im in zip(poses, images):
        added = collector.add(im, tf.to_pose7(T))
        assert added.accepted
    assert added.usable == N_VIEWS and added.message(20).endswith("; 4 more needed")
    again = collector.add(images[0], tf.to_pose7(poses[0]))
    assert not again.accepted and "same pose" in again.reason and again.usable == N_VIEWS
    assert again.message(20).endswith(f"still {N_VIEWS} usable")
    resumed = SampleCollector(tmp_path / "samples", BOARD, camera="wrist")
    assert resumed.usable == N_VIEWS
    blank = collector.add(np.zeros((480, 640, 3), np.uint8), tf.to_pose7(poses[0]))
    assert not blank.accepted and "no board corners" in blank.reason

    cam_yaml, he_yaml, twin_yaml = (
        tmp_path / "wrist.yaml",
        tmp_path / "handeye.yaml",
        tmp_path / "cameras.yaml",
    )
    twin_yaml.write_text(yaml.safe_dump({"cameras": {"front": {"image_width": 1}}}))
    assert (
        _cli(
            [
                "calibrate",
                "intrinsics",
                "--samples",
                str(tmp_path / "samples"),
                "--out",
                str(cam_yaml),
                "--camera-name",
                "wrist",
            ]
        )
        == 0
    )
    info = yaml.safe_load(cam_yaml.read_text())
    assert info["calibration"]["num_views"] == N_VIEWS
    fx, _, cx, _, fy, cy = info["camera_matrix"]["data"][:6]
    k = rig.intrinsics
    assert (
        abs(fx - k.fx) / k.fx < 0.01
        and abs(fy - k.fy) / k.fy < 0.01
        and np.hypot(cx - k.cx, cy - k.cy) < 2
    )
    assert (
        _cli(
            [
                "calibrate",
                "handeye",
                "--samples",
                str(tmp_path / "samples"),
                "--intrinsics",
                str(cam_yaml),
                "--setup",
                "eye_in_hand",
                "--out",
                str(he_yaml),
                "--camera-name",
                "wrist",
                "--twin-cameras",
                str(twin_yaml),
            ]
        )
        == 0
    )
    he = yaml.safe_load(he_yaml.read_text())
    q = he["transform"]["quaternion_xyzw"]
    T = tf.make(tf.quat_to_matrix([q[3], *q[:3]]), he["transform"]["translation"])
    dt, dr = tf.errors(T, rig.T_parent_cam)
    assert dt < 2e-3 and np.degrees(dr) < 0.2
    twin = yaml.safe_load(twin_yaml.read_text())["cameras"]
    assert twin["front"] == {"image_width": 1} and twin["wrist"]["parent_frame"] == "hand"

    # a failed calibration leaves the saved result untouched
    before = cam_yaml.read_bytes()
    assert (
        _cli(
            [
                "calibrate",
                "intrinsics",
                "--samples",
                str(tmp_path / "samples"),
                "--out",
                str(cam_yaml),
                "--min-views",
                "40",
            ]
        )
        == 2
    )
    assert cam_yaml.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cameras.yaml",
        "handeye.yaml",
        "samples",
        "wrist.yaml",
    ]


@pytest.mark.slow
def test_cli_selftest_prints_the_errors_as_json():
    out = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "calibrate", "selftest", "--json", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["focal_err_pct"] < 1.0 and result["pp_err_px"] < 2.0
    assert result["handeye_trans_mm"] < 2.0 and result["handeye_rot_deg"] < 0.2


def _distort(image, K, D):
    """The image a lens with distortion D would have produced.

    Pixel-exact resampling of the pinhole render.
    """
    import cv2

    h, w = image.shape[:2]
    grid = np.stack(
        np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1
    ).reshape(-1, 1, 2)
    src = cv2.undistortPoints(grid, K, D, P=K).reshape(h, w, 2)
    return cv2.remap(image, src[..., 0], src[..., 1], cv2.INTER_LINEAR)


@pytest.mark.parametrize("model", ["plumb_bob", "rational_polynomial"])
def test_intrinsics_recover_lens_distortion(wrist_views, model):
    rig, _, images, _ = wrist_views
    D_true = np.array([-0.12, 0.05, 0.0, 0.0, 0.0])
    finder = CharucoFinder(BOARD)
    views = {
        f"v{i}": finder.detect(_distort(im, rig.intrinsics.K, D_true))
        for i, im in enumerate(images)
    }
    res = calibrate_intrinsics(
        views, BOARD, (640, 480), IntrinsicsConfig(distortion_model=model, min_views=8)
    )
    cam, k = res.camera, rig.intrinsics
    assert len(cam.D) == (8 if model == "rational_polynomial" else 5)
    assert abs(cam.fx - k.fx) / k.fx < 0.01 and abs(cam.fy - k.fy) / k.fy < 0.01
    assert np.hypot(cam.cx - k.cx, cam.cy - k.cy) < 2.0
    assert res.rms_px < 0.3
    # the fitted camera maps rays to pixels like the true one (within 1 px) wherever the views put
    # corners (outside that area a fit is extrapolation, which is why operators are told to cover
    # the image corners); rational-model coefficients are not unique, so compare what the lenses
    # do, not the numbers
    seen = np.concatenate([d.corners for d in views.values() if len(d)])
    lo, hi = seen.min(axis=0), seen.max(axis=0)
    grid = np.stack(
        np.meshgrid(np.linspace(lo[0], hi[0], 8), np.linspace(lo[1], hi[1], 6)), -1
    ).reshape(-1, 1, 2)
    rays = _rays(grid, k.K, D_true)
    assert np.linalg.norm(cam.project(rays) - grid.reshape(-1, 2), axis=1).max() < 1.0
    if model == "plumb_bob":  # k1 dominates; k2 trades off against it inside the covered area
        assert cam.D[0] == pytest.approx(D_true[0], abs=0.02)


def _rays(px, K, D):
    import cv2

    norm = cv2.undistortPoints(px.astype(np.float64), K, D).reshape(-1, 2)
    return np.c_[norm, np.ones(len(norm))]
