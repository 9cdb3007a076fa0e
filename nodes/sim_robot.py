"""`sim_robot` node: the MuJoCo twin behind the robot's topics, in real time.

The twin (sim.make_env) is stepped at `state_hz` (100 Hz: each step runs physics_hz / state_hz
ticks of the controllers/ 1 kHz impedance law) against the wall clock. Each step moves the
twin's target toward the newest `target_pose` at most `max_speed` / `max_angular_speed` (the env's
own delta action and safety filter do the moving), then publishes `joint_states`, `current_pose`,
`current_twist`, `wrench`, `object_pose` (privileged, twin only) and `reward/success_prob`
(the task's true success, standing in for the classifier). Cameras render at `camera_fps` to
`cameras/<name>/image_raw` + `camera_info`. `gripper/command` (Float32: > 0.5 close, < -0.5 open)
drives the gripper; the `reset` service (std_srvs/Trigger) starts a new randomised episode.

A target that is not finite is ignored (the twin holds, one log line); while more than one node
publishes `target_pose` every target is refused and the twin holds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

from controllers.action import ACTION_DIM, GRIPPER, action_from_target
from controllers.config import ConfigError
from nodes.messages import (
    camera_info_msg,
    image_msg,
    joint_state_msg,
    pose_array,
    pose_msg,
    twist_msg,
    wrench_msg,
)
from nodes.params import declare_config

ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
FINGER_JOINTS = ["panda_finger_joint1", "panda_finger_joint2"]


@dataclass
class SimRobotConfig:
    task: str = "pick_cube"
    env_config: str = (
        ""  # experiment YAML (config/sim_*.yaml) whose `env:` shapes the twin; "" = defaults
    )
    state_hz: float = 100.0  # twin steps per second; state topics are published at this rate
    max_speed: float = 0.2  # m/s the twin's target may move toward target_pose
    max_angular_speed: float = 1.0  # rad/s
    cameras: list[str] = field(default_factory=lambda: ["front"])
    camera_fps: float = 15.0
    image_size: list[int] = field(default_factory=lambda: [128, 128])  # height, width
    seed: int = 0
    frame_id: str = "world"

    def __post_init__(self) -> None:
        for key in ("state_hz", "max_speed", "max_angular_speed", "camera_fps"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ConfigError(f"image_size: expected [height, width] >= 16, got {self.image_size}")


PARAMETERS = SimRobotConfig  # the node's ROS parameters are this dataclass's (flattened) fields


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


class SimRobotNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim_robot", **kwargs)
        self.config = cfg = declare_config(self, SimRobotConfig)
        self.env = make_twin(cfg)
        self._lock = threading.Lock()
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self._gripper = 0.0
        self._episode = 0
        self._reset_requested = threading.Event()
        self._reset_done = threading.Event()
        self.steps = 0
        self.overruns = 0
        self.refused = 0
        self.exit_status = 0
        self._last_log: dict[str, float] = {}

        sensor = qos_profile_sensor_data
        self.joint_pub = self.create_publisher(JointState, "joint_states", sensor)
        self.pose_pub = self.create_publisher(PoseStamped, "current_pose", sensor)
        self.twist_pub = self.create_publisher(TwistStamped, "current_twist", sensor)
        self.wrench_pub = self.create_publisher(WrenchStamped, "wrench", sensor)
        self.object_pub = self.create_publisher(PoseStamped, "object_pose", sensor)
        self.success_pub = self.create_publisher(Float32, "reward/success_prob", sensor)
        self.image_pubs = {
            n: self.create_publisher(Image, f"cameras/{n}/image_raw", sensor) for n in cfg.cameras
        }
        self.info_pubs = {
            n: self.create_publisher(CameraInfo, f"cameras/{n}/camera_info", sensor)
            for n in cfg.cameras
        }
        self.create_subscription(PoseStamped, "target_pose", self._on_target, 10)
        self.create_subscription(Float32, "gripper/command", self._on_gripper, 10)
        self.create_service(Trigger, "reset", self._on_reset)
        self._obs, _ = self.env.reset(seed=cfg.seed)
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
        if not np.all(np.isfinite(pose)) or not np.any(pose[3:]):
            self._log_once_per_s(
                "nan", f"ignoring target_pose {pose.tolist()}: not finite; holding"
            )
            return
        with self._lock:
            self._target = (pose[:3], pose[3:] / np.linalg.norm(pose[3:]))

    def _on_gripper(self, msg: Float32) -> None:
        if np.isfinite(msg.data):
            with self._lock:
                self._gripper = float(msg.data)

    def _on_reset(self, request, response):
        self._reset_done.clear()
        self._reset_requested.set()
        response.success = self._reset_done.wait(timeout=10.0)
        response.message = (
            f"episode {self._episode} started" if response.success else "reset timed out"
        )
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
        action[GRIPPER] = np.clip(gripper, -1.0, 1.0)
        return action

    def _loop(self) -> None:
        cfg = self.config
        period = 1.0 / cfg.state_hz
        camera_every = max(1, round(cfg.state_hz / cfg.camera_fps))
        next_t = time.monotonic()
        while self._running:
            if self._reset_requested.is_set():
                self._episode += 1
                self._obs, _ = self.env.reset(seed=cfg.seed + self._episode)
                with self._lock:
                    self._target = None
                    self._gripper = 0.0
                self._reset_requested.clear()
                self._reset_done.set()
            self._obs, _, success, _, _ = self.env.step(self._action())
            self.steps += 1
            stamp = time.time()
            try:
                self._publish_state(stamp, success)
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

    def _publish_state(self, stamp: float, success: bool) -> None:
        obs, frame = self._obs, self.config.frame_id
        half = float(obs["gripper_width"][0]) / 2.0
        effort = np.asarray(self.env.data.actuator_force[:7])
        self.joint_pub.publish(
            joint_state_msg(
                ARM_JOINTS + FINGER_JOINTS,
                np.r_[obs["joint_pos"], half, half],
                np.r_[obs["joint_vel"], 0.0, 0.0],
                np.r_[effort, 0.0, 0.0],
                stamp,
            )
        )
        self.pose_pub.publish(pose_msg(obs["tcp_pose"], stamp, frame))
        self.twist_pub.publish(twist_msg(obs["tcp_vel"], stamp, frame))
        self.wrench_pub.publish(wrench_msg(obs["wrench"], stamp, frame))
        if "object_pose" in obs:
            self.object_pub.publish(pose_msg(obs["object_pose"], stamp, frame))
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
