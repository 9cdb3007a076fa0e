"""The ChArUco board: its definition, a printable/texture image, and refined corner detection.

Board frame (OpenCV's): origin at the outer corner of the top-left square, x along the top edge,
y down the left edge as printed, z into the board.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from controllers.config import ConfigError


@dataclass
class BoardConfig:
    squares_x: int = 8
    squares_y: int = 6
    square_length: float = 0.03  # m, as printed (measure it with a caliper)
    marker_length: float = 0.022  # m
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise ConfigError(
                f"board.squares_x/squares_y: need at least 3x3 squares, got "
                f"{self.squares_x}x{self.squares_y}"
            )
        if not 0 < self.square_length < 1:
            raise ConfigError(f"board.square_length: {self.square_length} m is not in (0, 1)")
        if not 0 < self.marker_length < self.square_length:
            raise ConfigError(
                f"board.marker_length: {self.marker_length} must be in (0, square_length="
                f"{self.square_length})"
            )
        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            raise ConfigError(
                f"board.dictionary: {self.dictionary!r} is not a cv2.aruco dictionary "
                f"(e.g. DICT_5X5_100)"
            )
        needed = (self.squares_x * self.squares_y) // 2
        size = (
            int(self.dictionary.rsplit("_", 1)[1])
            if self.dictionary.rsplit("_", 1)[1].isdigit()
            else None
        )
        if size is not None and size < needed:
            raise ConfigError(
                f"board.dictionary: {self.dictionary} has {size} markers, the board needs {needed}"
            )

    @property
    def size_m(self) -> tuple[float, float]:
        """Width and height of the checker area in metres."""
        return self.squares_x * self.square_length, self.squares_y * self.square_length

    @property
    def num_corners(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)


def make_board(cfg: BoardConfig) -> cv2.aruco.CharucoBoard:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, cfg.dictionary))
    return cv2.aruco.CharucoBoard(
        (cfg.squares_x, cfg.squares_y), cfg.square_length, cfg.marker_length, dictionary
    )


def board_image(
    cfg: BoardConfig, px_per_square: int = 100, margin_squares: float = 0.5
) -> np.ndarray:
    """Gray uint8 image of the board with a white margin of `margin_squares` squares per side."""
    margin = int(round(margin_squares * px_per_square))
    w, h = cfg.squares_x * px_per_square, cfg.squares_y * px_per_square
    return make_board(cfg).generateImage(
        (w + 2 * margin, h + 2 * margin), marginSize=margin, borderBits=1
    )


@dataclass
class Detection:
    """ChArUco corners found in one image: pixel positions (N, 2) and board corner ids (N,)."""

    corners: np.ndarray
    ids: np.ndarray
    num_markers: int

    def __len__(self) -> int:
        return len(self.ids)

    def object_points(self, cfg: BoardConfig) -> np.ndarray:
        """Board-frame 3-D positions (N, 3) of the detected corners."""
        return make_board(cfg).getChessboardCorners()[self.ids].astype(np.float64)

    def spans_two_axes(self, cfg: BoardConfig) -> bool:
        """False when all corners lie on one board row or column (a degenerate, collinear view)."""
        cols, rows = self.ids % (cfg.squares_x - 1), self.ids // (cfg.squares_x - 1)
        return len(np.unique(cols)) > 1 and len(np.unique(rows)) > 1


class CharucoFinder:
    """Detect ChArUco corners.

    Marker corners are refined to sub-pixel; board corners by cornerSubPix (inside OpenCV).
    """

    def __init__(self, cfg: BoardConfig):
        self.cfg = cfg
        self.board = make_board(cfg)
        marker_params = cv2.aruco.DetectorParameters()
        marker_params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        charuco_params = cv2.aruco.CharucoParameters()
        charuco_params.tryRefineMarkers = (
            True  # recover markers missed at first using the board layout
        )
        self.detector = cv2.aruco.CharucoDetector(self.board, charuco_params, marker_params)

    def detect(self, image: np.ndarray) -> Detection:
        """Corners in an RGB or gray uint8 image; an empty Detection when the board is not seen."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
            raise ValueError(
                f"expected a uint8 gray or RGB image, got dtype {image.dtype} shape {image.shape}"
            )
        gray = image if image.ndim == 2 else cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2GRAY)
        corners, ids, marker_corners, _ = self.detector.detectBoard(gray)
        n_markers = 0 if marker_corners is None else len(marker_corners)
        if ids is None or len(ids) == 0:
            return Detection(np.zeros((0, 2), np.float32), np.zeros(0, np.int32), n_markers)
        return Detection(
            corners.reshape(-1, 2).astype(np.float32), ids.reshape(-1).astype(np.int32), n_markers
        )
