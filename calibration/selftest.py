"""Ground-truth check of the pipeline in a MuJoCo scene: intrinsics and hand-eye, both set-ups.

A ChArUco board (generated with cv2.aruco, applied as a texture) and a camera with known intrinsics
and pose are rendered from randomised hand poses: eye-in-hand (camera on a mocap `hand`, board fixed
in the cell) and eye-to-hand (camera fixed, board held by the hand). The images and hand poses go
through the same code an operator's samples go through; the result is compared with the truth and
written back into a twin-style cameras.yaml, whose camera must then see the board corners where the
true camera sees them.

The scene is self-contained (a mocap hand, no arm) so the check does not depend on the rest of the
twin.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration import transform as tf
from calibration.camera_yaml import (
    CameraIntrinsics,
    TwinCamera,
    load_twin_camera,
    update_twin_cameras,
)
from calibration.charuco import BoardConfig, CharucoFinder, Detection, board_image
from calibration.handeye import HandEyeConfig, calibrate_hand_eye, gate_samples
from calibration.intrinsics import IntrinsicsConfig, calibrate_intrinsics

WIDTH, HEIGHT = 640, 480
# board geom frame (MuJoCo plane: z up, texture row 0 at +y) -> OpenCV board frame (y down the
# print, z into it)
_R_GEOM_BOARD = np.diag([1.0, -1.0, -1.0])
# MuJoCo camera frame (looks along -z, y up) vs OpenCV optical frame (looks along +z, y down)
_R_OPT_MJ = np.diag([1.0, -1.0, -1.0])


@dataclass
class Rig:
    """Ground truth of one set-up."""

    setup: str  # eye_in_hand | eye_to_hand
    intrinsics: CameraIntrinsics
    T_parent_cam: np.ndarray  # camera in hand (eye_in_hand) or world (eye_to_hand)
    T_other_board: np.ndarray  # board in world (eye_in_hand) or hand (eye_to_hand)


def default_rigs() -> list[Rig]:
    wrist = CameraIntrinsics(WIDTH, HEIGHT, [[605.2, 0, 322.7], [0, 604.6, 238.1], [0, 0, 1]])
    fixed = CameraIntrinsics(WIDTH, HEIGHT, [[615.3, 0, 317.4], [0, 616.1, 243.6], [0, 0, 1]])
    R_wrist = _rot([0, 1, 0], -12) @ _rot([0, 0, 1], 90)
    look = np.array([0.5, 0.0, 0.15]) - np.array([0.5, -0.6, 0.5])
    z = look / np.linalg.norm(look)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    R_fixed = np.column_stack([x, np.cross(z, x), z])
    board_on_table = tf.make(np.diag([1.0, -1.0, -1.0]), [0.38, 0.09, 0.0])
    board_in_hand = tf.make(_rot([1, 0, 0], 180) @ _rot([0, 0, 1], 7), [-0.12, 0.09, 0.03])
    return [
        Rig("eye_in_hand", wrist, tf.make(R_wrist, [0.055, -0.01, 0.045]), board_on_table),
        Rig("eye_to_hand", fixed, tf.make(R_fixed, [0.5, -0.6, 0.5]), board_in_hand),
    ]


def _rot(axis: list[float], deg: float) -> np.ndarray:
    import cv2

    a = np.asarray(axis, dtype=float)
    return cv2.Rodrigues(a / np.linalg.norm(a) * np.radians(deg))[0]


def _mj_quat(R: np.ndarray) -> str:
    return " ".join(f"{v:.12g}" for v in tf.matrix_to_quat(R))


def _pose_attrs(T: np.ndarray) -> str:
    return f'pos="{" ".join(f"{v:.12g}" for v in T[:3, 3])}" quat="{_mj_quat(T[:3, :3])}"'


class Scene:
    """MuJoCo scene with a mocap hand, a textured ChArUco plane and the camera of one rig."""

    def __init__(self, rig: Rig, board: BoardConfig, folder: Path):
        import cv2
        import mujoco

        self.rig, self.board = rig, board
        margin_sq = 0.5
        texture = folder / "charuco.png"
        cv2.imwrite(str(texture), board_image(board, px_per_square=120, margin_squares=margin_sq))
        w, h = board.size_m
        half = (w / 2 + margin_sq * board.square_length, h / 2 + margin_sq * board.square_length)
        T_geom_board = tf.make(_R_GEOM_BOARD, [-w / 2, h / 2, 0.0])
        T_other_geom = rig.T_other_board @ tf.inv(T_geom_board)
        geom = (
            f'<geom type="plane" size="{half[0]} {half[1]} 0.01" material="board" contype="0" '
            f'conaffinity="0" {_pose_attrs(T_other_geom)}/>'
        )
        k = rig.intrinsics
        # MuJoCo's principal point is an offset from the image centre, with pixel centres at
        # half-integers in OpenCV terms and the opposite sign on both axes (verified against
        # cv2.projectPoints in the tests)
        T_cam_mj = tf.make(rig.T_parent_cam[:3, :3] @ _R_OPT_MJ, rig.T_parent_cam[:3, 3])
        camera = (
            f'<camera name="cam" {_pose_attrs(T_cam_mj)} resolution="{k.width} {k.height}" '
            f'focalpixel="{k.fx} {k.fy}" principalpixel="{(k.width - 1) / 2 - k.cx} '
            f'{(k.height - 1) / 2 - k.cy}" sensorsize="{k.width * 1e-5} {k.height * 1e-5}"/>'
        )
        hand_children, world_children = (
            (camera, geom) if rig.setup == "eye_in_hand" else (geom, camera)
        )
        xml = f"""<mujoco>
  <visual><global offwidth="{k.width}" offheight="{k.height}"/>
    <headlight ambient="1 1 1" diffuse="0 0 0" specular="0 0 0"/><quality shadowsize="0"/></visual>
  <asset><texture name="board" type="2d" file="{texture}"/>
    <material name="board" texture="board" specular="0" shininess="0" reflectance="0"/></asset>
  <worldbody>
    <geom type="plane" size="2 2 0.01" rgba="0.45 0.42 0.4 1" pos="0 0 -0.002" contype="0"
          conaffinity="0"/>
    {world_children}
    <body name="hand" mocap="true">{hand_children}</body>
  </worldbody>
</mujoco>"""
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, k.height, k.width)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            self.renderer.scene.flags[flag] = 0

    def render(self, T_world_hand: np.ndarray) -> np.ndarray:
        import mujoco

        self.data.mocap_pos[0] = T_world_hand[:3, 3]
        self.data.mocap_quat[0] = tf.matrix_to_quat(T_world_hand[:3, :3])
        mujoco.mj_forward(self.model, self.data)
        self.renderer.update_scene(self.data, camera="cam")
        return self.renderer.render().copy()

    def close(self) -> None:
        self.renderer.close()


def world_poses(rig: Rig, T_world_hand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T_world_cam, T_world_board) of a rig when the hand is at T_world_hand."""
    if rig.setup == "eye_in_hand":
        return T_world_hand @ rig.T_parent_cam, rig.T_other_board
    return rig.T_parent_cam, T_world_hand @ rig.T_other_board


def sample_hand_poses(
    rig: Rig, board: BoardConfig, n: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Random hand poses where the camera sees the whole board from 0.3-0.5 m, tilted <= 35 deg."""
    w, h = board.size_m
    center = np.array([w / 2, h / 2, 0.0])
    outline = np.array([[0, 0, 0], [w, 0, 0], [0, h, 0], [w, h, 0]], dtype=float)
    poses = []
    while len(poses) < n:
        tilt, azim = np.radians(rng.uniform(5, 35)), rng.uniform(0, 2 * np.pi)
        v = np.array([np.sin(tilt) * np.cos(azim), np.sin(tilt) * np.sin(azim), -np.cos(tilt)])
        look = center + np.r_[rng.uniform(-0.04, 0.04, 2), 0.0]
        pos = look + rng.uniform(0.3, 0.5) * v
        z = (look - pos) / np.linalg.norm(look - pos)
        x = np.array([1.0, 0, 0]) - z[0] * z
        x /= np.linalg.norm(x)
        R = np.column_stack([x, np.cross(z, x), z]) @ _rot([0, 0, 1], rng.uniform(-30, 30))
        T_board_cam = tf.make(R, pos)
        if rig.setup == "eye_in_hand":
            T_world_hand = rig.T_other_board @ T_board_cam @ tf.inv(rig.T_parent_cam)
        else:
            T_world_hand = rig.T_parent_cam @ tf.inv(T_board_cam) @ tf.inv(rig.T_other_board)
        px = rig.intrinsics.project(
            outline @ tf.inv(T_board_cam)[:3, :3].T + tf.inv(T_board_cam)[:3, 3]
        )
        if (
            (px.min(0) > 15).all()
            and px[:, 0].max() < rig.intrinsics.width - 15
            and px[:, 1].max() < rig.intrinsics.height - 15
        ):
            poses.append(T_world_hand)
    return poses


def _corner_errors(
    det: Detection, cam: CameraIntrinsics, T_cam_board: np.ndarray, board: BoardConfig
) -> np.ndarray:
    pts = det.object_points(board)
    px = cam.project(pts @ T_cam_board[:3, :3].T + T_cam_board[:3, 3])
    return np.linalg.norm(px - det.corners, axis=1)


def run_rig(
    rig: Rig,
    board: BoardConfig,
    n_views: int,
    seed: int,
    folder: Path,
    handeye: HandEyeConfig | None = None,
) -> dict:
    """Render, calibrate intrinsics and hand-eye, write the result back, and measure every error.

    The hand-eye samples pass the same gate as an operator's (`gate_samples`, then the count,
    agreement and rotation checks of `calibrate_hand_eye`); `handeye` defaults to the rig's set-up
    with the CLI's defaults.
    """
    rng = np.random.default_rng(seed)
    finder = CharucoFinder(board)
    scene = Scene(rig, board, folder)
    try:
        poses = sample_hand_poses(rig, board, n_views + 5, rng)
        images = [scene.render(T) for T in poses]
    finally:
        scene.close()
    # a little sensor noise so corner refinement works on something less ideal than a clean render
    images = [np.clip(im + rng.normal(0, 2.0, im.shape), 0, 255).astype(np.uint8) for im in images]
    dets = [finder.detect(im) for im in images]
    cal_poses, test_poses = poses[:n_views], poses[n_views:]
    cal_images = images[:n_views]
    cal_dets, test_dets = dets[:n_views], dets[n_views:]

    # the renderer must follow the pinhole model before any calibration result means anything
    render_err = np.concatenate(
        [
            _corner_errors(
                d, rig.intrinsics, tf.inv(world_poses(rig, T)[0]) @ world_poses(rig, T)[1], board
            )
            for d, T in zip(cal_dets, cal_poses)
        ]
    )

    names = [f"view_{i:03d}" for i in range(n_views)]
    intr = calibrate_intrinsics(
        dict(zip(names, cal_dets)), board, (WIDTH, HEIGHT), IntrinsicsConfig()
    )
    cam = intr.camera
    cfg = handeye or HandEyeConfig(setup=rig.setup)
    samples, rejected = gate_samples(
        zip(names, cal_images, cal_poses), finder, cam, cfg, f"the {rig.setup} renders"
    )
    he = calibrate_hand_eye(samples, board_points(board), cfg, rejected=rejected)
    dt, dr = tf.errors(he.T_parent_cam, rig.T_parent_cam)

    # write into a twin cameras.yaml, read back, and compare where that camera sees the board
    # corners with where the true camera saw them (its detections in held-out renders)
    yaml_path = folder / "cameras.yaml"
    update_twin_cameras(yaml_path, "cam", TwinCamera(cam, he.parent_frame, he.T_parent_cam))
    twin = load_twin_camera(yaml_path, "cam")
    writeback = []
    for det, T in zip(test_dets, test_poses):
        T_world_cam = T @ twin.T_parent_cam if rig.setup == "eye_in_hand" else twin.T_parent_cam
        writeback.append(
            _corner_errors(
                det, twin.intrinsics, tf.inv(T_world_cam) @ world_poses(rig, T)[1], board
            )
        )
    writeback = np.concatenate(writeback)

    k0 = rig.intrinsics
    return {
        "setup": rig.setup,
        "views_used": len(intr.view_errors_px),
        "reprojection_rms_px": round(intr.rms_px, 4),
        "render_check_px": round(float(np.max(render_err)), 4),
        "focal_err_pct": round(
            100 * max(abs(cam.fx - k0.fx) / k0.fx, abs(cam.fy - k0.fy) / k0.fy), 4
        ),
        "pp_err_px": round(float(np.hypot(cam.cx - k0.cx, cam.cy - k0.cy)), 4),
        "handeye_method": he.method,
        "handeye_samples_used": len(he.samples_used),
        "handeye_trans_mm": round(dt * 1e3, 4),
        "handeye_rot_deg": round(float(np.degrees(dr)), 5),
        "heldout_point_mm": he.heldout[he.method]["point_mm"],
        "writeback_px_max": round(float(np.max(writeback)), 4),
    }


def board_points(board: BoardConfig) -> np.ndarray:
    from calibration.charuco import make_board

    return make_board(board).getChessboardCorners().astype(np.float64)


def run(n_views: int = 20, seed: int = 0) -> dict:
    """Both set-ups; the summary keys hold the worst case over them."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    start = time.perf_counter()
    board = BoardConfig()
    with tempfile.TemporaryDirectory(prefix="calib_selftest_") as tmp:
        results = []
        for i, rig in enumerate(default_rigs()):
            folder = Path(tmp) / rig.setup
            folder.mkdir()
            results.append(run_rig(rig, board, n_views, seed + i, folder))
    worst = {
        key: max(r[key] for r in results)
        for key in (
            "focal_err_pct",
            "pp_err_px",
            "handeye_trans_mm",
            "handeye_rot_deg",
            "writeback_px_max",
            "render_check_px",
        )
    }
    return {**worst, "setups": results, "seconds": round(time.perf_counter() - start, 2)}
