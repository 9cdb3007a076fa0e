"""Typed configuration of the twin's environments (YAML loaded by controllers.config.from_dict)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from controllers.config import ConfigError, from_dict, load_yaml
from controllers.impedance import ImpedanceConfig
from controllers.safety import SafetyConfig

# Joint configuration with the TCP 25 cm above the table at (0.5, 0, 0.25), pointing down
# (found once by damped least-squares IK on the model, nullspace towards the Panda's usual elbow).
HOME_QPOS = (0.0, -0.0418, 0.0, -2.3343, 0.0, 2.2925, 0.7854)


def _range(key: str, lo_hi: tuple[float, float], minimum: float = 0.0) -> None:
    lo, hi = lo_hi
    if not (math.isfinite(lo) and math.isfinite(hi) and minimum <= lo <= hi):
        raise ConfigError(f"{key}: expected {minimum} <= low <= high (finite), got {list(lo_hi)}")


@dataclass
class RandomizationConfig:
    """Domain randomisation drawn at every reset; zero ranges / (1, 1) scales switch a hook off."""

    object_xy_halfrange: tuple[float, float] = (0.05, 0.05)  # m, uniform around the task's nominal
    object_yaw_halfrange: float = math.pi / 4  # rad
    init_qpos_noise: float = 0.02  # rad, uniform per arm joint around home
    friction_scale: tuple[float, float] = (1.0, 1.0)  # task objects' sliding friction
    mass_scale: tuple[float, float] = (1.0, 1.0)  # task objects' mass and inertia
    light_scale: tuple[float, float] = (1.0, 1.0)  # diffuse intensity of every light
    light_pos_jitter: float = 0.0  # m, uniform per axis
    camera_pos_jitter: float = 0.0  # m, uniform per axis
    camera_rot_jitter: float = 0.0  # rad, uniform per axis (rotation vector)
    # A fixed error of every camera's pose, applied at every reset beneath the jitter: the cameras
    # sit off the pose the camera file gives, which the tracker and camera_info keep believing (a
    # real cell's hand-eye or extrinsic calibration error). Position in the camera's parent frame
    # (world, or the TCP frame for `hand` cameras), as the file's `translation`; rotation vector in
    # the camera's own optical frame (x right, y down, z forward).
    camera_pos_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # m
    camera_rot_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # rad

    def __post_init__(self) -> None:
        for i, v in enumerate(self.object_xy_halfrange):
            if not 0 <= v < math.inf:
                raise ConfigError(
                    f"randomization.object_xy_halfrange[{i}]: {v!r} must be finite and >= 0"
                )
        for key in (
            "object_yaw_halfrange",
            "init_qpos_noise",
            "light_pos_jitter",
            "camera_pos_jitter",
            "camera_rot_jitter",
        ):
            v = getattr(self, key)
            if not 0 <= v < math.inf:
                raise ConfigError(f"randomization.{key}: {v!r} must be finite and >= 0")
        for key in ("camera_pos_offset", "camera_rot_offset"):
            if not all(math.isfinite(v) for v in getattr(self, key)):
                raise ConfigError(
                    f"randomization.{key}: {list(getattr(self, key))} must be finite numbers"
                )
        if self.object_yaw_halfrange > math.pi:
            raise ConfigError(
                f"randomization.object_yaw_halfrange: {self.object_yaw_halfrange} > pi"
            )
        for key in ("friction_scale", "mass_scale", "light_scale"):
            _range(
                f"randomization.{key}",
                getattr(self, key),
                minimum=1e-6 if key != "light_scale" else 0.0,
            )


@dataclass
class MarkerConfig:
    """A fiducial printed on the task object: an OpenCV ArUco/AprilTag dictionary, id, black square
    edge length."""

    dictionary: str = "DICT_4X4_50"  # cv2.aruco predefined dictionary name
    id: int = 0
    size_m: float = 0.03  # edge of the black square, quiet zone excluded

    def __post_init__(self) -> None:
        import cv2

        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            raise ConfigError(
                f"marker.dictionary: {self.dictionary!r} is not an OpenCV aruco dictionary "
                "(e.g. DICT_4X4_50, DICT_APRILTAG_36h11)"
            )
        size = len(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary)).bytesList)
        if not 0 <= self.id < size:
            raise ConfigError(f"marker.id: {self.id} is not in 0..{size - 1} of {self.dictionary}")
        if not 0 < self.size_m < math.inf:
            raise ConfigError(f"marker.size_m: {self.size_m!r} must be a finite length > 0")


@dataclass
class EnvConfig:
    """Everything that shapes an env of the twin; one YAML per experiment (config/sim_*.yaml)."""

    physics_hz: float = 1000.0
    control_hz: float = 10.0
    max_episode_steps: int = 100
    pos_scale: float = 0.01  # m per step at action 1
    rot_scale: float = 0.05  # rad per step at action 1
    cameras: tuple[str, ...] = ()  # names from camera_yaml whose images are observed
    image_size: tuple[int, int] = (128, 128)  # height, width
    camera_yaml: str = ""  # "" = sim/assets/cameras.yaml
    render_camera: str = "front"  # what env.render() shows
    privileged_state: bool = True  # observe object_pose
    dense_reward: bool = False
    home_qpos: tuple[float, float, float, float, float, float, float] = HOME_QPOS
    controller: ImpedanceConfig = field(default_factory=ImpedanceConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    marker: MarkerConfig | None = None  # a fiducial rendered on the task object; None: plain

    def __post_init__(self) -> None:
        for key in ("physics_hz", "control_hz", "pos_scale", "rot_scale"):
            v = getattr(self, key)
            if not 0 < v < math.inf:
                raise ConfigError(f"{key}: {v!r} must be a finite number > 0")
        ratio = self.physics_hz / self.control_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ConfigError(
                "physics_hz / control_hz must be a whole number >= 1, "
                f"got {self.physics_hz} / {self.control_hz}"
            )
        if self.max_episode_steps < 1:
            raise ConfigError(f"max_episode_steps: {self.max_episode_steps!r} must be >= 1")
        h, w = self.image_size
        if not (16 <= h <= 1024 and 16 <= w <= 1024):
            raise ConfigError(
                f"image_size: {list(self.image_size)} must be (height, width) in 16..1024"
            )
        if len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"cameras: duplicate names in {list(self.cameras)}")

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return round(self.physics_hz / self.control_hz)


def load_env_config(path: str | Path) -> tuple[str, EnvConfig]:
    """(task, EnvConfig) from an experiment YAML's `task` and `env` sections (others are ignored:
    they belong to other consumers of the same file, e.g. the learner)."""
    data = load_yaml(path)
    task = data.get("task")
    if not isinstance(task, str):
        raise ConfigError(f"{path}: expected a top-level `task:` naming the task, got {task!r}")
    env = data.get("env", {})
    if not isinstance(env, dict):
        raise ConfigError(f"{path}: `env:` must be a mapping, got {env!r}")
    try:
        return task, from_dict(EnvConfig, env, "env")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
