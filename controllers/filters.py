"""Target smoothing on SE(3) outside the impedance kernel (which filters per tick itself)."""

from __future__ import annotations

import numpy as np

from controllers.config import ConfigError
from controllers.se3 import quat_normalize, slerp


class PoseFilter:
    """First-order low-pass on SE(3): position lerp and orientation slerp by alpha per update().

    alpha in (0, 1]; 1 passes the input through. The time constant is about dt / alpha.
    """

    def __init__(self, alpha: float):
        if not 0 < alpha <= 1:
            raise ConfigError(f"alpha: {alpha!r} must be in (0, 1] (1 = pass-through)")
        self.alpha = float(alpha)
        self._pos: np.ndarray | None = None
        self._quat: np.ndarray | None = None

    def reset(self, pos, quat) -> None:
        """Start the filter at this pose."""
        self._pos = _finite("pos", pos, 3)
        self._quat = quat_normalize(_finite("quat", quat, 4))

    def update(self, pos, quat) -> tuple[np.ndarray, np.ndarray]:
        """Move the filtered pose alpha of the way towards (pos, quat); returns copies of it."""
        if self._pos is None or self._quat is None:
            raise RuntimeError("PoseFilter.update() called before reset(pos, quat)")
        pos = _finite("pos", pos, 3)
        quat = quat_normalize(_finite("quat", quat, 4))
        self._pos = self._pos + self.alpha * (pos - self._pos)
        self._quat = slerp(self._quat, quat, self.alpha)
        return self._pos.copy(), self._quat.copy()


def _finite(name: str, value, size: int) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (size,) or not np.all(np.isfinite(array)):
        raise ValueError(f"PoseFilter: {name} must be {size} finite numbers, got {value!r}")
    return array
