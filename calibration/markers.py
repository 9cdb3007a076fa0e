"""Fiducial markers (OpenCV ArUco / AprilTag dictionaries): printable images, detection, poses.

A marker's frame is OpenCV's: origin at the centre of the black square, x to the right and y up
in the printed image, z out of the printed side. `size_m` is the edge of the black square, which
is what to measure on the print.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration import transform as tf
from calibration.camera_yaml import CameraIntrinsics
from controllers.config import ConfigError


def aruco_dictionary(name: str):
    """The predefined cv2.aruco dictionary called `name` (e.g. DICT_4X4_50, DICT_APRILTAG_36h11)."""
    import cv2

    if not name.startswith("DICT_") or not hasattr(cv2.aruco, name):
        known = sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_"))
        raise ConfigError(f"marker dictionary {name!r} is not one of OpenCV's: {known}")
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))


def dictionary_size(name: str) -> int:
    return len(aruco_dictionary(name).bytesList)


def marker_image(dictionary: str, marker_id: int, size_mm: float, dpi: int = 300) -> np.ndarray:
    """Printable gray image: the marker with a white quiet zone of one bit on every side.

    At `dpi` the black square is `size_mm` wide (to within a pixel); print at 100 % scale.
    """
    import cv2

    d = aruco_dictionary(dictionary)
    if not 0 <= marker_id < len(d.bytesList):
        raise ConfigError(
            f"marker id {marker_id} is not in 0..{len(d.bytesList) - 1} of {dictionary}"
        )
    if not 1.0 <= size_mm <= 1000.0 or not 72 <= dpi <= 2400:
        raise ConfigError(
            f"marker size {size_mm} mm / {dpi} dpi: expected 1..1000 mm and 72..2400 dpi"
        )
    cells = d.markerSize + 2
    side = max(cells, round(size_mm / 25.4 * dpi / cells) * cells)
    quiet = side // cells
    image = np.full((side + 2 * quiet, side + 2 * quiet), 255, np.uint8)
    image[quiet : quiet + side, quiet : quiet + side] = cv2.aruco.generateImageMarker(
        d, marker_id, side
    )
    return image


@dataclass(frozen=True)
class Detection:
    """One marker seen in one image: id and its 4 corners (pixels, OpenCV order)."""

    marker_id: int
    corners: np.ndarray  # (4, 2): top-left, top-right, bottom-right, bottom-left of the print


class MarkerDetector:
    """cv2.aruco.ArucoDetector for one dictionary with sub-pixel corner refinement."""

    def __init__(self, dictionary: str):
        import cv2

        self.dictionary = dictionary
        params = cv2.aruco.DetectorParameters()
        # The pose's error scales with the corner error. On the twin's renders SUBPIX refinement
        # shrinks the square by 0.7 % (a 2 mm depth bias at 0.25 m), AprilTag's edge fit by < 0.2 %.
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_APRILTAG
        self._detector = cv2.aruco.ArucoDetector(aruco_dictionary(dictionary), params)
        self._params = params

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Markers of this dictionary in an RGB or gray uint8 image."""
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        corners, ids, _ = self._detector.detectMarkers(gray)
        if ids is None:
            return []
        return [
            Detection(int(i), c.reshape(4, 2).astype(np.float64))
            for i, c in zip(ids.ravel(), corners)
        ]

    def other_dictionaries(self, image: np.ndarray) -> list[str]:
        """Names of common dictionaries with a marker in `image`: to tell an operator why the
        configured one finds nothing (slow; only for diagnosis)."""
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        found = []
        for name in DIAGNOSTIC_DICTIONARIES:
            if name == self.dictionary:
                continue
            detector = cv2.aruco.ArucoDetector(aruco_dictionary(name), self._params)
            if detector.detectMarkers(gray)[1] is not None:
                found.append(name)
        return found


# The largest dictionary of each family (a marker of a small one is also in its large one).
DIAGNOSTIC_DICTIONARIES = (
    "DICT_4X4_1000",
    "DICT_5X5_1000",
    "DICT_6X6_1000",
    "DICT_7X7_1000",
    "DICT_ARUCO_ORIGINAL",
    "DICT_APRILTAG_16h5",
    "DICT_APRILTAG_25h9",
    "DICT_APRILTAG_36h10",
    "DICT_APRILTAG_36h11",
)


def marker_pose(
    detection: Detection, size_m: float, intrinsics: CameraIntrinsics
) -> tuple[np.ndarray, float]:
    """(T_cam_marker, RMS reprojection error in pixels) by IPPE for a square planar target.

    Of IPPE's two solutions the one with the lower reprojection error is kept.
    """
    import cv2

    h = size_m / 2
    points = np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])
    pixels = detection.corners.reshape(4, 1, 2)
    if intrinsics.distortion_model == "equidistant":
        pixels = cv2.fisheye.undistortPoints(pixels, intrinsics.K, intrinsics.D, P=intrinsics.K)
        D = np.zeros(5)
    else:
        D = intrinsics.D
    n, rvecs, tvecs, errors = cv2.solvePnPGeneric(
        points, pixels, intrinsics.K, D, flags=cv2.SOLVEPNP_IPPE_SQUARE
    )
    if n == 0:
        return np.full((4, 4), np.nan), float("inf")
    best = int(np.argmin(np.ravel(errors)))
    R, _ = cv2.Rodrigues(rvecs[best])
    return tf.make(R, tvecs[best].ravel()), float(np.ravel(errors)[best])
