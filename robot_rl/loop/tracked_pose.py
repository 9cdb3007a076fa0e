"""`object_pose` measured by the marker tracker in the twin's camera images, as on a real cell.

`TrackedObjectPose` wraps a twin env built without privileged state, with the marker cube and the
tracker's cameras rendered; `make_tracked_env` builds both from a run config's `tracker:` section.
At every reset and step it measures the cube in each tracker camera's image with the core the
`tracker` node runs (calibration.tracker), takes the view `select_view` prefers, and returns the
privileged twin's observation: the same keys in the same order, `object_pose` (x y z qw qx qy qz,
w >= 0) measured instead of true, the tracker's images removed. It never reads the twin's true pose.

When no camera measures the cube, `object_pose` is
- with `hold_in_gripper` and the gripper width within `hold_width_m`: the pose the cube had in
  the hand when last measured, moved with the hand (calibration.tracker.GripperHold);
- otherwise the last pose given this episode, measured or held: an unseen cube lies where it was
  last seen, or where the hand let go of it;
- before any pose this episode: NO_POSE (the origin, no rotation). The twin cannot wait for a view
  as a real cell's actor does (nothing moves until the policy acts), and a plainly absent pose is
  better than an invented one.

`info["tracker"]`: where this observation's pose came from (`source`: a camera name, `held`,
`kept` or `unseen`) and the episode's frame counts so far (`frames`, `measured`, `held`, `kept`,
`unseen`); each finished episode logs its counts, the detection rate of the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from calibration import transform as tf
from calibration.camera_yaml import CameraIntrinsics
from calibration.markers import dictionary_size
from calibration.tracker import (
    GripperHold,
    Measurement,
    ObjectTracker,
    TrackerConfig,
    load_mounts,
    select_view,
)
from controllers.config import ConfigError
from sim.observation import observation_space

log = logging.getLogger(__name__)

NO_POSE = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], np.float32)
COUNTS = ("frames", "measured", "held", "kept", "unseen")


@dataclass
class TrackedPoseConfig:
    """`tracker:` of a run config: object_pose from markers on the twin's cube, not its truth."""

    dictionary: str = "DICT_4X4_50"  # cv2.aruco dictionary of the cube's markers
    marker_id: int = 0  # the cube carries ids marker_id .. marker_id + 4 (top and side faces)
    marker_size_m: float = 0.03  # edge of each black square
    # rendered for the tracker only, never observed by the policy; the wrist camera alone measures
    # as well as wrist + front at less than half the cost per step (docs/tracker.md)
    cameras: list[str] = field(default_factory=lambda: ["wrist"])
    image_size: tuple[int, int] = (480, 640)  # height, width of the tracker's images
    hold_in_gripper: bool = True  # marker lost while grasped: the cube moves with the hand
    hold_width_m: tuple[float, float] = (0.01, 0.075)  # gripper widths that mean "holding it"

    def __post_init__(self) -> None:
        from sim.tasks.pick_cube import MARKER_FACES, MAX_MARKER_SIZE_M

        try:
            n = dictionary_size(self.dictionary)
        except ConfigError as exc:
            raise ConfigError(f"tracker.dictionary: {exc}") from None
        last = self.marker_id + len(MARKER_FACES) - 1
        if not 0 <= self.marker_id or last >= n:
            raise ConfigError(
                f"tracker.marker_id: the cube carries ids {self.marker_id}..{last}, which must "
                f"lie in 0..{n - 1} of {self.dictionary}"
            )
        if not 0 < self.marker_size_m <= MAX_MARKER_SIZE_M:
            raise ConfigError(
                f"tracker.marker_size_m: {self.marker_size_m} must be in (0, "
                f"{MAX_MARKER_SIZE_M:.3f}] m: the square and its white margin fit on a face"
            )
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"tracker.cameras: need distinct camera names, got {self.cameras}")
        h, w = self.image_size
        if not (16 <= h <= 1024 and 16 <= w <= 1024):
            raise ConfigError(
                f"tracker.image_size: {list(self.image_size)} must be (height, width) in 16..1024"
            )
        lo, hi = self.hold_width_m
        if not 0 <= lo < hi:
            raise ConfigError(
                f"tracker.hold_width_m: need [min, max] with 0 <= min < max, got {[lo, hi]}"
            )

    def marker(self) -> dict[str, Any]:
        """The twin's `env.marker` that prints these markers on the cube."""
        return {"dictionary": self.dictionary, "id": self.marker_id, "size_m": self.marker_size_m}


def tracker_config_for_twin(
    dictionary: str,
    marker_id: int,
    size_m: float,
    cameras: list[str] | tuple[str, ...],
    extrinsics: str | Path = "",
) -> TrackerConfig:
    """The TrackerConfig that matches the twin's marker cube (sim.tasks.pick_cube layout), with
    the cameras placed by `extrinsics` (default: the twin's sim/assets/cameras.yaml)."""
    from sim.cameras import DEFAULT_CAMERA_YAML
    from sim.config import MarkerConfig
    from sim.tasks.pick_cube import marker_layout

    layout = marker_layout(MarkerConfig(dictionary, marker_id, size_m))
    return TrackerConfig(
        dictionary=dictionary,
        marker_size_m=size_m,
        marker_ids=list(layout),
        marker_poses=[float(v) for pose in layout.values() for v in pose],
        cameras=list(cameras),
        extrinsics=str(extrinsics or DEFAULT_CAMERA_YAML),
        workspace_min=[0.0, -0.5, -0.02],
        workspace_max=[1.0, 0.5, 0.6],
    )


class TrackedObjectPose(gymnasium.Wrapper):
    """The twin with `object_pose` measured by the marker tracker (see the module doc)."""

    def __init__(self, env: gymnasium.Env, config: TrackedPoseConfig):
        super().__init__(env)
        twin = env.unwrapped
        if "object_pose" in env.observation_space.spaces:
            raise ValueError(
                "the env observes the twin's true object_pose; build it with privileged_state=False"
            )
        if twin.task.marker is None:
            raise ValueError("the twin's cube carries no marker; build it with marker=...")
        h, w = config.image_size
        for cam in config.cameras:
            space = env.observation_space.spaces.get(f"image_{cam}")
            if space is None or space.shape != (h, w, 3):
                raise ValueError(
                    f"the tracker reads camera {cam!r} at {w}x{h}; the env observes "
                    f"{None if space is None else space.shape}"
                )
        self.config = config
        tracker = tracker_config_for_twin(
            config.dictionary,
            config.marker_id,
            config.marker_size_m,
            config.cameras,
            twin.config.camera_yaml,
        )
        self.tracker = ObjectTracker(tracker, load_mounts(tracker))
        # what the twin's camera_info says of the rendered image: an ideal pinhole at this size
        self.intrinsics = {
            cam: CameraIntrinsics(w, h, twin.camera_specs[cam].scaled_camera_matrix(w, h))
            for cam in config.cameras
        }
        self.hold = GripperHold(config.hold_width_m) if config.hold_in_gripper else None
        rest = tuple(c for c in twin.config.cameras if c not in config.cameras)
        self.observation_space = observation_space(
            replace(twin.config, privileged_state=True, cameras=rest), twin.task.name
        )
        self._last: np.ndarray | None = None
        self.counts = dict.fromkeys(COUNTS, 0)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._last = None
        if self.hold is not None:
            self.hold.release()
        self.counts = dict.fromkeys(COUNTS, 0)
        return self._track(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._track(obs, info)
        if terminated or truncated:
            c = self.counts
            log.info(
                "object_pose from the tracker this episode: %d of %d frames measured (%.1f %%), "
                "%d held in the gripper, %d kept from an earlier frame, %d unseen",
                c["measured"],
                c["frames"],
                100.0 * c["measured"] / c["frames"],
                c["held"],
                c["kept"],
                c["unseen"],
            )
        return obs, reward, terminated, truncated, info

    def _track(self, obs: dict[str, np.ndarray], info: dict[str, Any]):
        T_world_hand = tf.from_pose7(obs["tcp_pose"])
        views: list[Measurement] = []
        for cam in self.config.cameras:
            m = self.tracker.measure(cam, obs[f"image_{cam}"], self.intrinsics[cam], T_world_hand)
            if m is not None:
                views.append(m)
        pose, source = self._pose(select_view(views), T_world_hand, float(obs["gripper_width"][0]))
        if source != "unseen":
            self._last = pose
        self.counts["frames"] += 1
        self.counts["measured" if source in self.config.cameras else source] += 1
        info["tracker"] = {"source": source, **self.counts}
        tracked = {k: pose if k == "object_pose" else obs[k] for k in self.observation_space}
        return tracked, info

    def _pose(
        self, best: Measurement | None, T_world_hand: np.ndarray, gripper_width: float
    ) -> tuple[np.ndarray, str]:
        """This frame's object_pose and where it came from."""
        if best is not None:
            if self.hold is not None:
                self.hold.measured(best.T_world_object, T_world_hand)
            return best.pose7.astype(np.float32), best.camera
        if self.hold is not None:
            held = self.hold.pose(T_world_hand, gripper_width)
            if held is not None:
                return tf.to_pose7(held).astype(np.float32), "held"
            self.hold.release()
        if self._last is not None:
            return self._last.copy(), "kept"
        return NO_POSE.copy(), "unseen"


def make_tracked_env(
    task: str, env: dict[str, Any], config: TrackedPoseConfig
) -> TrackedObjectPose:
    """The twin of `task` with `env`'s settings, the marker cube and the tracker's cameras,
    observing the tracked object_pose."""
    import sim

    twin = sim.make_env(
        task,
        env,
        cameras=tuple(config.cameras),
        image_size=tuple(config.image_size),
        marker=config.marker(),
        privileged_state=False,
    )
    return TrackedObjectPose(twin, config)
