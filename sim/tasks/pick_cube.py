"""pick_cube: grasp a 4 cm cube at a random position and yaw on the table; lift it >= 10 cm."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from controllers.config import ConfigError
from sim.config import MarkerConfig, RandomizationConfig
from sim.tasks.base import GRIPPER, OBJECT, STATIC, STIFF, Task, yaw_quat

CUBE_HALF = 0.02
CENTER = np.array([0.5, 0.0])  # nominal cube position on the table (m)
LIFT = 0.10  # success: cube centre this much above its resting height
MAX_MARKER_SIZE_M = 0.9 * 2 * CUBE_HALF  # a larger square leaves no white margin on a face


# A cube texture is its six faces stacked top to bottom in this order (faces of the box geom).
_FACES = ("+x", "-x", "+y", "-y", "+z", "-z")
_C = math.sqrt(0.5)
# The marker on each face: (offset of its id from marker.id, marker frame in the cube's frame).
# The marker frame is OpenCV's (x right and y up in the printed image, z out of the face); the
# rotations are those MuJoCo's cube mapping gives the stacked images (checked against the true
# pose by detection in tests/sim). The bottom face stays blank.
MARKER_FACES: dict[str, tuple[int, tuple[float, float, float, float]]] = {
    "+z": (0, (1.0, 0.0, 0.0, 0.0)),
    "+x": (1, (_C, 0.0, _C, 0.0)),
    "-x": (2, (_C, 0.0, -_C, 0.0)),
    "+y": (3, (_C, -_C, 0.0, 0.0)),
    "-y": (4, (_C, _C, 0.0, 0.0)),
}
_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1)}


def marker_layout(marker: MarkerConfig) -> dict[int, np.ndarray]:
    """Marker id -> pose (x y z qw qx qy qz) of that marker in the cube's frame."""
    return {
        marker.id + k: np.array([*(CUBE_HALF * np.array(_AXES[face])), *quat])
        for face, (k, quat) in MARKER_FACES.items()
    }


def _marker_texture(marker: MarkerConfig) -> tuple[np.ndarray, int]:
    """The cube texture (faces stacked, RGB) with a marker centred on the top and side faces.

    The face's pixel count is chosen so the marker's black square spans a whole number of pixels
    per bit with its edge within 0.1 % of `size_m`: the tracker's pose scale is the marker size.
    """
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, marker.dictionary))
    cells = dictionary.markerSize + 2  # the bits plus the black border
    face_m = 2 * CUBE_HALF
    if marker.size_m > MAX_MARKER_SIZE_M:
        raise ConfigError(
            f"marker.size_m: {marker.size_m} m leaves no white margin on the cube's {face_m} m "
            f"faces; use at most {MAX_MARKER_SIZE_M:.3f} m"
        )
    if marker.id + len(MARKER_FACES) > len(dictionary.bytesList):
        raise ConfigError(
            f"marker.id: the cube carries ids {marker.id}..{marker.id + len(MARKER_FACES) - 1}, "
            f"beyond {marker.dictionary}'s {len(dictionary.bytesList)} markers"
        )

    def rounding(ppb: int) -> float:
        face_px = cells * ppb * face_m / marker.size_m
        return abs(round(face_px) - face_px) / face_px

    side = cells * min(range(16, 65), key=rounding)
    face = round(side * face_m / marker.size_m)
    o = (face - side) // 2
    stack = np.full((len(_FACES), face, face), 255, np.uint8)
    for name, (k, _) in MARKER_FACES.items():
        stack[_FACES.index(name), o : o + side, o : o + side] = cv2.aruco.generateImageMarker(
            dictionary, marker.id + k, side
        )
    return np.repeat(stack.reshape(-1, face, 1), 3, axis=2), face


class PickCube(Task):
    name = "pick_cube"
    object_body = "cube"

    def __init__(self, marker: MarkerConfig | None = None):
        self.marker = marker

    def build(self, spec: mujoco.MjSpec) -> None:
        body = spec.worldbody.add_body(name="cube", pos=[CENTER[0], CENTER[1], CUBE_HALF])
        body.add_freejoint(name="cube")
        look = {"rgba": [0.85, 0.15, 0.1, 1]}
        if self.marker is not None:
            image, face = _marker_texture(self.marker)
            tex = spec.add_texture(
                name="cube_marker",
                type=mujoco.mjtTexture.mjTEXTURE_CUBE,
                width=face,
                height=len(_FACES) * face,
                nchannel=3,
            )
            tex.data = image.tobytes()
            spec.add_material(name="cube_marker", textures=["", "cube_marker"])
            look = {"material": "cube_marker", "rgba": [1, 1, 1, 1]}
        body.add_geom(
            name="cube",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[CUBE_HALF] * 3,
            mass=0.05,
            **look,
            friction=[1.0, 0.005, 0.0001],
            solref=STIFF,
            contype=OBJECT,
            conaffinity=STATIC | GRIPPER | OBJECT,
        )

    def reset(
        self, model, data, rng: np.random.Generator, cfg: RandomizationConfig, tcp_pos, tcp_quat
    ) -> bool:
        xy = CENTER + rng.uniform(-1, 1, 2) * np.asarray(cfg.object_xy_halfrange)
        yaw = rng.uniform(-1, 1) * cfg.object_yaw_halfrange
        a = self.object_qpos
        data.qpos[a : a + 3] = (xy[0], xy[1], CUBE_HALF)
        data.qpos[a + 3 : a + 7] = yaw_quat(yaw)
        return False

    def success(self, data) -> bool:
        return bool(data.xpos[self.object_id, 2] >= CUBE_HALF + LIFT)

    def shaping(self, data, tcp_pos) -> float:
        cube = data.xpos[self.object_id]
        reach = 1.0 - math.tanh(10.0 * float(np.linalg.norm(cube - tcp_pos)))
        lift = min(max((cube[2] - CUBE_HALF) / LIFT, 0.0), 1.0)
        return 0.5 * reach + 0.49 * lift
