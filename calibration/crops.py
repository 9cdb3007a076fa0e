"""Per-camera crop rectangles for the policy and reward classifier, chosen numerically (headless).

A crop is given in pixels, or derived from a 3-D box (e.g. the workspace) projected through a fixed
camera's calibration; either way it is clamped to the image, optionally made square (the policy
resizes crops to 128x128), saved as YAML and previewed on a recorded frame as a PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration import transform as tf
from calibration.camera_yaml import TwinCamera
from calibration.errors import CalibrationError
from calibration.files import write_png, write_yaml
from controllers.config import ConfigError, load_yaml

PREVIEW_COLORS = {"policy": (0, 200, 0), "reward": (230, 60, 0)}


@dataclass
class Crop:
    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0 or self.width <= 0 or self.height <= 0:
            raise ConfigError(
                f"crop: x={self.x} y={self.y} width={self.width} height={self.height}: "
                "x, y must be >= 0 and width, height > 0"
            )

    def apply(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.height, self.x : self.x + self.width]


def fit_crop(
    points_px: np.ndarray, image_size: tuple[int, int], margin_px: int = 10, square: bool = True
) -> Crop:
    """Smallest (square) rectangle holding the points plus a margin, kept inside the image.

    `image_size` is (width, height).
    """
    width, height = image_size
    pts = np.asarray(points_px, dtype=float).reshape(-1, 2)
    if len(pts) == 0 or not np.isfinite(pts).all():
        raise CalibrationError(
            "crop refused: the region has no finite projected points (is it behind the camera?)"
        )
    x0, y0 = np.floor(pts.min(axis=0)) - margin_px
    x1, y1 = np.ceil(pts.max(axis=0)) + margin_px
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise CalibrationError(
            f"crop refused: the region [{x0:.0f}, {x1:.0f}] x [{y0:.0f}, {y1:.0f}] px lies "
            f"outside the {width}x{height} image; check the camera calibration and the box"
        )
    w, h = x1 - x0, y1 - y0
    if square:
        side = min(max(w, h), width, height)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, y0, w, h = cx - side / 2, cy - side / 2, side, side
    # slide the rectangle inside the image rather than cutting it, so a square stays square
    x0 = float(np.clip(x0, 0, max(0, width - w)))
    y0 = float(np.clip(y0, 0, max(0, height - h)))
    w, h = min(w, width - x0), min(h, height - y0)
    return Crop(int(round(x0)), int(round(y0)), int(round(w)), int(round(h)))


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners (8, 3) of an axis-aligned box."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )


def project_world_points(points_world: np.ndarray, camera: TwinCamera) -> np.ndarray:
    """Pixels of world points seen by a fixed (parent_frame: world) camera."""
    if camera.parent_frame != "world":
        raise CalibrationError(
            f"crop from a 3-D box needs a fixed camera (parent_frame: world); this one is "
            f"mounted on {camera.parent_frame!r}: give the crop in pixels instead"
        )
    T_cam_world = tf.inv(camera.T_parent_cam)
    pts = np.asarray(points_world, float) @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    if (pts[:, 2] <= 0).any():
        raise CalibrationError("crop refused: part of the box is behind the camera")
    return camera.intrinsics.project(pts)


def draw_preview(image: np.ndarray, crops: dict[str, Crop]) -> np.ndarray:
    """Copy of an RGB image with each crop drawn as a labelled rectangle."""
    import cv2

    out = np.ascontiguousarray(
        image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    ).copy()
    for role, c in crops.items():
        color = PREVIEW_COLORS.get(role, (255, 255, 0))
        cv2.rectangle(out, (c.x, c.y), (c.x + c.width - 1, c.y + c.height - 1), color, 2)
        cv2.putText(
            out,
            f"{role} {c.width}x{c.height}",
            (c.x + 4, c.y + 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            color,
            1,
            cv2.LINE_AA,
        )
    return out


def save_crops(
    path: str | Path,
    camera: str,
    crops: dict[str, Crop],
    image_size: tuple[int, int],
    preview_image: np.ndarray | None = None,
    preview_path: str | Path | None = None,
) -> Path:
    """Set `crops.<camera>` in `path` (other cameras kept); write the preview PNG given an image."""
    width, height = image_size
    for role, c in crops.items():
        if c.x + c.width > width or c.y + c.height > height:
            raise ConfigError(f"crop {camera}.{role}: {c} exceeds the {width}x{height} image")
    path = Path(path)
    data = load_yaml(path) if path.exists() else {}
    section = data.setdefault("crops", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: `crops` must be a mapping")
    section[camera] = {
        "image_width": width,
        "image_height": height,
        **{
            role: {"x": c.x, "y": c.y, "width": c.width, "height": c.height}
            for role, c in crops.items()
        },
    }
    if preview_image is not None:
        if preview_image.shape[:2] != (height, width):
            raise ConfigError(
                f"preview image is {preview_image.shape[1]}x{preview_image.shape[0]}, "
                f"camera {camera} is {width}x{height}"
            )
        write_png(
            preview_path or path.with_name(f"crop_{camera}.png"), draw_preview(preview_image, crops)
        )
    return write_yaml(path, data)
