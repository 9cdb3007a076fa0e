"""Hand-eye calibration for a wrist camera (eye-in-hand) or a fixed camera (eye-to-hand).

Every sample pairs a robot pose M_i with the board pose C_i = T_cam_target seen in the image. Both
set-ups are one equation with two unknown constant transforms:

    eye_in_hand:  M_i = T_base_hand,  X = T_hand_cam,  Y = T_base_target  (board fixed in the cell)
    eye_to_hand:  M_i = T_hand_base,  X = T_base_cam,  Y = T_hand_target  (board in the gripper)
                  Y = M_i X C_i   for every i.

cv2.calibrateHandEye solves for X (Y is then the mean of M_i X C_i); cv2.calibrateRobotWorldHandEye
solves for both. The method is chosen by held-out consistency: fit on k-1 folds, predict the
held-out board poses C_i = X^-1 M_i^-1 Y, and compare them with what the camera saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from typing import Literal

import cv2
import numpy as np

from calibration import transform as tf
from calibration.camera_yaml import CameraIntrinsics
from calibration.charuco import BoardConfig, CharucoFinder, Detection
from calibration.errors import CalibrationError
from controllers.config import ConfigError

HAND_EYE_METHODS = {
    "tsai": cv2.CALIB_HAND_EYE_TSAI,
    "park": cv2.CALIB_HAND_EYE_PARK,
    "horaud": cv2.CALIB_HAND_EYE_HORAUD,
    "andreff": cv2.CALIB_HAND_EYE_ANDREFF,
    "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
}
ROBOT_WORLD_METHODS = {
    "shah": cv2.CALIB_ROBOT_WORLD_HAND_EYE_SHAH,
    "li": cv2.CALIB_ROBOT_WORLD_HAND_EYE_LI,
}
ALL_METHODS = tuple(HAND_EYE_METHODS) + tuple(ROBOT_WORLD_METHODS)

Setup = Literal["eye_in_hand", "eye_to_hand"]


@dataclass
class HandEyeConfig:
    setup: Setup = "eye_in_hand"
    methods: tuple[str, ...] = ALL_METHODS
    min_samples: int = 8
    folds: int = 4
    max_pnp_error_px: float = (
        1.0  # board poses fitting their own corners worse than this are unreliable
    )
    min_corners: int = 12
    # AX = XB means robot and camera motions between two samples turn by the same angle and move by
    # the same amount along the turn axis, whatever X is: a sample breaking that (pose read at the
    # wrong time, board moved) is rejected before fitting.
    max_angle_mismatch_deg: float = 0.5
    max_pitch_mismatch_mm: float = 3.0
    min_rotation_deg: float = 15.0  # the largest rotation between two samples must be at least this

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in ALL_METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"handeye.methods: {unknown or 'empty'} not in {list(ALL_METHODS)}")
        if self.min_samples < 4:
            raise ConfigError(f"handeye.min_samples: {self.min_samples} < 4")
        if not 2 <= self.folds <= self.min_samples:
            raise ConfigError(
                f"handeye.folds: {self.folds} must be in [2, min_samples={self.min_samples}]"
            )
        for key in ("max_pnp_error_px", "max_angle_mismatch_deg", "max_pitch_mismatch_mm"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"handeye.{key}: {getattr(self, key)} must be > 0")


@dataclass
class HandEyeSample:
    name: str
    T_base_hand: np.ndarray  # robot pose reported with the image (4x4)
    T_cam_target: np.ndarray  # board pose from the image (4x4)


@dataclass
class HandEyeResult:
    setup: str
    method: str
    T_parent_cam: np.ndarray  # X: camera optical frame in `parent_frame`
    T_other_target: np.ndarray  # Y: board in base (eye_in_hand) or in hand (eye_to_hand)
    parent_frame: str
    child_frame: str
    heldout: dict[str, dict[str, float]]  # method -> median held-out errors
    residual: dict[str, float]  # chosen method refit on all samples, errors on those samples
    samples_used: list[str]
    rejected: dict[str, str]
    date: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        q = tf.matrix_to_quat(self.T_parent_cam[:3, :3])
        qy = tf.matrix_to_quat(self.T_other_target[:3, :3])
        return {
            "transform": {
                "parent_frame": self.parent_frame,
                "child_frame": self.child_frame,
                "translation": [float(v) for v in self.T_parent_cam[:3, 3]],
                "quaternion_xyzw": [float(v) for v in np.r_[q[1:], q[0]]],
            },
            "setup": self.setup,
            "method": self.method,
            "heldout_errors": self.heldout,
            "residual_errors": self.residual,
            "board_pose": {
                "parent_frame": "world" if self.setup == "eye_in_hand" else "hand",
                "translation": [float(v) for v in self.T_other_target[:3, 3]],
                "quaternion_xyzw": [float(v) for v in np.r_[qy[1:], qy[0]]],
            },
            "num_samples": len(self.samples_used),
            "rejected_samples": dict(self.rejected),
            "date": self.date,
        }


def board_pose(
    det: Detection, board: BoardConfig, cam: CameraIntrinsics
) -> tuple[np.ndarray, float]:
    """T_cam_target from detected corners (PnP refined by Levenberg-Marquardt) and its RMS px."""
    obj = det.object_points(board)
    img = det.corners.astype(np.float64).reshape(-1, 1, 2)
    ok, rvec, tvec = cv2.solvePnP(obj, img, cam.K, cam.D, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("solvePnP failed")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, cam.K, cam.D, rvec, tvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, cam.K, cam.D)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - det.corners) ** 2, axis=1))))
    return tf.make(cv2.Rodrigues(rvec)[0], tvec), rms


def gate_samples(
    views: Iterable[tuple[str, np.ndarray, np.ndarray | None]],
    finder: CharucoFinder,
    cam: CameraIntrinsics,
    cfg: HandEyeConfig,
    source: str = "the samples",
) -> tuple[list[HandEyeSample], dict[str, str]]:
    """Hand-eye samples from (name, RGB image, T_base_hand) views, and why other views were dropped.

    A view without a robot pose or with another image size than `cam` refuses the whole set (the
    folder is wrong, not one view); a view with too few board corners or a board pose that fits its
    own corners badly is dropped. `calibrate_hand_eye` then refuses too few samples, samples whose
    robot and camera motions disagree, and a wrist that did not turn enough.
    """
    samples, rejected = [], {}
    for name, image, T_base_hand in views:
        if T_base_hand is None:
            raise CalibrationError(
                f"{source} has no robot poses (samples.yaml); record samples with the "
                "robot's calibration mode"
            )
        if image.shape[:2] != (cam.height, cam.width):
            raise CalibrationError(
                f"{name} is {image.shape[1]}x{image.shape[0]} but the intrinsics are for "
                f"{cam.width}x{cam.height}: use the intrinsics of this camera and resolution"
            )
        det = finder.detect(image)
        if len(det) < cfg.min_corners:
            rejected[name] = f"{len(det)} board corners (need {cfg.min_corners})"
            continue
        T_cam_target, rms = board_pose(det, finder.cfg, cam)
        if rms > cfg.max_pnp_error_px:
            rejected[name] = (
                f"board pose fits its corners to {rms:.2f} px (> {cfg.max_pnp_error_px}): "
                "blur, a bent board, or intrinsics of another camera/resolution"
            )
            continue
        samples.append(HandEyeSample(name, T_base_hand, T_cam_target))
    return samples, rejected


def _fit(method: str, Ms: list[np.ndarray], Cs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) with Y = M_i X C_i from samples, by one OpenCV method."""
    if method in HAND_EYE_METHODS:
        R, t = cv2.calibrateHandEye(
            [M[:3, :3] for M in Ms],
            [M[:3, 3] for M in Ms],
            [C[:3, :3] for C in Cs],
            [C[:3, 3] for C in Cs],
            method=HAND_EYE_METHODS[method],
        )
        X = tf.make(R, t)
        return X, tf.mean_transform([M @ X @ C for M, C in zip(Ms, Cs)])
    # OpenCV's robot-world form: cTw wTb = cTg gTb, i.e. C_i Y^-1 = X^-1 M_i^-1.
    Minv = [tf.inv(M) for M in Ms]
    R_yi, t_yi, R_xi, t_xi = cv2.calibrateRobotWorldHandEye(
        [C[:3, :3] for C in Cs],
        [C[:3, 3] for C in Cs],
        [M[:3, :3] for M in Minv],
        [M[:3, 3] for M in Minv],
        method=ROBOT_WORLD_METHODS[method],
    )
    return tf.inv(tf.make(R_xi, t_xi)), tf.inv(tf.make(R_yi, t_yi))


def _prediction_errors(
    X: np.ndarray, Y: np.ndarray, Ms: list[np.ndarray], Cs: list[np.ndarray], points: np.ndarray
) -> np.ndarray:
    """Per sample (translation mm, rotation deg, mean board-point mm) of predicted vs seen board."""
    out = []
    X_inv = tf.inv(X)
    for M, C in zip(Ms, Cs):
        C_pred = X_inv @ tf.inv(M) @ Y
        dt, dr = tf.errors(C_pred, C)
        d = (points @ C_pred[:3, :3].T + C_pred[:3, 3]) - (points @ C[:3, :3].T + C[:3, 3])
        out.append((dt * 1e3, np.degrees(dr), float(np.mean(np.linalg.norm(d, axis=1))) * 1e3))
    return np.asarray(out)


def _motion_invariants(T: np.ndarray) -> tuple[float, float | None]:
    """Rotation angle (rad) and translation along its axis (m; None when the angle is too small)."""
    angle = tf.rotation_angle(T[:3, :3])
    if angle < np.radians(5):
        return angle, None
    R = T[:3, :3]
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    n = np.linalg.norm(axis)
    if n < 1e-9:  # angle near 180 deg: axis from the symmetric part
        _, v = np.linalg.eigh(R + R.T)
        axis = v[:, -1]
    else:
        axis = axis / n
    return angle, float(axis @ T[:3, 3])


def consistency(Ms: list[np.ndarray], Cs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-sample median mismatch of motion invariants (angle deg, pitch mm); largest turn (deg)."""
    n = len(Ms)
    ang = np.full((n, n), np.nan)
    pitch = np.full((n, n), np.nan)
    largest = 0.0
    for i, j in combinations(range(n), 2):
        a_ang, a_pitch = _motion_invariants(tf.inv(Ms[j]) @ Ms[i])
        b_ang, b_pitch = _motion_invariants(Cs[j] @ tf.inv(Cs[i]))
        ang[i, j] = ang[j, i] = np.degrees(abs(a_ang - b_ang))
        if a_pitch is not None and b_pitch is not None:
            pitch[i, j] = pitch[j, i] = abs(a_pitch - b_pitch) * 1e3
        largest = max(largest, np.degrees(a_ang))
    with np.errstate(all="ignore"):
        med_pitch = np.nan_to_num(np.nanmedian(pitch, axis=1), nan=0.0) if n > 1 else np.zeros(n)
    return np.nanmedian(ang, axis=1) if n > 1 else np.zeros(n), med_pitch, largest


def calibrate_hand_eye(
    samples: list[HandEyeSample],
    target_points: np.ndarray,
    cfg: HandEyeConfig | None = None,
    camera_name: str = "camera",
    rejected: dict[str, str] | None = None,
) -> HandEyeResult:
    """Calibrate X (camera in hand or in base), choosing the OpenCV method by held-out error.

    `target_points` (N, 3) are board-frame points (e.g. the ChArUco corners) over which the held-out
    error `point_mm` is measured. `rejected` carries samples already dropped upstream (no board, bad
    PnP) so that a refusal lists them too.
    """
    cfg = cfg or HandEyeConfig()
    rejected = dict(rejected or {})
    advice = (
        f"record at least {cfg.min_samples} samples with the board fully visible, holding the "
        "arm still for each; turn the wrist 15-30 degrees about different axes between samples "
        "(not only translations); check that the robot pose is the hand/TCP in the base frame, in "
        "metres, quaternion w,x,y,z, and taken at the same time as the image"
    )

    def refuse(what: str, n_usable: int) -> CalibrationError:
        lines = [f"hand-eye calibration refused: {what}; {n_usable} usable sample(s)."]
        lines += [f"  rejected {k}: {v}" for k, v in rejected.items()]
        return CalibrationError("\n".join(lines + [f"Next: {advice}"]))

    for s in samples:
        for key in ("T_base_hand", "T_cam_target"):
            if not np.isfinite(getattr(s, key)).all():
                raise refuse(f"sample {s.name}: {key} contains NaN/inf", len(samples))
    if len(samples) < cfg.min_samples:
        raise refuse(f"need {cfg.min_samples} samples", len(samples))

    def robot(T: np.ndarray) -> np.ndarray:
        return T if cfg.setup == "eye_in_hand" else tf.inv(T)

    Ms = [robot(s.T_base_hand) for s in samples]
    Cs = [s.T_cam_target for s in samples]
    ang, pitch, _ = consistency(Ms, Cs)
    keep = []
    for k, s in enumerate(samples):
        if ang[k] > cfg.max_angle_mismatch_deg:
            rejected[s.name] = (
                f"robot and camera rotations disagree by {ang[k]:.2f} deg (median over pairs; "
                f"limit {cfg.max_angle_mismatch_deg})"
            )
        elif pitch[k] > cfg.max_pitch_mismatch_mm:
            rejected[s.name] = (
                f"robot and camera motions along the turn axis disagree by {pitch[k]:.1f} mm "
                f"(median over pairs; limit {cfg.max_pitch_mismatch_mm})"
            )
        else:
            keep.append(k)
    if len(keep) < cfg.min_samples:
        raise refuse(
            f"need {cfg.min_samples} samples whose robot and camera motions agree", len(keep)
        )
    samples = [samples[k] for k in keep]
    Ms, Cs = [Ms[k] for k in keep], [Cs[k] for k in keep]
    _, _, largest = consistency(Ms, Cs)
    if largest < cfg.min_rotation_deg:
        raise refuse(
            f"the wrist turned at most {largest:.1f} deg between samples "
            f"(need {cfg.min_rotation_deg})",
            len(samples),
        )

    points = np.asarray(target_points, dtype=float).reshape(-1, 3)
    folds = np.arange(len(samples)) % cfg.folds
    heldout: dict[str, dict[str, float]] = {}
    for method in cfg.methods:
        errs = []
        for f in range(cfg.folds):
            train = np.flatnonzero(folds != f)
            test = np.flatnonzero(folds == f)
            X, Y = _fit(method, [Ms[i] for i in train], [Cs[i] for i in train])
            errs.append(
                _prediction_errors(X, Y, [Ms[i] for i in test], [Cs[i] for i in test], points)
            )
        e = np.concatenate(errs)
        if not np.isfinite(e).all():
            continue
        med = np.median(e, axis=0)
        heldout[method] = {
            "trans_mm": round(float(med[0]), 4),
            "rot_deg": round(float(med[1]), 5),
            "point_mm": round(float(med[2]), 4),
        }
    if not heldout:
        raise refuse("every method failed to produce a finite solution", len(samples))
    method = min(heldout, key=lambda m: heldout[m]["point_mm"])
    X, Y = _fit(method, Ms, Cs)
    med = np.median(_prediction_errors(X, Y, Ms, Cs, points), axis=0)
    residual = {
        "trans_mm": round(float(med[0]), 4),
        "rot_deg": round(float(med[1]), 5),
        "point_mm": round(float(med[2]), 4),
    }
    parent = "hand" if cfg.setup == "eye_in_hand" else "world"
    return HandEyeResult(
        cfg.setup,
        method,
        X,
        Y,
        parent,
        f"{camera_name}_optical_frame",
        heldout,
        residual,
        [s.name for s in samples],
        rejected,
    )
