"""Camera models on disk: ROS camera_info YAML (intrinsics) and the twin's `cameras.yaml`
(intrinsics + pose).

ROS camera_info YAML keys (what camera_calibration_parsers reads): image_width, image_height,
camera_name, camera_matrix, distortion_model, distortion_coefficients, rectification_matrix,
projection_matrix; each matrix is {rows, cols, data}. We add a `calibration:` mapping (reprojection
error, views, date) that ROS ignores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration import transform as tf
from calibration.files import write_yaml
from controllers.config import ConfigError, load_yaml

# number of coefficients each ROS distortion model carries
DISTORTION_SIZES = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}


@dataclass
class CameraIntrinsics:
    width: int
    height: int
    K: np.ndarray  # 3x3
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=float).reshape(3, 3)
        self.D = np.asarray(self.D, dtype=float).reshape(-1)
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"image size {self.width}x{self.height} must be positive")
        if self.distortion_model not in DISTORTION_SIZES:
            raise ConfigError(
                f"distortion_model: {self.distortion_model!r} is not one of "
                f"{list(DISTORTION_SIZES)}"
            )
        if len(self.D) != DISTORTION_SIZES[self.distortion_model]:
            raise ConfigError(
                f"distortion_coefficients: {self.distortion_model} needs "
                f"{DISTORTION_SIZES[self.distortion_model]} values, got {len(self.D)}"
            )
        if not (np.isfinite(self.K).all() and np.isfinite(self.D).all()):
            raise ConfigError("camera_matrix/distortion_coefficients contain NaN or inf")
        if self.fx <= 0 or self.fy <= 0:
            raise ConfigError(
                f"camera_matrix: focal lengths must be positive, got fx={self.fx} fy={self.fy}"
            )

    fx = property(lambda self: float(self.K[0, 0]))
    fy = property(lambda self: float(self.K[1, 1]))
    cx = property(lambda self: float(self.K[0, 2]))
    cy = property(lambda self: float(self.K[1, 2]))

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Pixel positions (N, 2) of camera-frame points (N, 3), distortion applied."""
        import cv2

        pts = np.asarray(points_cam, dtype=float).reshape(-1, 1, 3)
        if self.distortion_model == "equidistant":
            px, _ = cv2.fisheye.projectPoints(pts, np.zeros(3), np.zeros(3), self.K, self.D)
        else:
            px, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), self.K, self.D)
        return px.reshape(-1, 2)


def _matrix(rows: int, cols: int, values: np.ndarray) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "data": [float(v) for v in np.asarray(values).reshape(-1)]}


def _read_matrix(
    data: dict[str, Any], key: str, where: str, shape: tuple[int, int] | None = None
) -> np.ndarray:
    m = data.get(key)
    if not isinstance(m, dict) or "data" not in m:
        raise ConfigError(f"{where}: {key} must be a mapping with rows, cols, data")
    values = np.asarray(m["data"], dtype=float)
    rows, cols = int(m.get("rows", 1)), int(m.get("cols", len(values)))
    if rows * cols != len(values) or (shape is not None and (rows, cols) != shape):
        raise ConfigError(
            f"{where}: {key} has rows={rows} cols={cols} but {len(values)} values"
            + (f" (expected {shape[0]}x{shape[1]})" if shape else "")
        )
    return values.reshape(rows, cols)


def camera_info_dict(cam: CameraIntrinsics, camera_name: str) -> dict[str, Any]:
    """The ROS camera_info mapping for an unrectified monocular camera."""
    P = np.hstack([cam.K, np.zeros((3, 1))])
    return {
        "image_width": cam.width,
        "image_height": cam.height,
        "camera_name": camera_name,
        "camera_matrix": _matrix(3, 3, cam.K),
        "distortion_model": cam.distortion_model,
        "distortion_coefficients": _matrix(1, len(cam.D), cam.D),
        "rectification_matrix": _matrix(3, 3, np.eye(3)),
        "projection_matrix": _matrix(3, 4, P),
    }


def intrinsics_from_mapping(data: dict[str, Any], where: str) -> CameraIntrinsics:
    """CameraIntrinsics from a camera_info-style mapping.

    The mapping is a ROS camera_info YAML or one entry of the twin's cameras.yaml.
    """
    for key in (
        "image_width",
        "image_height",
        "camera_matrix",
        "distortion_model",
        "distortion_coefficients",
    ):
        if key not in data:
            raise ConfigError(f"{where}: missing key {key!r}")
    D = _read_matrix(data, "distortion_coefficients", where).reshape(-1)
    try:
        return CameraIntrinsics(
            int(data["image_width"]),
            int(data["image_height"]),
            _read_matrix(data, "camera_matrix", where, (3, 3)),
            D,
            str(data["distortion_model"]),
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def save_camera_info(
    path: str | Path,
    cam: CameraIntrinsics,
    camera_name: str,
    calibration: dict[str, Any] | None = None,
) -> Path:
    data = camera_info_dict(cam, camera_name)
    if calibration:
        data["calibration"] = calibration
    return write_yaml(path, data)


def load_camera_info(path: str | Path) -> CameraIntrinsics:
    return intrinsics_from_mapping(load_yaml(path), str(path))


# pyrealsense2 rs.distortion names -> ROS distortion model. RealSense's Brown-Conrady variants share
# OpenCV's k1 k2 p1 p2 k3 layout; "inverse_" is the deprojection form, used as-is as a starting
# point only.
_RS_MODELS = {
    "none": "plumb_bob",
    "brown_conrady": "plumb_bob",
    "modified_brown_conrady": "plumb_bob",
    "inverse_brown_conrady": "plumb_bob",
    "kannala_brandt4": "equidistant",
}


def from_realsense(intr: Any) -> CameraIntrinsics:
    """Factory intrinsics from a pyrealsense2 `intrinsics` object or a dict with the same fields
    (width, height, fx, fy, ppx, ppy, model, coeffs)."""

    def get(name: str) -> Any:
        value = intr.get(name) if isinstance(intr, dict) else getattr(intr, name, None)
        if value is None:
            raise ConfigError(f"realsense intrinsics: missing field {name!r}")
        return value

    model = str(get("model")).rsplit(".", 1)[
        -1
    ]  # rs.distortion.brown_conrady prints "distortion.brown_conrady"
    if model not in _RS_MODELS:
        raise ConfigError(
            f"realsense intrinsics: model {model!r} is not one of {sorted(_RS_MODELS)}"
        )
    ros_model = _RS_MODELS[model]
    coeffs = np.asarray(list(get("coeffs")), dtype=float)
    n = DISTORTION_SIZES[ros_model]
    D = np.zeros(n) if model == "none" else coeffs[:n]
    K = np.array([[get("fx"), 0, get("ppx")], [0, get("fy"), get("ppy")], [0, 0, 1]], dtype=float)
    return CameraIntrinsics(int(get("width")), int(get("height")), K, D, ros_model)


@dataclass
class TwinCamera:
    """One twin cameras.yaml entry: intrinsics and the optical frame's pose in its parent frame."""

    intrinsics: CameraIntrinsics
    parent_frame: str
    T_parent_cam: np.ndarray  # 4x4, OpenCV optical frame (x right, y down, z forward)


def twin_camera_dict(cam: TwinCamera) -> dict[str, Any]:
    q_wxyz = tf.matrix_to_quat(cam.T_parent_cam[:3, :3])
    data = camera_info_dict(cam.intrinsics, "")
    del data["camera_name"], data["rectification_matrix"], data["projection_matrix"]
    data["parent_frame"] = cam.parent_frame
    data["translation"] = [float(v) for v in cam.T_parent_cam[:3, 3]]
    data["quaternion_xyzw"] = [float(v) for v in np.r_[q_wxyz[1:], q_wxyz[0]]]
    return data


def load_twin_camera(path: str | Path, name: str) -> TwinCamera:
    cameras = load_yaml(path).get("cameras")
    if not isinstance(cameras, dict) or name not in cameras:
        raise ConfigError(
            f"{path}: no camera {name!r} under `cameras:` (found {sorted(cameras or {})})"
        )
    entry, where = cameras[name], f"{path}: cameras.{name}"
    intr = intrinsics_from_mapping(entry, where)
    for key in ("parent_frame", "translation", "quaternion_xyzw"):
        if key not in entry:
            raise ConfigError(f"{where}: missing key {key!r}")
    t, q = np.asarray(entry["translation"], float), np.asarray(entry["quaternion_xyzw"], float)
    if (
        t.shape != (3,)
        or q.shape != (4,)
        or not np.isfinite(np.r_[t, q]).all()
        or abs(np.linalg.norm(q) - 1) > 1e-3
    ):
        raise ConfigError(
            f"{where}: translation must be 3 numbers and quaternion_xyzw a unit quaternion, "
            f"got {entry['translation']} / {entry['quaternion_xyzw']}"
        )
    return TwinCamera(
        intr, str(entry["parent_frame"]), tf.make(tf.quat_to_matrix(np.r_[q[3], q[:3]]), t)
    )


def update_twin_cameras(path: str | Path, name: str, cam: TwinCamera) -> Path:
    """Replace or add camera `name` in the twin's cameras.yaml, keeping every other entry/key."""
    path = Path(path)
    data = load_yaml(path) if path.exists() else {}
    cameras = data.setdefault("cameras", {})
    if not isinstance(cameras, dict):
        raise ConfigError(f"{path}: `cameras` must be a mapping")
    old = cameras.get(name, {})
    entry = twin_camera_dict(cam)
    cameras[name] = {**old, **entry} if isinstance(old, dict) else entry
    return write_yaml(path, data)
