"""The robot (real, or the twin behind `sim_robot`) as a gymnasium-style env over ROS topics.

This is what the actor loop (robot_rl.loop.actor.Actor) steps when it runs in the `actor` node:
- observation at the control tick from the newest message of each topic, each no older than
  `stale_s` and finite; otherwise no new target is published (the robot holds), one log line
  says which topic, and the env waits for the next tick;
- step(action): the twin's action -> target mapping (controllers.action: delta on the current
  target, gripper by thresholds), through controllers.safety, then `target_pose`
  and `gripper/command` -- refused, with a log line, while another node also publishes
  `target_pose`;
- episode end: success (`reward/success_prob` >= threshold or a teleop `success` event:
  terminated, reward 1), `failure` event (terminated, reward 0), `reset`/`pause` event or time
  limit (truncated); reset() calls the `reset` service and waits for fresh observations.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, String
from std_srvs.srv import Trigger

from controllers.action import GRIPPER, ActionScales, apply_action, check_action, gripper_class
from controllers.safety import SafetyFilter
from nodes.messages import STATE_TOPICS, TOPIC_TYPES, image_array, observation_value, pose_msg


class Newest:
    """The newest message of each subscribed topic with its (monotonic) arrival; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._msgs: dict[str, tuple[float, Any]] = {}

    def put(self, topic: str, msg: Any) -> None:
        with self._lock:
            self._msgs[topic] = (time.monotonic(), msg)

    def get(self, topic: str) -> tuple[float, Any] | None:
        with self._lock:
            return self._msgs.get(topic)


class RobotEnv:
    """gymnasium-style env (reset/step/observation_space) driving a robot through ROS topics."""

    def __init__(
        self,
        node,
        observation_space,
        env_config,
        safety_config,
        *,
        control_hz: float,
        stale_s: float,
        success_threshold: float,
        reset_timeout_s: float,
        hold_timeout_s: float,
    ):
        unknown = [
            k
            for k in observation_space.spaces
            if not k.startswith("image_") and k not in STATE_TOPICS
        ]
        if unknown:
            raise ValueError(
                f"observation key(s) {unknown} have no ROS topic; known: {sorted(STATE_TOPICS)}"
            )
        self.node = node
        self.observation_space = observation_space
        self.config = (
            env_config  # sim.config.EnvConfig: scales and max_episode_steps, as in training
        )
        self.scales = ActionScales(env_config.pos_scale, env_config.rot_scale)
        self.safety = SafetyFilter(safety_config)
        self.period = 1.0 / control_hz
        self.stale_s = stale_s
        self.success_threshold = success_threshold
        self.reset_timeout_s = reset_timeout_s
        self.hold_timeout_s = hold_timeout_s
        self.newest = Newest()
        self.keys = list(observation_space.spaces)
        self.topics = {
            k: (
                f"cameras/{k[len('image_') :]}/image_raw"
                if k.startswith("image_")
                else STATE_TOPICS[k]
            )
            for k in self.keys
        }
        for topic in sorted(set(self.topics.values()) | {"reward/success_prob"}):
            kind = Image if topic.endswith("image_raw") else TOPIC_TYPES.get(topic, Float32)
            node.create_subscription(
                kind, topic, lambda m, t=topic: self.newest.put(t, m), qos_profile_sensor_data
            )
        self._events: list[str] = []
        self._events_lock = threading.Lock()
        node.create_subscription(
            String,
            "teleop/event",
            self._on_event,
            QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE),
        )
        self.target_pub = node.create_publisher(PoseStamped, "target_pose", 10)
        self.gripper_pub = node.create_publisher(Float32, "gripper/command", 10)
        self.reset_client = node.create_client(Trigger, "reset")
        self._target_pos = np.zeros(3)
        self._target_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self._gripper = 0.0
        self._next_tick = time.monotonic()
        self._steps = 0
        self._said: dict[str, float] = {}
        self.holds = 0  # ticks without a new target (stale inputs or refused)
        self.stop_requested = threading.Event()

    # ---- inputs ----
    def _on_event(self, msg: String) -> None:
        with self._events_lock:
            self._events.append(msg.data)

    def _take_events(self) -> list[str]:
        with self._events_lock:
            events, self._events = self._events, []
        return events

    def _say(self, key: str, text: str, every_s: float = 2.0) -> None:
        """One clear log line per problem, repeated at most every `every_s` while it lasts."""
        now = time.monotonic()
        if now - self._said.get(key, -1e9) >= every_s:
            self._said[key] = now
            self.node.get_logger().warning(text)

    def observe(self) -> tuple[dict[str, np.ndarray] | None, str]:
        """The observation from the newest messages, or (None, why not)."""
        now, obs = time.monotonic(), {}
        for key, topic in self.topics.items():
            entry = self.newest.get(topic)
            if entry is None:
                return None, f"no message on {topic} yet"
            age = now - entry[0]
            if age > self.stale_s:
                return (
                    None,
                    f"{topic} is stale ({age * 1000:.0f} ms old > {self.stale_s * 1000:.0f} ms)",
                )
            space = self.observation_space.spaces[key]
            if key.startswith("image_"):
                value = image_array(entry[1])
                if value.shape != space.shape:
                    import cv2

                    value = cv2.resize(
                        value, (space.shape[1], space.shape[0]), interpolation=cv2.INTER_AREA
                    )
            else:
                value = observation_value(key, entry[1])
                if not np.all(np.isfinite(value)):
                    return None, f"{topic} holds non-finite values for {key}: {value.tolist()}"
                if value.shape != space.shape:
                    return (
                        None,
                        f"{topic} gives {key} of shape {value.shape}, expected {space.shape}",
                    )
            obs[key] = value.astype(space.dtype)
        return obs, ""

    def success_prob(self) -> float:
        entry = self.newest.get("reward/success_prob")
        if entry is None or time.monotonic() - entry[0] > self.stale_s:
            return float("nan")
        return float(entry[1].data)

    def initial_state(self) -> dict[str, np.ndarray]:
        """For replay: arm and finger joint positions from the newest joint_states, and the object
        pose where the cell tracks it (an `object_pose` topic this env reads)."""
        out = {}
        joints = self.newest.get("joint_states")
        if joints is not None:
            position = np.asarray(joints[1].position, np.float64)
            out["arm_joint_pos"] = position[:7]
            if len(position) >= 9:
                out["finger_joint_pos"] = position[7:9]
        tracked = self.newest.get("object_pose")
        if tracked is not None:
            out["object_pose"] = observation_value("object_pose", tracked[1])
        return out

    # ---- the control tick ----
    def _wait_tick(self) -> None:
        self._next_tick += self.period
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -self.period:  # a long stall (reset, held robot): restart the schedule
            self._next_tick = time.monotonic()

    def _observe_or_hold(self, timeout_s: float) -> dict[str, np.ndarray] | None:
        """Wait, tick by tick, for a usable observation; no target goes out meanwhile (the robot
        holds)."""
        deadline = time.monotonic() + timeout_s
        while not self.stop_requested.is_set():
            obs, why = self.observe()
            if obs is not None:
                return obs
            self.holds += 1
            self._say("hold", f"holding the robot: {why}; no new target until inputs are fresh")
            if time.monotonic() > deadline:
                return None
            self._wait_tick()
        return None

    def _publish_target(self) -> bool:
        publishers = self.node.count_publishers("target_pose")
        if publishers > 1:
            names = sorted(
                {i.node_name for i in self.node.get_publishers_info_by_topic("target_pose")}
            )
            self.holds += 1
            self._say(
                "two",
                f"refusing to publish target_pose: {publishers} publishers ({', '.join(names)}); "
                f"stop the other one",
            )
            return False
        stamp = time.time()
        target = np.concatenate([self._target_pos, self._target_quat])
        self.target_pub.publish(pose_msg(target, stamp))
        self.gripper_pub.publish(Float32(data=self._gripper))
        return True

    # ---- gymnasium API ----
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if not self.reset_client.wait_for_service(timeout_sec=self.reset_timeout_s):
            raise TimeoutError(f"reset service not available after {self.reset_timeout_s} s")
        done = threading.Event()
        future = self.reset_client.call_async(Trigger.Request())
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.reset_timeout_s) or not future.result().success:
            message = future.result().message if future.done() else "no answer"
            raise RuntimeError(f"reset failed: {message}")
        requested = time.monotonic()
        while any(
            (e := self.newest.get(t)) is None or e[0] <= requested
            for t in set(self.topics.values())
        ):
            if time.monotonic() - requested > self.reset_timeout_s:
                raise TimeoutError(f"no fresh observation within {self.reset_timeout_s} s of reset")
            time.sleep(0.01)
        obs = self._observe_or_hold(self.reset_timeout_s)
        if obs is None:
            raise TimeoutError("no usable observation after reset")
        self._target_pos = obs["tcp_pose"][:3].astype(np.float64)
        self._target_quat = obs["tcp_pose"][3:7].astype(np.float64)
        self._gripper = 0.0
        self.safety.reset(self._target_pos, self._target_quat, time.monotonic())
        self._take_events()
        self._steps = 0
        self._next_tick = time.monotonic()
        self._last_obs = obs
        return obs, {}

    def step(self, action: np.ndarray):
        a = check_action(action)
        cfg = self.config
        res = None
        if self.stop_requested.is_set():  # shutting down: publish nothing more, end the episode
            return (
                self._last_obs,
                0.0,
                False,
                True,
                {
                    "success": False,
                    "safety_clipped": False,
                    "safety_held": True,
                    "safety_reason": "stopping",
                    "success_prob": float("nan"),
                    "events": [],
                },
            )
        current, why = self.observe()
        if current is None:  # inputs went stale or non-finite since the policy looked: hold
            self.holds += 1
            self._say("hold", f"holding the robot: {why}; no new target until inputs are fresh")
        else:
            pos, quat = apply_action(self._target_pos, self._target_quat, a, self.scales)
            res = self.safety.filter(pos, quat, time.monotonic())
            self._target_pos, self._target_quat = res.pos, res.quat
            command = int(gripper_class(a[GRIPPER]))
            if command:
                self._gripper = float(command)
            self._publish_target()
        self._wait_tick()
        self._steps += 1
        obs = self._observe_or_hold(self.hold_timeout_s)
        events = self._take_events()
        prob = self.success_prob()
        success = "success" in events or (np.isfinite(prob) and prob >= self.success_threshold)
        terminated = success or "failure" in events
        truncated = (
            obs is None
            or self.stop_requested.is_set()
            or not terminated
            and (self._steps >= cfg.max_episode_steps or bool({"reset", "pause"} & set(events)))
        )
        if obs is None:  # inputs stayed stale: end the episode on the last good observation
            obs = self._last_obs
        self._last_obs = obs
        info = {
            "success": bool(success),
            "safety_clipped": bool(res and res.clipped),
            "safety_held": res is None or res.held,
            "safety_reason": res.reason if res else why,
            "success_prob": prob,
            "events": events,
        }
        return obs, 1.0 if success else 0.0, bool(terminated), bool(truncated), info

    def close(self) -> None:
        self.stop_requested.set()
