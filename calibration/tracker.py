"""Object pose in `world` from fiducial markers on the object, seen by calibrated cameras.

Per camera image: detect the object's markers, solve the object pose from all their corners at
once (IPPE for a single marker; with markers on several faces the points are not coplanar and the
pose has no two-fold ambiguity), move it to `world` with the camera's extrinsics (the twin-style
cameras.yaml that `robot-rl calibrate handeye --twin-cameras` writes) and check it. Across cameras
the view whose markers cover the most pixels wins: the pose error of a marker grows as its image
shrinks. Nothing here imports ROS; nodes/tracker.py wraps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration import transform as tf
from calibration.camera_yaml import CameraIntrinsics, load_twin_camera
from calibration.markers import Detection, MarkerDetector, dictionary_size, marker_pose
from controllers.config import ConfigError


@dataclass
class TrackerConfig:
    """What is printed where on the object, which cameras look at it, and what a pose must pass."""

    dictionary: str = "DICT_4X4_50"  # cv2.aruco dictionary the markers were generated from
    marker_size_m: float = 0.03  # edge of each black square as measured on the print
    marker_ids: list[int] = field(default_factory=lambda: [0])
    # 7 numbers per id, in order: that marker's pose (x y z qw qx qy qz) in the object's frame
    marker_poses: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    cameras: list[str] = field(default_factory=lambda: ["front"])
    extrinsics: str = ""  # cameras.yaml holding each camera's pose (parent_frame world or hand)
    max_reprojection_px: float = 1.5  # RMS over the corners; worse poses are not published
    workspace_min: list[float] = field(default_factory=lambda: [-2.0, -2.0, -0.1])
    workspace_max: list[float] = field(default_factory=lambda: [2.0, 2.0, 2.0])
    max_skew_s: float = 0.05  # views fused within this time; hand pose must be this fresh
    hold_in_gripper: bool = False  # marker lost while grasped: publish it rigidly with the hand
    hold_width_m: list[float] = field(default_factory=lambda: [0.01, 0.075])  # "holding" widths

    def __post_init__(self) -> None:
        n = dictionary_size(self.dictionary)
        if not 0 < self.marker_size_m < 1:
            raise ConfigError(f"marker_size_m: {self.marker_size_m} must be in (0, 1) metres")
        if not self.marker_ids or len(set(self.marker_ids)) != len(self.marker_ids):
            raise ConfigError(f"marker_ids: need distinct ids, got {self.marker_ids}")
        bad = [i for i in self.marker_ids if not 0 <= i < n]
        if bad:
            raise ConfigError(f"marker_ids: {bad} are not in 0..{n - 1} of {self.dictionary}")
        if len(self.marker_poses) != 7 * len(self.marker_ids):
            raise ConfigError(
                f"marker_poses: expected 7 numbers (x y z qw qx qy qz) per marker id, "
                f"{7 * len(self.marker_ids)} for {len(self.marker_ids)} ids, "
                f"got {len(self.marker_poses)}"
            )
        for i, pose in enumerate(np.reshape(self.marker_poses, (-1, 7))):
            if not np.isfinite(pose).all() or abs(np.linalg.norm(pose[3:]) - 1) > 1e-3:
                raise ConfigError(f"marker_poses[{7 * i}:{7 * i + 7}]: quaternion not unit")
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"cameras: need distinct camera names, got {self.cameras}")
        if not 0 < self.max_reprojection_px < math.inf or not 0 < self.max_skew_s < math.inf:
            raise ConfigError("max_reprojection_px and max_skew_s must be finite and > 0")
        lo, hi = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if lo.shape != (3,) or hi.shape != (3,) or not (lo < hi).all():
            raise ConfigError(f"workspace_min/max: need 3 numbers each, min < max; got {lo} / {hi}")
        w = self.hold_width_m
        if len(w) != 2 or not 0 <= w[0] < w[1]:
            raise ConfigError(f"hold_width_m: need [min, max] with 0 <= min < max, got {w}")

    def layout(self) -> dict[int, np.ndarray]:
        """Marker id -> T_object_marker (4x4)."""
        poses = np.reshape(self.marker_poses, (-1, 7))
        return {i: tf.from_pose7(p) for i, p in zip(self.marker_ids, poses)}


@dataclass(frozen=True)
class CameraMount:
    """Where a camera's optical frame sits: in `world` (fixed) or in the TCP frame `hand`."""

    parent_frame: str
    T_parent_cam: np.ndarray


def load_mounts(config: TrackerConfig) -> dict[str, CameraMount]:
    """Each configured camera's extrinsics from `config.extrinsics`; errors say how to get them."""
    if not config.extrinsics:
        raise ConfigError(
            "extrinsics: no camera calibration given; run `robot-rl calibrate handeye ... "
            "--twin-cameras cameras.yaml` for every tracker camera and pass that file"
        )
    if not Path(config.extrinsics).is_file():
        raise ConfigError(f"extrinsics: no such file {config.extrinsics}")
    mounts = {}
    for name in config.cameras:
        cam = load_twin_camera(config.extrinsics, name)
        mounts[name] = CameraMount(cam.parent_frame, cam.T_parent_cam)
    return mounts


@dataclass(frozen=True)
class Measurement:
    """The object's pose from one camera image."""

    camera: str
    T_world_object: np.ndarray
    pixels: float  # marker area in the image (px^2): the view's reliability
    reprojection_px: float
    marker_ids: tuple[int, ...]

    @property
    def pose7(self) -> np.ndarray:
        return tf.to_pose7(self.T_world_object)


class ObjectTracker:
    """Measures the object pose per camera image; `problem` says why the last image gave none."""

    def __init__(self, config: TrackerConfig, mounts: dict[str, CameraMount]):
        missing = sorted(set(config.cameras) - set(mounts))
        if missing:
            raise ConfigError(f"extrinsics: no calibration for camera(s) {missing}")
        self.config = config
        self.mounts = mounts
        self.detector = MarkerDetector(config.dictionary)
        self.layout = config.layout()
        self.problem = ""

    def measure(
        self,
        camera: str,
        image: np.ndarray,
        intrinsics: CameraIntrinsics,
        T_world_hand: np.ndarray | None = None,
    ) -> Measurement | None:
        """The object pose seen in `image`, or None with `self.problem` set."""
        mount = self.mounts[camera]
        if (intrinsics.height, intrinsics.width) != image.shape[:2]:
            return self._fail(
                f"camera {camera}: image is {image.shape[1]}x{image.shape[0]} but camera_info "
                f"says {intrinsics.width}x{intrinsics.height}"
            )
        if mount.parent_frame == "hand":
            if T_world_hand is None:
                return self._fail(f"camera {camera} rides on the hand: no fresh current_pose")
            T_world_cam = T_world_hand @ mount.T_parent_cam
        else:
            T_world_cam = mount.T_parent_cam
        seen = [d for d in self.detector.detect(image) if d.marker_id in self.layout]
        if not seen:
            return self._fail(f"camera {camera}: no marker of the object in view")
        T_cam_object, error = self._object_pose(seen, intrinsics)
        if not error <= self.config.max_reprojection_px:
            return self._fail(
                f"camera {camera}: marker pose fits its corners to {error:.2f} px RMS "
                f"(> max_reprojection_px {self.config.max_reprojection_px}); blurred or partly "
                "covered marker"
            )
        T = T_world_cam @ T_cam_object
        lo, hi = self.config.workspace_min, self.config.workspace_max
        if not (np.greater_equal(T[:3, 3], lo).all() and np.less_equal(T[:3, 3], hi).all()):
            return self._fail(
                f"camera {camera}: object at {np.round(T[:3, 3], 3).tolist()} m is outside the "
                f"workspace {lo}..{hi}; check marker_size_m against the printed square and the "
                "camera's extrinsics"
            )
        self.problem = ""
        pixels = sum(_area(d.corners) for d in seen)
        return Measurement(camera, T, pixels, error, tuple(d.marker_id for d in seen))

    def _fail(self, problem: str) -> None:
        self.problem = problem
        return None

    def _object_pose(
        self, seen: list[Detection], intrinsics: CameraIntrinsics
    ) -> tuple[np.ndarray, float]:
        """T_cam_object from every seen marker's corners, refined jointly when there are several."""
        import cv2

        size = self.config.marker_size_m
        # Start from the largest marker's IPPE pose, then fit all corners together.
        first = max(seen, key=lambda d: _area(d.corners))
        T_cam_marker, error = marker_pose(first, size, intrinsics)
        T = T_cam_marker @ tf.inv(self.layout[first.marker_id])
        if len(seen) == 1 or not np.isfinite(T).all():
            return T, error
        h = size / 2
        square = np.array([[-h, h, 0, 1], [h, h, 0, 1], [h, -h, 0, 1], [-h, -h, 0, 1]])
        points = np.vstack([(self.layout[d.marker_id] @ square.T).T[:, :3] for d in seen])
        pixels = np.vstack([d.corners for d in seen])
        rvec, _ = cv2.Rodrigues(T[:3, :3])
        tvec = T[:3, 3].copy()
        D = np.zeros(5) if intrinsics.distortion_model == "equidistant" else intrinsics.D
        ok, rvec, tvec = cv2.solvePnP(
            points, pixels, intrinsics.K, D, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE
        )
        if not ok:
            return T, error
        projected, _ = cv2.projectPoints(points, rvec, tvec, intrinsics.K, D)
        rms = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - pixels) ** 2, axis=1))))
        return tf.make(cv2.Rodrigues(rvec)[0], tvec.ravel()), rms

    def diagnose(self, image: np.ndarray) -> str:
        """Why a lost marker may be lost for good: markers of another dictionary in view."""
        others = self.detector.other_dictionaries(image)
        if not others:
            return ""
        return (
            f"markers of {', '.join(others)} are in view but the tracker looks for "
            f"{self.config.dictionary}: print the marker from that dictionary or set `dictionary`"
        )


def select_view(measurements: list[Measurement]) -> Measurement | None:
    """The most reliable of simultaneous measurements: the one whose markers cover most pixels."""
    return max(measurements, key=lambda m: m.pixels, default=None)


class GripperHold:
    """While the gripper is closed on the object, the object moves rigidly with the hand."""

    def __init__(self, width_range: tuple[float, float] | list[float]):
        self.width_range = tuple(width_range)
        self._T_hand_object: np.ndarray | None = None

    def measured(self, T_world_object: np.ndarray, T_world_hand: np.ndarray) -> None:
        self._T_hand_object = tf.inv(T_world_hand) @ T_world_object

    def pose(self, T_world_hand: np.ndarray, gripper_width: float) -> np.ndarray | None:
        """T_world_object held in the hand, or None when the gripper is not holding it."""
        lo, hi = self.width_range
        if self._T_hand_object is None or not lo <= gripper_width <= hi:
            return None
        return T_world_hand @ self._T_hand_object

    def release(self) -> None:
        self._T_hand_object = None


def _area(corners: np.ndarray) -> float:
    x, y = corners[:, 0], corners[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
