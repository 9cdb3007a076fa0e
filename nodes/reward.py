"""`reward` node: camera images -> `reward/success_prob` (std_msgs/Float32) at camera rate.

Loads any reward model directory (`robot-rl reward train|probe|zero-shot`, see docs/reward.md) and
subscribes to `cameras/<camera>/image_raw` for every camera it reads. Each new frame of the first
camera triggers one score once every camera has a frame no older than `max_skew_s` relative to it.
A classifier that also reads robot state (`classifier.proprio`, e.g. `tcp_pose`, `gripper_width`)
subscribes to the real-cell topics those keys come from, and to nothing else (`current_pose`, with
`tcp_vel` derived from its stamps as the actor does; `joint_states`; docs/interfaces.md), under the
same `max_skew_s` rule against the image stamp.
Scoring runs in its own thread on the newest frames only, so a slow model drops frames instead of
falling behind. Also published: `reward/success` (std_msgs/Bool, prob >= the model's threshold) and
`reward/latency` (std_msgs/Float32, seconds from the trigger image's stamp to publication).
A non-finite probability is logged and never published. Inputs are checked as they arrive
(nodes.input_checks): an image that cannot be decoded, a non-finite or non-unit TCP pose, a
JointState without the joints named by `arm_joints` / `finger_joints` or with lengths that disagree,
or anything stamped more than `max_stamp_offset_s` from this PC's clock is refused and named at
most once per topic per second; nothing is scored from it.
With no `model_dir` (no classifier trained yet) the node says so and publishes nothing: episodes
then end on the operator's success event only, and the actor's `robot.success_topic` must be "".
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32

from controllers.config import ConfigError
from controllers.velocity import PoseVelocityEstimator
from nodes.input_checks import (
    MAX_WRENCH,
    joint_state_problem,
    pose_problem,
    stamp_problem,
    vector_problem,
)
from nodes.messages import (
    FRANKA_ARM_JOINTS,
    FRANKA_FINGER_JOINTS,
    STATE_TOPICS,
    TOPIC_TYPES,
    from_time,
    image_array,
    observation_value,
    pose_array,
)
from nodes.params import declare_config


@dataclass
class RewardNodeConfig:
    # directory written by `robot-rl reward train|probe|zero-shot`; "" = none yet: publish nothing
    model_dir: str = ""
    threads: int = 1  # torch CPU threads for inference
    # where a trained classifier runs: auto (CUDA when present, else CPU), cpu, cuda, cuda:N, mps;
    # VLM rewards run on the CPU
    device: str = "auto"
    max_skew_s: float = (
        0.1  # frames of different cameras scored together are at most this far apart
    )
    threshold: float = -1.0  # success threshold; < 0 keeps the model's own (chosen on validation)
    # inputs stamped further than this from this PC's clock are refused (unsynced clocks)
    max_stamp_offset_s: float = 1.0
    # joint_states names (joint_pos, joint_vel, gripper_width), as the actor's robot.* takes them
    arm_joints: list[str] = field(default_factory=lambda: list(FRANKA_ARM_JOINTS))
    finger_joints: list[str] = field(default_factory=lambda: list(FRANKA_FINGER_JOINTS))

    def __post_init__(self) -> None:
        from robot_rl.agents.device import check_device_name  # imports torch

        check_device_name(self.device, "device")
        if self.threads < 1:
            raise ConfigError(f"threads: must be >= 1, got {self.threads}")
        if not 0.0 < self.max_skew_s < math.inf:
            raise ConfigError(f"max_skew_s: must be > 0 seconds, got {self.max_skew_s}")
        if not 0.0 < self.max_stamp_offset_s < math.inf:
            raise ConfigError(
                f"max_stamp_offset_s: must be > 0 seconds, got {self.max_stamp_offset_s}"
            )
        if self.threshold > 1.0:
            raise ConfigError(
                f"threshold: must be <= 1 (or < 0 for the model's own), got {self.threshold}"
            )


PARAMETERS = RewardNodeConfig  # the node's ROS parameters are this dataclass's fields


class RewardNode(Node):
    def __init__(self) -> None:
        super().__init__("reward")
        import torch

        from robot_rl.agents.device import resolve_device
        from robot_rl.reward import load_model

        self.config = declare_config(self, RewardNodeConfig)
        self.worker = None
        self._refused: dict[str, float] = {}
        if not self.config.model_dir:
            self.get_logger().warning(
                "reward: no model_dir, so no reward/success_prob: episodes end on the operator's "
                'success event only (the actor needs robot.success_topic: ""). Train a '
                "classifier with `robot-rl reward train` and set model_dir to its directory"
            )
            return
        if not Path(self.config.model_dir).is_dir():
            raise ConfigError(f"model_dir: no such directory {self.config.model_dir}")
        torch.set_num_threads(self.config.threads)
        device = str(resolve_device(self.config.device, "device"))
        try:
            self.model = load_model(self.config.model_dir, device)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"model_dir: {exc}") from exc
        if self.config.threshold >= 0:
            self.model.threshold = self.config.threshold
        self.size = (
            tuple(self.model.config.image_size)
            if hasattr(self.model.config, "image_size")
            else None
        )
        self.cameras = self.model.cameras
        unknown = [k for k in self.model.state_keys if k not in STATE_TOPICS]
        if unknown:
            raise ConfigError(
                f"model_dir: the model reads {unknown}, which no topic carries; "
                f"known: {sorted(STATE_TOPICS)}"
            )
        self.state: dict[str, tuple[float, np.ndarray]] = {}
        self.newest: dict[str, tuple[float, np.ndarray]] = {}
        self.pending = False
        self.cond = threading.Condition()
        self.running = True
        self.pub_prob = self.create_publisher(Float32, "reward/success_prob", 10)
        self.pub_success = self.create_publisher(Bool, "reward/success", 10)
        self.pub_latency = self.create_publisher(Float32, "reward/latency", 10)
        for cam in self.cameras:
            self.create_subscription(
                Image,
                f"cameras/{cam}/image_raw",
                lambda msg, cam=cam: self.on_image(cam, msg),
                qos_profile_sensor_data,
            )
        # the actor's default low-pass for the derived TCP velocity (robot.velocity_cutoff_hz)
        self.velocity = PoseVelocityEstimator(10.0)
        for topic in sorted({STATE_TOPICS[k] for k in self.model.state_keys}):
            keys = [k for k in self.model.state_keys if STATE_TOPICS[k] == topic]
            self.create_subscription(
                TOPIC_TYPES[topic],
                topic,
                lambda msg, keys=keys, topic=topic: self.on_state(topic, keys, msg),
                qos_profile_sensor_data,
            )
        self.worker = threading.Thread(target=self.score_loop, name="reward-score", daemon=True)
        self.worker.start()
        self.get_logger().info(
            f"reward: {type(self.model).__name__} from {self.config.model_dir}, "
            f"cameras {list(self.cameras)}, "
            f"state {list(self.model.state_keys)}, "
            f"threshold {self.model.threshold:.4f}"
        )

    def _refuse(self, topic: str, why: str) -> None:
        """Name a refused input, at most once a second per topic."""
        now = time.monotonic()
        if now - self._refused.get(topic, -math.inf) >= 1.0:
            self._refused[topic] = now
            self.get_logger().warning(f"refused a message on {topic}: {why}; not scored")

    def _stamp_problem(self, msg) -> str:
        return stamp_problem(
            from_time(msg.header.stamp), time.time(), self.config.max_stamp_offset_s
        )

    def on_image(self, camera: str, msg: Image) -> None:
        topic = f"cameras/{camera}/image_raw"
        if msg.encoding not in ("rgb8", "bgr8"):
            self._refuse(topic, f"encoding {msg.encoding!r}, expected rgb8 or bgr8")
            return
        try:
            frame = image_array(msg)
        except ValueError as exc:
            self._refuse(topic, str(exc))
            return
        why = self._stamp_problem(msg)
        if why:
            self._refuse(topic, why)
            return
        if msg.encoding == "bgr8":
            frame = frame[..., ::-1]
        if self.size is not None and frame.shape[:2] != self.size:
            import cv2

            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        with self.cond:
            self.newest[camera] = (from_time(msg.header.stamp), np.ascontiguousarray(frame))
            if camera == self.cameras[0]:
                self.pending = True
                self.cond.notify()

    def _state_problem(self, msg) -> str:
        if isinstance(msg, TOPIC_TYPES["joint_states"]):
            cfg = self.config
            missing = [n for n in (*cfg.arm_joints, *cfg.finger_joints) if n not in msg.name]
            if missing:
                return f"no joint(s) {missing} in it (arm_joints / finger_joints)"
            why = joint_state_problem(msg.name, msg.position, msg.velocity)
        elif isinstance(msg, TOPIC_TYPES["wrench"]):
            why = vector_problem("wrench", observation_value("wrench", msg), 6, MAX_WRENCH)
        else:
            why = pose_problem(pose_array(msg))
        return why or self._stamp_problem(msg)

    def on_state(self, topic: str, keys: list[str], msg) -> None:
        why = self._state_problem(msg)
        if why:
            self._refuse(topic, why)
            return
        stamp = from_time(msg.header.stamp)
        values = {}
        for key in keys:
            if key == "tcp_vel":
                twist = self.velocity.update(stamp, pose_array(msg))
                if twist is not None:
                    values[key] = np.asarray(twist, np.float32)
            else:
                try:
                    value = observation_value(
                        key, msg, self.config.arm_joints, self.config.finger_joints
                    )
                except KeyError as exc:  # joint_vel from a JointState without velocities
                    self._refuse(topic, str(exc.args[0]))
                    return
                values[key] = np.asarray(value, np.float32)
        with self.cond:
            self.state.update({k: (stamp, v) for k, v in values.items()})

    def score_loop(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.pending or not self.running)
                if not self.running:
                    return
                self.pending = False
                frames = dict(self.newest)
                state = dict(self.state)
            stamp = frames[self.cameras[0]][0]
            if any(
                c not in frames or abs(frames[c][0] - stamp) > self.config.max_skew_s
                for c in self.cameras
            ):
                # another camera is missing or too old: no score rather than a mismatched one
                continue
            if any(
                k not in state or abs(state[k][0] - stamp) > self.config.max_skew_s
                for k in self.model.state_keys
            ):
                self.get_logger().warning(
                    f"robot state {list(self.model.state_keys)} missing or more than "
                    f"{self.config.max_skew_s} s from the image; not scored",
                    throttle_duration_sec=5.0,
                )
                continue
            observation = {f"image_{c}": frames[c][1] for c in self.cameras}
            observation.update({k: v for k, (_, v) in state.items()})
            try:
                prob = float(self.model.predict_proba(observation)[0])
            except (
                ValueError
            ) as exc:  # e.g. a non-finite state value: no score rather than a wrong one
                self.get_logger().error(f"not scored: {exc}", throttle_duration_sec=5.0)
                continue
            if not math.isfinite(prob):
                self.get_logger().error(
                    "reward model gave a non-finite probability; not published",
                    throttle_duration_sec=5.0,
                )
                continue
            self.pub_prob.publish(Float32(data=prob))
            self.pub_success.publish(Bool(data=prob >= self.model.threshold))
            self.pub_latency.publish(Float32(data=float(time.time() - stamp)))

    def close(self) -> None:
        if self.worker is None:
            return
        with self.cond:
            self.running = False
            self.cond.notify()
        self.worker.join(timeout=5.0)


def main(argv: list[str] | None = None) -> int:
    from nodes.spin import run_node

    return run_node(RewardNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
