"""Calibration file I/O; writes are atomic so a failure never clobbers a saved result."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temp file in the same folder, then rename over `path` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_yaml(path: str | Path, data: Any) -> Path:
    return write_bytes(
        path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None).encode()
    )


def write_png(path: str | Path, image_rgb: np.ndarray) -> Path:
    """Save an RGB (or gray) uint8 image as PNG atomically."""
    import cv2

    img = np.asarray(image_rgb)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    return write_bytes(path, buf.tobytes())


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (gray stays 2-D); errors name the file."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"cannot read image {path}")
    if img.ndim == 3:
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
    return img
