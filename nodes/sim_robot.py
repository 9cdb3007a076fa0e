"""`sim_robot` node: the MuJoCo twin behind a real cell's robot interface, in real time.

The twin (sim.make_env) is stepped at `state_hz` (100 Hz: each step runs physics_hz / state_hz
ticks of the controllers/ 1 kHz impedance law) against the wall clock. It speaks the interface of a
Franka under CRISP's ros2_control controllers, so the stack cannot tell it from a real cell:

- in: `target_pose` (PoseStamped; each step the twin's target moves toward it by at most
  `max_speed` / `max_angular_speed`, through the env's own delta action and safety filter; the
  last target is held when none arrives) and `gripper_position_controller/commands`
  (Float64MultiArray, one finger position in m: nearer `gripper_closed_position` than
  `gripper_open_position` closes the twin's gripper, otherwise it opens; the twin's gripper is a
  two-state servo, as the action contract's gripper is);
- out, profile `real_cell`: `current_pose` (frame `base_frame`), `joint_states` (the arm and
  finger joints by their configured names, one message), `cameras/<name>/image_raw` +
  `camera_info` rendered at `camera_fps`, and `wrench` only with `ft_sensor`;
- out, profile `privileged` (state-based jobs, development): also `object_pose`,
  `reward/success_prob` (true success as 0/1), `current_twist` and `wrench`;
- ground truth for evaluation harnesses, both profiles, never read by the stack's own nodes:
  `twin/object_pose`, `twin/success` (Bool) and the Trigger services `twin/place_object` (the
  object re-placed at a new randomised pose, arm untouched) and `twin/reset` (a new randomised
  episode); both answer once the object has come to rest.

A target that is not finite, whose quaternion is not a unit one or whose position is more than
TARGET_MARGIN_M outside the safety workspace is ignored, as is a gripper command that is not one
finite position within the gripper's range: the twin holds its last target, and the refusal is named
once a second. While more than one node publishes `target_pose` every target is refused and the twin
holds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float32, Float64MultiArray
from std_srvs.srv import Trigger

from controllers.action import ACTION_DIM, GRIPPER, action_from_target
from controllers.config import ConfigError
from nodes.input_checks import pose_problem
from nodes.messages import (
    FRANKA_ARM_JOINTS,
    FRANKA_FINGER_JOINTS,
    camera_info_msg,
    gripper_command_position,
    image_msg,
    joint_state_msg,
    pose_array,
    pose_msg,
    twist_msg,
    wrench_msg,
)
from nodes.params import declare_config

GRIPPER_TOPIC = "gripper_position_controller/commands"
# a target this far outside the safety workspace is nonsense, not a request to go to its edge
TARGET_MARGIN_M = 0.1
GRIPPER_RANGE_TOL = 0.005  # m beyond the closed / open positions a command may ask for
# twin/place_object and twin/reset answer once the object moved less than this for SETTLE_STEPS
# steps in a row, or fail after SETTLE_TIMEOUT_S.
SETTLE_SPEED = 0.002  # m/s
SETTLE_STEPS = 10
SETTLE_TIMEOUT_S = 5.0


@dataclass
class SimRobotConfig:
    profile: Literal["real_cell", "privileged"] = "real_cell"
    task: str = "pick_cube"
    env_config: str = (
        ""  # experiment YAML (config/sim_*.yaml) whose `env:` shapes the twin; "" = defaults
    )
    state_hz: float = 100.0  # twin steps per second; state topics are published at this rate
    max_speed: float = 0.2  # m/s the twin's target may move toward target_pose
    max_angular_speed: float = 1.0  # rad/s
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    camera_fps: float = 15.0
    image_size: list[int] = field(default_factory=lambda: [128, 128])  # height, width
    seed: int = 0
    base_frame: str = "world"  # frame_id of the poses (CRISP's Franka default is "base")
    arm_joints: list[str] = field(default_factory=lambda: list(FRANKA_ARM_JOINTS))
    finger_joints: list[str] = field(default_factory=lambda: list(FRANKA_FINGER_JOINTS))
    gripper_closed_position: float = 0.0  # one finger's position (m) in the gripper command
    gripper_open_position: float = 0.04
    ft_sensor: bool = False  # real_cell: publish `wrench` as a cell with an F/T sensor does

    def __post_init__(self) -> None:
        for key in ("state_hz", "max_speed", "max_angular_speed", "camera_fps"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ConfigError(f"image_size: expected [height, width] >= 16, got {self.image_size}")
        if not self.base_frame:
            raise ConfigError("base_frame: must name the robot's base frame, e.g. world or base")
        for key, count in (("arm_joints", 7), ("finger_joints", 2)):
            names = getattr(self, key)
            if len(names) != count or len(set(names)) != count or not all(names):
                raise ConfigError(f"{key}: expected {count} distinct joint names, got {names}")
        if set(self.arm_joints) & set(self.finger_joints):
            raise ConfigError(
                f"finger_joints: {sorted(set(self.arm_joints) & set(self.finger_joints))} "
                "also named in arm_joints; every joint needs its own name"
            )
        closed, open_ = self.gripper_closed_position, self.gripper_open_position
        if not (math.isfinite(closed) and math.isfinite(open_)) or closed == open_:
            raise ConfigError(
                f"gripper_closed_position {closed} / gripper_open_position {open_}: must be "
                "two different finite finger positions (Franka: 0.0 and 0.04 m)"
            )


PARAMETERS = SimRobotConfig  # the node's ROS parameters are this dataclass's (flattened) fields


def gripper_value(position: float, closed: float, open_: float) -> float:
    """The action contract's gripper value for a finger position command: +1 (close) when it is
    nearer the closed position than the open one, else -1 (open)."""
    return 1.0 if abs(position - closed) < abs(position - open_) else -1.0


def make_twin(cfg: SimRobotConfig):
    """The twin env stepped at state_hz, its per-step limits scaled from the speed limits."""
    import sim

    data = {}
    if cfg.env_config:
        from controllers.config import to_dict

        task, env_cfg = sim.load_env_config(cfg.env_config)
        if task != cfg.task:
            raise ConfigError(
                f"env_config: {cfg.env_config} is for task {task!r}, not {cfg.task!r}"
            )
        data = to_dict(env_cfg)
    data.update(
        control_hz=cfg.state_hz,
        pos_scale=cfg.max_speed / cfg.state_hz,
        rot_scale=cfg.max_angular_speed / cfg.state_hz,
        max_episode_steps=2**31 - 1,
        cameras=[],
        image_size=list(cfg.image_size),
    )
    return sim.make_env(cfg.task, data)


class _Job:
    """A request carried out by the loop thread between two steps (the env is that thread's
    alone); done once the object has come to rest after it."""

    def __init__(self, run: Callable[[], str]):
        self.run = run
        self.done = threading.Event()
        self.message = ""
        self.error = ""


class SimRobotNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim_robot", **kwargs)
        self.config = cfg = declare_config(self, SimRobotConfig)
        self.env = make_twin(cfg)
        unknown = sorted(set(cfg.cameras) - set(self.env.camera_specs))
        if unknown:
            raise ConfigError(
                f"cameras: {unknown} not in the twin's camera file "
                f"(it has {sorted(self.env.camera_specs)})"
            )
        self.privileged = cfg.profile == "privileged"
        self._lock = threading.Lock()
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self._gripper = 0.0
        self._episode = 0
        self._jobs: list[_Job] = []
        self._settling: _Job | None = None
        self._still = 0
        self._settle_deadline = 0.0
        self.steps = 0
        self.overruns = 0
        self.refused = 0
        self.exit_status = 0
        self._last_log: dict[str, float] = {}

        sensor = qos_profile_sensor_data
        self.joint_pub = self.create_publisher(JointState, "joint_states", sensor)
        self.pose_pub = self.create_publisher(PoseStamped, "current_pose", sensor)
        self.image_pubs = {
            n: self.create_publisher(Image, f"cameras/{n}/image_raw", sensor) for n in cfg.cameras
        }
        self.info_pubs = {
            n: self.create_publisher(CameraInfo, f"cameras/{n}/camera_info", sensor)
            for n in cfg.cameras
        }
        self.wrench_pub = (
            self.create_publisher(WrenchStamped, "wrench", sensor)
            if self.privileged or cfg.ft_sensor
            else None
        )
        if self.privileged:
            self.twist_pub = self.create_publisher(TwistStamped, "current_twist", sensor)
            self.object_pub = self.create_publisher(PoseStamped, "object_pose", sensor)
            self.success_pub = self.create_publisher(Float32, "reward/success_prob", sensor)
        self.truth_pose_pub = self.create_publisher(PoseStamped, "twin/object_pose", sensor)
        self.truth_success_pub = self.create_publisher(Bool, "twin/success", sensor)
        self.create_subscription(PoseStamped, "target_pose", self._on_target, 10)
        self.create_subscription(Float64MultiArray, GRIPPER_TOPIC, self._on_gripper, 10)
        self.create_service(Trigger, "twin/place_object", self._on_place_object)
        self.create_service(Trigger, "twin/reset", self._on_reset)
        self._obs, _ = self.env.reset(seed=cfg.seed)
        self._object = self.env.task.object_pose(self.env.data).copy()
        self._renderer = None
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="sim_robot", daemon=True)
        self._thread.start()

    # ---- inputs ----
    def _log_once_per_s(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= 1.0:
            self._last_log[key] = now
            self.get_logger().warning(text)

    def _on_target(self, msg: PoseStamped) -> None:
        pose = pose_array(msg)
        publishers = self.count_publishers("target_pose")
        if publishers > 1:
            self.refused += 1
            names = sorted({i.node_name for i in self.get_publishers_info_by_topic("target_pose")})
            self._log_once_per_s(
                "two",
                f"refusing target_pose: {publishers} publishers ({', '.join(names)}); "
                f"holding the current target until only one is left",
            )
            with self._lock:
                self._target = None
            return
        safety = self.env.config.safety
        problem = pose_problem(pose, safety.workspace_min, safety.workspace_max, TARGET_MARGIN_M)
        if problem:
            self.refused += 1
            self._log_once_per_s(
                "target", f"ignoring a target_pose: {problem}; holding the last target"
            )
            return
        with self._lock:
            self._target = (pose[:3], pose[3:] / np.linalg.norm(pose[3:]))

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        cfg = self.config
        try:
            position = gripper_command_position(msg)
        except ValueError:
            position = float("nan")
        lo, hi = sorted((cfg.gripper_closed_position, cfg.gripper_open_position))
        if not lo - GRIPPER_RANGE_TOL <= position <= hi + GRIPPER_RANGE_TOL:  # NaN fails too
            self.refused += 1
            self._log_once_per_s(
                "gripper",
                f"ignoring {GRIPPER_TOPIC} {list(msg.data)}: expected one finite finger position "
                f"between {cfg.gripper_closed_position} (closed) and "
                f"{cfg.gripper_open_position} (open); keeping the gripper as it is",
            )
            return
        value = gripper_value(position, cfg.gripper_closed_position, cfg.gripper_open_position)
        with self._lock:
            self._gripper = value

    def _on_place_object(self, request, response):
        def place() -> str:
            pose = self.env.place_object()
            return f"object placed at ({pose[0]:.3f}, {pose[1]:.3f}, {pose[2]:.3f})"

        return self._answer(place, response)

    def _on_reset(self, request, response):
        def reset() -> str:
            self._episode += 1
            self._obs, _ = self.env.reset(seed=self.config.seed + self._episode)
            with self._lock:
                self._target = None
                self._gripper = 0.0
            return f"episode {self._episode} started"

        return self._answer(reset, response)

    def _answer(self, run: Callable[[], str], response):
        """Hand `run` to the loop thread and answer once the object is at rest after it."""
        job = _Job(run)
        with self._lock:
            self._jobs.append(job)
        finished = job.done.wait(timeout=SETTLE_TIMEOUT_S + 5.0)
        response.success = finished and not job.error
        if not finished:
            response.message = "the twin's loop did not answer in time; is it still running?"
        else:
            response.message = job.error or job.message
        return response

    # ---- the real-time loop ----
    def _action(self) -> np.ndarray:
        """Delta action of the twin toward the newest target (clipped: the speed limits)."""
        with self._lock:
            target, gripper = self._target, self._gripper
        if target is not None:
            cur_pos, cur_quat = self.env.target_pose
            return action_from_target(cur_pos, cur_quat, *target, self.env.action_scales, gripper)
        action = np.zeros(ACTION_DIM)
        action[GRIPPER] = gripper
        return action

    def _run_jobs(self) -> None:
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            try:
                job.message = job.run()
            except Exception as exc:  # noqa: BLE001 - the caller gets the reason, the twin runs on
                job.error = f"{type(exc).__name__}: {exc}"
                job.done.set()
                continue
            if self._settling is not None:  # a newer request supersedes the one still settling
                self._settling.done.set()
            self._settling, self._still = job, 0
            self._settle_deadline = time.monotonic() + SETTLE_TIMEOUT_S
            self._object = self.env.task.object_pose(self.env.data).copy()

    def _track_settling(self, obj: np.ndarray) -> None:
        job = self._settling
        if job is None:
            return
        speed = float(np.linalg.norm(obj[:3] - self._object[:3])) * self.config.state_hz
        self._still = self._still + 1 if speed < SETTLE_SPEED else 0
        if self._still >= SETTLE_STEPS:
            self._settling = None
            job.done.set()
        elif time.monotonic() > self._settle_deadline:
            self._settling = None
            job.error = (
                f"the object did not come to rest within {SETTLE_TIMEOUT_S:.0f} s "
                f"(still moving at {speed:.3f} m/s)"
            )
            job.done.set()

    def _loop(self) -> None:
        cfg = self.config
        period = 1.0 / cfg.state_hz
        camera_every = max(1, round(cfg.state_hz / cfg.camera_fps))
        next_t = time.monotonic()
        while self._running:
            self._run_jobs()
            self._obs, _, success, _, _ = self.env.step(self._action())
            self.steps += 1
            stamp = time.time()
            obj = self.env.task.object_pose(self.env.data).copy()
            self._track_settling(obj)
            self._object = obj
            try:
                self._publish_state(stamp, success, obj)
                if self.steps % camera_every == 0:
                    self._publish_cameras(stamp)
            except Exception as exc:  # noqa: BLE001 - after Ctrl-C the context goes first: stop quietly
                if self.context.ok():
                    self.get_logger().error(
                        f"publishing failed, twin stopped: {type(exc).__name__}: {exc}"
                    )
                    self.exit_status = 1
                break
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -5 * period:  # fell far behind (CPU starved): resynchronise, say so
                self.overruns += 1
                self._log_once_per_s(
                    "late", f"twin is {-delay * 1000:.0f} ms behind real time; resynchronising"
                )
                next_t = time.monotonic()
        if self._renderer is not None:  # its GL context belongs to this thread
            self._renderer.close()
            self._renderer = None

    def _publish_state(self, stamp: float, success: bool, obj: np.ndarray) -> None:
        obs, cfg = self._obs, self.config
        frame = cfg.base_frame
        half = float(obs["gripper_width"][0]) / 2.0
        effort = np.asarray(self.env.data.actuator_force[:7])
        self.joint_pub.publish(
            joint_state_msg(
                cfg.arm_joints + cfg.finger_joints,
                np.r_[obs["joint_pos"], half, half],
                np.r_[obs["joint_vel"], 0.0, 0.0],
                np.r_[effort, 0.0, 0.0],
                stamp,
            )
        )
        self.pose_pub.publish(pose_msg(obs["tcp_pose"], stamp, frame))
        if self.wrench_pub is not None:
            self.wrench_pub.publish(wrench_msg(obs["wrench"], stamp, frame))
        self.truth_pose_pub.publish(pose_msg(obj, stamp, frame))
        self.truth_success_pub.publish(Bool(data=bool(success)))
        if self.privileged:
            self.twist_pub.publish(twist_msg(obs["tcp_vel"], stamp, frame))
            self.object_pub.publish(pose_msg(obj, stamp, frame))
            self.success_pub.publish(Float32(data=1.0 if success else 0.0))

    def _publish_cameras(self, stamp: float) -> None:
        import mujoco

        h, w = self.config.image_size
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.env.model, height=h, width=w)
            for flag in (
                mujoco.mjtRndFlag.mjRND_SHADOW,
                mujoco.mjtRndFlag.mjRND_REFLECTION,
                mujoco.mjtRndFlag.mjRND_SKYBOX,
            ):
                self._renderer.scene.flags[flag] = 0
        for name in self.config.cameras:
            self._renderer.update_scene(self.env.data, camera=name)
            frame_id = f"{name}_color_optical_frame"
            self.image_pubs[name].publish(image_msg(self._renderer.render(), stamp, frame_id))
            spec = self.env.camera_specs[name]
            K = spec.scaled_camera_matrix(w, h)
            self.info_pubs[name].publish(
                camera_info_msg(
                    w,
                    h,
                    K[0, 0],
                    K[1, 1],
                    K[0, 2],
                    K[1, 2],
                    "plumb_bob",
                    [0.0] * 5,
                    stamp,
                    frame_id,
                )
            )

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self.env.close()


def main(argv: list[str] | None = None) -> int:
    from nodes.spin import run_node

    return run_node(SimRobotNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
