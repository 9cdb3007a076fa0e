"""Workspace bounds from TCP poses recorded while the operator moves the arm through the task space.

The result is the safety filter's box (controllers.safety.SafetyConfig
`workspace_min`/`workspace_max`), written as a `safety:` mapping. The box is the recorded extent
grown by a margin on every side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.errors import CalibrationError
from calibration.files import write_yaml
from controllers.config import ConfigError, load_yaml


def load_positions(path: str | Path) -> np.ndarray:
    """TCP positions (N, 3) from .npy or .csv rows of x y z [qw qx qy qz] (CSV header optional)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pose file not found: {path}")
    if path.suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    elif path.suffix == ".csv":
        lines = path.read_text().splitlines()
        skip = 1 if lines and any(c.isalpha() for c in lines[0]) else 0
        data = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    else:
        raise ConfigError(f"{path}: expected a .npy or .csv file of poses")
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[1] not in (3, 7):
        raise ConfigError(
            f"{path}: expected rows of 3 (x y z) or 7 (x y z qw qx qy qz) values, "
            f"got shape {data.shape}"
        )
    return data[:, :3]


def workspace_box(
    positions: np.ndarray, margin: float = 0.02, min_extent: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """(workspace_min, workspace_max) of finite positions, grown by `margin` metres on every side.

    Raises CalibrationError when the arm did not move at least `min_extent` along every axis: a box
    that thin would freeze the policy in that direction.
    """
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    finite = np.isfinite(positions).all(axis=1)
    pts = positions[finite]
    dropped = int((~finite).sum())
    note = f" ({dropped} non-finite pose(s) ignored)" if dropped else ""
    if margin < 0 or not np.isfinite(margin):
        raise ConfigError(f"workspace margin: {margin} must be a finite number >= 0")
    if len(pts) < 2:
        raise CalibrationError(
            f"workspace refused: {len(pts)} usable pose(s){note}. Next: record while moving "
            "the arm to the extremes of the task space (corners of the box, lowest and "
            "highest points)."
        )
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    thin = [
        f"{axis} ({hi[i] - lo[i]:.3f} m)"
        for i, axis in enumerate("xyz")
        if hi[i] - lo[i] < min_extent
    ]
    if thin:
        raise CalibrationError(
            f"workspace refused: the arm moved less than {min_extent} m along {', '.join(thin)} "
            f"over {len(pts)} poses{note}. Next: move the arm along that axis to both ends of "
            "the task space while recording."
        )
    return lo - margin, hi + margin


def write_safety_yaml(path: str | Path, lo: np.ndarray, hi: np.ndarray) -> Path:
    """Set `safety.workspace_min/max` in `path`, keeping every other key of an existing file."""
    path = Path(path)
    data = load_yaml(path) if path.exists() else {}
    safety = data.setdefault("safety", {})
    if not isinstance(safety, dict):
        raise ConfigError(f"{path}: `safety` must be a mapping")
    safety["workspace_min"] = [round(float(v), 5) for v in lo]
    safety["workspace_max"] = [round(float(v), 5) for v in hi]
    return write_yaml(path, data)
