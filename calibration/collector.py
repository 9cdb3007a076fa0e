"""Sample collection on the robot.

One (camera image, TCP pose) pair per operator key press / teleop event. ROS-free core of the
calibration mode: the node hands each sample to `SampleCollector.add`, which says whether it was
usable and how many usable samples there are, and saves usable ones to a folder:

    <folder>/sample_000.png ...      the camera images (RGB as PNG)
    <folder>/samples.yaml            {camera, samples: [{image, tcp_position,
                                                         tcp_quaternion_wxyz, corners}]}

The folder is what `robot-rl calibrate intrinsics|handeye --samples <folder>` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration import transform as tf
from calibration.charuco import BoardConfig, CharucoFinder
from calibration.errors import CalibrationError
from calibration.files import read_image, write_png, write_yaml
from controllers.config import ConfigError, load_yaml

INDEX = "samples.yaml"


@dataclass
class AddResult:
    accepted: bool
    usable: int  # usable samples so far, this one included when accepted
    reason: str  # why it was rejected; "" when accepted
    corners: int = 0

    def message(self, needed: int) -> str:
        if self.accepted:
            more = max(0, needed - self.usable)
            return f"sample {self.usable} saved ({self.corners} corners); {more} more needed"
        return f"sample rejected: {self.reason}; still {self.usable} usable"


class SampleCollector:
    """Checks and saves calibration samples; resumes an existing folder (appends to its index)."""

    def __init__(
        self,
        folder: str | Path,
        board: BoardConfig,
        camera: str = "camera",
        min_corners: int = 12,
        min_move_m: float = 0.01,
        min_turn_deg: float = 2.0,
        needed: int = 15,
    ):
        self.folder = Path(folder)
        self.board, self.camera, self.needed = board, camera, needed
        self.min_corners, self.min_move_m, self.min_turn_deg = min_corners, min_move_m, min_turn_deg
        self.finder = CharucoFinder(board)
        self.records: list[dict] = []
        if (self.folder / INDEX).exists():
            self.records = load_index(self.folder)["samples"]

    @property
    def usable(self) -> int:
        return len(self.records)

    def add(self, image: np.ndarray, tcp_pose: np.ndarray) -> AddResult:
        """Check one sample and save it if usable.

        `image` is RGB uint8; `tcp_pose` is x y z qw qx qy qz in the base frame.
        """
        image = np.asarray(image)
        pose = np.asarray(tcp_pose, dtype=float).reshape(-1)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 16:
            return AddResult(
                False, self.usable, f"not a uint8 image (dtype {image.dtype}, shape {image.shape})"
            )
        if pose.shape != (7,) or not np.isfinite(pose).all():
            return AddResult(
                False,
                self.usable,
                f"TCP pose must be 7 finite numbers x y z qw qx qy qz, got {pose}",
            )
        if abs(np.linalg.norm(pose[3:]) - 1) > 1e-3:
            return AddResult(
                False, self.usable, f"TCP quaternion norm {np.linalg.norm(pose[3:]):.4f} is not 1"
            )
        det = self.finder.detect(image)
        if len(det) == 0:
            return AddResult(
                False,
                self.usable,
                f"no board corners found ({det.num_markers} markers seen): is the "
                "board in view, sharp and lit without glare?",
            )
        if len(det) < self.min_corners:
            return AddResult(
                False,
                self.usable,
                f"only {len(det)} board corners (need {self.min_corners}): bring "
                "the whole board into view",
                len(det),
            )
        T_new = tf.from_pose7(pose)
        for rec in self.records:
            T_old = tf.from_pose7(np.r_[rec["tcp_position"], rec["tcp_quaternion_wxyz"]])
            dt, dr = tf.errors(T_new, T_old)
            if dt < self.min_move_m and np.degrees(dr) < self.min_turn_deg:
                return AddResult(
                    False,
                    self.usable,
                    f"same pose as {rec['image']} (moved {dt * 1e3:.1f} mm, turned "
                    f"{np.degrees(dr):.1f} deg): move or turn the arm before the next sample",
                    len(det),
                )
        name = f"sample_{len(self.records):03d}.png"
        while (self.folder / name).exists():  # never overwrite images of an earlier session
            name = f"sample_{int(name[7:10]) + 1:03d}.png"
        write_png(self.folder / name, image)
        self.records.append(
            {
                "image": name,
                "tcp_position": [float(v) for v in pose[:3]],
                "tcp_quaternion_wxyz": [float(v) for v in pose[3:] / np.linalg.norm(pose[3:])],
                "corners": int(len(det)),
            }
        )
        write_yaml(self.folder / INDEX, {"camera": self.camera, "samples": self.records})
        return AddResult(True, self.usable, "", len(det))


def load_index(folder: str | Path) -> dict:
    path = Path(folder) / INDEX
    data = load_yaml(path)
    samples = data.get("samples")
    if not isinstance(samples, list):
        raise ConfigError(f"{path}: expected a `samples:` list")
    for i, rec in enumerate(samples):
        for key in ("image", "tcp_position", "tcp_quaternion_wxyz"):
            if not isinstance(rec, dict) or key not in rec:
                raise ConfigError(f"{path}: samples[{i}] is missing {key!r}")
    return data


def load_samples(folder: str | Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, RGB image, 4x4 T_base_tcp or None) per sample.

    A folder with samples.yaml gives poses; a plain folder of PNG/JPG images (enough for
    intrinsics) gives None.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"samples folder not found: {folder}")
    if (folder / INDEX).exists():
        return [
            (
                rec["image"],
                read_image(folder / rec["image"]),
                tf.from_pose7(np.r_[rec["tcp_position"], rec["tcp_quaternion_wxyz"]]),
            )
            for rec in load_index(folder)["samples"]
        ]
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")
    )
    if not files:
        raise CalibrationError(
            f"no images in {folder} (expected PNG/JPG files or a {INDEX} written by the "
            "sample collector)"
        )
    return [(p.name, read_image(p), None) for p in files]
