"""Cameras of the twin, placed from the same YAML calibration writes (ROS camera_info field names).

File format (`sim/assets/cameras.yaml` is the default cell; docs/sim.md has the full description):

    cameras:
      front:
        image_width: 640
        image_height: 480
        camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
        distortion_model: plumb_bob
        distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
        parent_frame: world            # or `hand` (the TCP frame, see docs/sim.md)
        translation: [x, y, z]         # OpenCV optical frame (x right, y down, z forward) in parent
        quaternion_xyzw: [x, y, z, w]

The rendered observation is the full sensor image resized to the env's image size, so the
intrinsics are scaled per axis (fx * W'/W, cx * W'/W, ...). MuJoCo renders an ideal pinhole:
distortion coefficients are kept for users of the file but not rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from controllers.config import ConfigError, load_yaml
from controllers.se3 import quat_mul

DEFAULT_CAMERA_YAML = Path(__file__).parent / "assets" / "cameras.yaml"
PARENT_FRAMES = ("world", "hand")
# MuJoCo cameras look along -z with y up; OpenCV's optical frame looks along +z with y down:
# the two differ by a half turn about x.
_OPTICAL_TO_MUJOCO = np.array([0.0, 1.0, 0.0, 0.0])


@dataclass(frozen=True)
class CameraSpec:
    """One camera: pinhole intrinsics at its native resolution and its pose in a parent frame."""

    name: str
    image_width: int
    image_height: int
    camera_matrix: np.ndarray  # (3, 3)
    distortion_model: str
    distortion_coefficients: np.ndarray
    parent_frame: str
    translation: np.ndarray  # (3,)
    quaternion_xyzw: np.ndarray  # (4,)

    def scaled_camera_matrix(self, width: int, height: int) -> np.ndarray:
        """K of the full image resized to (width, height), as cv2.resize maps pixel centres."""
        sx, sy = width / self.image_width, height / self.image_height
        K = self.camera_matrix.copy()
        K[0, 0], K[1, 1] = K[0, 0] * sx, K[1, 1] * sy
        K[0, 2], K[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
        return K


def load_camera_yaml(path: str | Path) -> dict[str, CameraSpec]:
    """Read and validate a camera YAML; every error names the file, the camera and the key."""
    data = load_yaml(path)
    cams = data.get("cameras")
    if not isinstance(cams, dict) or not cams:
        raise ConfigError(f"{path}: expected a non-empty mapping `cameras:` name -> camera")
    return {
        name: _parse_camera(str(name), entry, f"{path}: cameras.{name}")
        for name, entry in cams.items()
    }


def _parse_camera(name: str, entry: Any, where: str) -> CameraSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
    required = (
        "image_width",
        "image_height",
        "camera_matrix",
        "parent_frame",
        "translation",
        "quaternion_xyzw",
    )
    missing = [k for k in required if k not in entry]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    known = set(required) | {"distortion_model", "distortion_coefficients"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    width, height = entry["image_width"], entry["image_height"]
    for key, value in (("image_width", width), ("image_height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{where}.{key}: expected a positive integer, got {value!r}")
    K = _matrix(entry["camera_matrix"], f"{where}.camera_matrix", shape=(3, 3))
    if (
        K[0, 0] <= 0
        or K[1, 1] <= 0
        or K[0, 1] != 0
        or np.any(K[2] != (0.0, 0.0, 1.0))
        or K[1, 0] != 0
    ):
        raise ConfigError(
            f"{where}.camera_matrix: expected [fx, 0, cx, 0, fy, cy, 0, 0, 1] with fx, fy > 0, "
            f"got {K.ravel().tolist()}"
        )
    dist = np.zeros(0)
    if "distortion_coefficients" in entry:
        dist = _matrix(entry["distortion_coefficients"], f"{where}.distortion_coefficients").ravel()
    parent = entry["parent_frame"]
    if parent not in PARENT_FRAMES:
        raise ConfigError(f"{where}.parent_frame: {parent!r} is not one of {list(PARENT_FRAMES)}")
    t = _vector(entry["translation"], f"{where}.translation", 3)
    q = _vector(entry["quaternion_xyzw"], f"{where}.quaternion_xyzw", 4)
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > 1e-3:
        raise ConfigError(
            f"{where}.quaternion_xyzw: not a unit quaternion (norm {norm:.6f}): {q.tolist()}"
        )
    return CameraSpec(
        name,
        width,
        height,
        K,
        str(entry.get("distortion_model", "plumb_bob")),
        dist,
        parent,
        t,
        q / norm,
    )


def _matrix(value: Any, where: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    if not isinstance(value, dict) or not {"rows", "cols", "data"} <= set(value):
        raise ConfigError(f"{where}: expected a mapping with rows, cols, data; got {value!r}")
    rows, cols, data = value["rows"], value["cols"], value["data"]
    if shape is not None and (rows, cols) != shape:
        raise ConfigError(
            f"{where}: expected rows={shape[0]}, cols={shape[1]}, got rows={rows}, cols={cols}"
        )
    arr = _numbers(data, where + ".data")
    if not isinstance(rows, int) or not isinstance(cols, int) or arr.size != rows * cols:
        raise ConfigError(
            f"{where}.data: expected {rows} x {cols} = {rows * cols} numbers, got {arr.size}"
        )
    return arr.reshape(rows, cols)


def _vector(value: Any, where: str, size: int) -> np.ndarray:
    arr = _numbers(value, where)
    if arr.size != size:
        raise ConfigError(f"{where}: expected {size} numbers, got {arr.size}")
    return arr


def _numbers(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"{where}: expected a list of numbers, got {value!r}")
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{where}: contains NaN or inf: {value!r}")
    return arr


def mujoco_camera_quat(quaternion_xyzw: np.ndarray) -> np.ndarray:
    """MuJoCo camera orientation (w, x, y, z) from an OpenCV optical-frame quaternion (x y z w)."""
    x, y, z, w = quaternion_xyzw
    return quat_mul(np.array([w, x, y, z]), _OPTICAL_TO_MUJOCO)


def add_camera(
    spec: mujoco.MjSpec,
    cam: CameraSpec,
    width: int,
    height: int,
    hand_body: str = "hand",
    tcp_offset: np.ndarray | None = None,
) -> None:
    """Add `cam` to a model spec, rendering at (width, height) with exactly the scaled intrinsics.

    A `hand` parent means the TCP frame, which is the hand body's frame shifted by `tcp_offset`.
    """
    K = cam.scaled_camera_matrix(width, height)
    if cam.parent_frame == "world":
        body, pos = spec.worldbody, cam.translation
    else:
        body = spec.body(hand_body)
        if body is None:
            raise ConfigError(f"camera {cam.name}: the model has no body {hand_body!r}")
        pos = cam.translation + (np.zeros(3) if tcp_offset is None else tcp_offset)
    # Any sensor size works: MuJoCo converts the pixel intrinsics to lengths with it.
    pitch = 1e-5
    body.add_camera(
        name=cam.name,
        pos=pos.tolist(),
        quat=mujoco_camera_quat(cam.quaternion_xyzw).tolist(),
        resolution=[width, height],
        sensor_size=[width * pitch, height * pitch],
        focal_pixel=[K[0, 0], K[1, 1]],
        # MuJoCo's principal point is the frustum's shift from the image centre, in the opposite
        # sense to OpenCV's (cx, cy), which counts from the centre of the top-left pixel
        # (hence the half pixel; checked against rendered images in tests/sim).
        principal_pixel=[(width - 1) / 2 - K[0, 2], (height - 1) / 2 - K[1, 2]],
    )


def project(
    K: np.ndarray, cam_pos: np.ndarray, cam_mat_mujoco: np.ndarray, point: np.ndarray
) -> np.ndarray:
    """Pixel (u, v) of a world point by OpenCV's pinhole model, given MuJoCo's camera pose."""
    R_cv = cam_mat_mujoco @ np.diag([1.0, -1.0, -1.0])  # columns: optical x, y, z in world
    p = R_cv.T @ (point - cam_pos)
    if p[2] <= 0:
        return np.array([math.nan, math.nan])
    uvw = K @ p
    return uvw[:2] / uvw[2]
