"""Camera intrinsics from ChArUco views.

Reject weak views, calibrate, drop outlier views, calibrate again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import cv2
import numpy as np

from calibration.camera_yaml import CameraIntrinsics
from calibration.charuco import BoardConfig, Detection
from calibration.errors import CalibrationError
from controllers.config import ConfigError


@dataclass
class IntrinsicsConfig:
    min_views: int = 10
    min_corners: int = 12  # per view; fewer corners constrain distortion poorly
    # Views whose RMS reprojection error exceeds max_view_error_px are dropped if it is also
    # outlier_factor times the median view error.
    max_view_error_px: float = 1.0
    outlier_factor: float = 3.0
    distortion_model: Literal["plumb_bob", "rational_polynomial"] = "plumb_bob"
    # k3 overfits ordinary (non-wide-angle) lenses such as the RealSense D4xx colour camera.
    fix_k3: bool = True
    zero_tangential: bool = False

    def __post_init__(self) -> None:
        if self.min_views < 3:
            raise ConfigError(
                f"intrinsics.min_views: {self.min_views} < 3 (calibration needs at least 3 views)"
            )
        if self.min_corners < 6:
            raise ConfigError(f"intrinsics.min_corners: {self.min_corners} < 6")
        if not self.max_view_error_px > 0:
            raise ConfigError(f"intrinsics.max_view_error_px: {self.max_view_error_px} must be > 0")
        if not self.outlier_factor >= 1:
            raise ConfigError(f"intrinsics.outlier_factor: {self.outlier_factor} must be >= 1")


@dataclass
class IntrinsicsResult:
    camera: CameraIntrinsics
    rms_px: float
    view_errors_px: dict[str, float]  # used views only
    rejected: dict[str, str]  # view name -> why it was not used
    date: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def summary(self) -> dict:
        """The `calibration:` record saved next to the camera_info keys."""
        return {
            "reprojection_error_px": round(self.rms_px, 4),
            "num_views": len(self.view_errors_px),
            "rejected_views": dict(self.rejected),
            "date": self.date,
        }


def _flags(cfg: IntrinsicsConfig, have_guess: bool) -> int:
    flags = cv2.CALIB_USE_INTRINSIC_GUESS if have_guess else 0
    if cfg.distortion_model == "rational_polynomial":
        flags |= cv2.CALIB_RATIONAL_MODEL
    elif cfg.fix_k3:
        flags |= cv2.CALIB_FIX_K3
    if cfg.zero_tangential:
        flags |= cv2.CALIB_ZERO_TANGENT_DIST
    return flags


def _refusal(what: str, n_usable: int, rejected: dict[str, str], advice: str) -> CalibrationError:
    lines = [f"intrinsics calibration refused: {what}; {n_usable} usable view(s)."]
    lines += [f"  rejected {name}: {why}" for name, why in rejected.items()]
    lines.append(f"Next: {advice}")
    return CalibrationError("\n".join(lines))


def calibrate_intrinsics(
    views: dict[str, Detection],
    board: BoardConfig,
    image_size: tuple[int, int],
    cfg: IntrinsicsConfig | None = None,
    initial: CameraIntrinsics | None = None,
) -> IntrinsicsResult:
    """Calibrate from per-view detections keyed by view name; `image_size` is (width, height).

    `initial` (e.g. RealSense factory intrinsics) seeds the optimisation. Raises CalibrationError
    naming every rejected view and why when fewer than `cfg.min_views` good views remain.
    """
    cfg = cfg or IntrinsicsConfig()
    rejected: dict[str, str] = {}
    usable: dict[str, Detection] = {}
    for name, det in views.items():
        if len(det) == 0:
            rejected[name] = f"no board corners detected ({det.num_markers} markers seen)"
        elif len(det) < cfg.min_corners:
            rejected[name] = f"only {len(det)} corners (< min_corners={cfg.min_corners})"
        elif not det.spans_two_axes(board):
            rejected[name] = "corners all on one board row/column (degenerate view)"
        else:
            usable[name] = det
    advice = (
        f"collect at least {cfg.min_views} views where the whole board is visible, sharp and well "
        "lit, from different distances and tilted 20-40 degrees about both board axes, covering "
        "the image corners too"
    )
    if len(usable) < cfg.min_views:
        raise _refusal(
            f"need {cfg.min_views} views with >= {cfg.min_corners} corners",
            len(usable),
            rejected,
            advice,
        )

    width, height = image_size
    if initial is not None and (initial.width, initial.height) != (width, height):
        raise CalibrationError(
            f"initial intrinsics are for {initial.width}x{initial.height} images, the views are "
            f"{width}x{height}: use the factory intrinsics of the same stream resolution"
        )
    n_coef = 8 if cfg.distortion_model == "rational_polynomial" else 5
    K0 = initial.K.copy() if initial is not None else np.eye(3)
    D0 = np.zeros(n_coef)
    # Fisheye coefficients do not carry over.
    if initial is not None and initial.distortion_model != "equidistant":
        D0[: min(n_coef, len(initial.D))] = initial.D[:n_coef]
    while True:
        names = list(usable)
        obj = [usable[n].object_points(board).astype(np.float32) for n in names]
        img = [usable[n].corners.reshape(-1, 1, 2).astype(np.float32) for n in names]
        rms, K, D, _, _, _, _, per_view = cv2.calibrateCameraExtended(
            obj,
            img,
            (width, height),
            K0.copy(),
            D0.copy(),
            flags=_flags(cfg, initial is not None),
            criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10),
        )
        errors = dict(zip(names, per_view.reshape(-1).tolist()))
        limit = max(cfg.max_view_error_px, cfg.outlier_factor * float(np.median(per_view)))
        bad = [n for n, e in errors.items() if e > limit]
        if not bad:
            break
        # Drop one at a time: one bad view inflates every other view's error.
        worst = max(bad, key=errors.get)
        rejected[worst] = (
            f"reprojection error {errors[worst]:.2f} px > {limit:.2f} px "
            "(blurred, moved, or misdetected)"
        )
        del usable[worst]
        if len(usable) < cfg.min_views:
            raise _refusal(
                f"too many views with large reprojection error (need {cfg.min_views})",
                len(usable),
                rejected,
                advice + "; hold the board still while each image is taken",
            )

    if not (np.isfinite(K).all() and np.isfinite(D).all()):
        raise _refusal("the optimisation diverged", len(usable), rejected, advice)
    D = D.reshape(-1)[:n_coef]
    camera = CameraIntrinsics(width, height, K, D, cfg.distortion_model)
    return IntrinsicsResult(camera, float(rms), errors, rejected)
