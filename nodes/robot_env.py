"""The robot (a real cell under CRISP's controllers, or the twin behind `sim_robot`) as a
gymnasium-style env over ROS topics: what the actor loop (robot_rl.loop.actor.Actor) steps in the
`actor` node.

It speaks the real-cell interface only (topic names from RobotInterfaceConfig):
- in: `current_pose` (PoseStamped in `base_frame`; `tcp_vel` is derived from its stamps,
  controllers.velocity), `joint_states` (arm and finger joints matched by name, possibly in
  separate messages), `wrench` when the cell has an F/T sensor, `object_pose` only when the policy
  reads it, cameras, the reward node's success probability, the operator's `teleop/event`;
- out: `target_pose` and the gripper position controller's Float64MultiArray command, both
  published every control tick -- refused, with a log line, while another node also publishes
  `target_pose`.
Observation at the tick from the newest message of each topic, each no older than `stale_s` and
usable; otherwise no new target is published (the robot holds), one log line says which topic,
and the env waits for the next tick. Messages are checked as they arrive (nodes.input_checks):
non-finite or impossible values, a TCP pose more than `robot.workspace_margin_m` outside the
safety workspace, a non-unit quaternion, a frame other than `base_frame`, state stamped more than
`robot.max_stamp_offset_s` from this PC's clock, JointStates naming a joint twice or with lengths
that disagree, images that cannot be decoded, probabilities outside [0, 1], unknown operator
events. A refused message is named once per topic per second, and on the topics the observation
is built from it holds the robot for `stale_s` as a stale input does; so does the stack's reset.
step(action): the action contract (controllers.action), then controllers.safety. Episode end:
success (success probability >= threshold or a teleop `success` event: terminated, reward 1),
`failure` event (terminated, reward 0), `reset`/`pause` event, time limit, inputs stale for
`hold_timeout_s` or a tripped watchdog (truncated). reset() is the stack's own
(controllers.reset): home through `target_pose`, then the object re-placement the config names.
A watchdog timer on the node ends the episode and stops new targets when the control tick stalls
for longer than the safety config's `command_timeout_s`.
What the env is doing goes out on `actor/state` (std_msgs/String, reliable, latched for late
joiners) whenever it changes: `resetting`, `waiting_for_object` (the operator's part of the
reset: place the object, press reset), `running`, `holding` (inputs stale, no new target) or
`stopped`; a GUI, a person's terminal or the twin's scripted operator follows it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32, Float64MultiArray, String

from controllers.action import GRIPPER, ActionScales, apply_action, check_action, gripper_class
from controllers.config import ConfigError
from controllers.reset import Leg, LegClock, ResetConfig, ResetTimeout, reached, reset_plan
from controllers.safety import SafetyFilter
from controllers.velocity import PoseVelocityEstimator
from nodes.input_checks import (
    MAX_WRENCH,
    joint_state_problem,
    pose_problem,
    probability_problem,
    stamp_problem,
    vector_problem,
)
from nodes.messages import (
    FRANKA_ARM_JOINTS,
    FRANKA_FINGER_JOINTS,
    JointStates,
    from_time,
    gripper_command_msg,
    image_array,
    pose_array,
    pose_msg,
    wrench_array,
)
from sim.observation import N_ARM

EVENTS = ("success", "failure", "reset", "pause")  # what the operator's teleop/event may say

JOINT_KEYS = ("joint_pos", "joint_vel", "gripper_width")
ACTOR_STATES = ("resetting", "waiting_for_object", "running", "holding", "stopped")
ACTOR_STATE_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


@dataclass
class RobotInterfaceConfig:
    """How the actor reaches the robot: topic names, frame, joint names, gripper units."""

    current_pose_topic: str = "current_pose"
    target_pose_topic: str = "target_pose"
    joint_states_topic: str = "joint_states"
    gripper_command_topic: str = "gripper_position_controller/commands"
    wrench_topic: str = ""  # the F/T sensor's WrenchStamped topic; "" = the cell has none
    object_pose_topic: str = "object_pose"  # subscribed only when the policy reads object_pose
    success_topic: str = "reward/success_prob"  # "" = success only from the operator's event
    camera_topic: str = "cameras/{name}/image_raw"  # observation image_<name>
    base_frame: str = "world"  # frame_id of current_pose and target_pose
    arm_joints: list[str] = field(default_factory=lambda: list(FRANKA_ARM_JOINTS))
    finger_joints: list[str] = field(default_factory=lambda: list(FRANKA_FINGER_JOINTS))
    gripper_open_position: float = 0.04  # one finger's target when open, raw gripper units
    gripper_closed_position: float = 0.0
    velocity_cutoff_hz: float = 10.0  # low-pass of the derived TCP and joint velocities
    startup_timeout_s: float = 10.0  # every required topic must have sent a message by then
    # current_pose / object_pose further than this outside the safety workspace are refused
    workspace_margin_m: float = 0.1
    # state stamped further than this from the robot PC's clock is refused (unsynced clocks)
    max_stamp_offset_s: float = 1.0

    def __post_init__(self) -> None:
        for key in (
            "current_pose_topic",
            "target_pose_topic",
            "joint_states_topic",
            "gripper_command_topic",
            "base_frame",
        ):
            if not getattr(self, key):
                raise ConfigError(f"robot.{key}: must not be empty")
        if "{name}" not in self.camera_topic:
            raise ConfigError(
                f"robot.camera_topic: {self.camera_topic!r} needs a {{name}} placeholder for the "
                "camera name, e.g. cameras/{name}/image_raw"
            )
        if len(self.arm_joints) != N_ARM:
            raise ConfigError(
                f"robot.arm_joints: expected {N_ARM} joint names, got {len(self.arm_joints)}"
            )
        if not self.finger_joints:
            raise ConfigError("robot.finger_joints: name at least one finger joint")
        names = [*self.arm_joints, *self.finger_joints]
        if len(set(names)) != len(names):
            raise ConfigError(f"robot.arm_joints/finger_joints: a joint is named twice: {names}")
        if self.gripper_open_position == self.gripper_closed_position:
            raise ConfigError(
                "robot.gripper_open_position and gripper_closed_position are equal "
                f"({self.gripper_open_position}); give the finger targets of open and closed"
            )
        for key in (
            "velocity_cutoff_hz",
            "startup_timeout_s",
            "workspace_margin_m",
            "max_stamp_offset_s",
        ):
            if not 0 < getattr(self, key) < float("inf"):
                raise ConfigError(f"robot.{key}: must be > 0, got {getattr(self, key)}")


def type_name(kind: type) -> str:
    """The ROS type name of a message class, e.g. geometry_msgs/msg/PoseStamped."""
    return f"{kind.__module__.split('.')[0]}/msg/{kind.__name__}"


class Stopping(Exception):
    """The node is shutting down while the env waited."""


class Refusal(str):
    """Why the robot holds, when the cause is a refused message: already named by the refusal's
    own log line, so the hold does not name it again."""


class Newest:
    """The newest message of each subscribed topic with its (monotonic) arrival, and the newest
    refused one with why; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._msgs: dict[str, tuple[float, Any]] = {}
        self._refused: dict[str, tuple[float, str]] = {}

    def put(self, topic: str, msg: Any) -> None:
        with self._lock:
            self._msgs[topic] = (time.monotonic(), msg)

    def get(self, topic: str) -> tuple[float, Any] | None:
        with self._lock:
            return self._msgs.get(topic)

    def refuse(self, topic: str, why: str) -> None:
        with self._lock:
            self._refused[topic] = (time.monotonic(), why)

    def refused(self, topic: str) -> tuple[float, str] | None:
        with self._lock:
            return self._refused.get(topic)


class RobotEnv:
    """gymnasium-style env (reset/step/observation_space) driving a robot through ROS topics.

    `read_keys` are the observation keys the policy reads (robot_rl.agents.sac.Policy.read_keys):
    a key of the space the cell has no source for is filled with zeros only when the policy does
    not read it; one it reads is refused here (ConfigError naming the key and what to do).
    """

    def __init__(
        self,
        node,
        observation_space,
        read_keys,
        env_config,
        robot: RobotInterfaceConfig,
        reset: ResetConfig,
        *,
        control_hz: float,
        stale_s: float,
        success_threshold: float,
        hold_timeout_s: float,
    ):
        self.node = node
        self.observation_space = observation_space
        self.config = env_config  # sim.config.EnvConfig: scales and max_episode_steps, as trained
        self.robot, self.reset_config = robot, reset
        self.scales = ActionScales(env_config.pos_scale, env_config.rot_scale)
        self.safety = SafetyFilter(env_config.safety)
        self.watchdog_s = env_config.safety.command_timeout_s
        self.period = 1.0 / control_hz
        self.stale_s = stale_s
        self.success_threshold = success_threshold
        self.hold_timeout_s = hold_timeout_s
        self.keys = list(observation_space.spaces)
        self.zero_keys = self._plan_sources(set(read_keys))
        self.newest = Newest()
        self.joints = JointStates(
            [*robot.arm_joints, *robot.finger_joints], robot.velocity_cutoff_hz
        )
        self._joints_lock = threading.Lock()
        self._joint_names_seen: set[str] = set()
        self._velocity = PoseVelocityEstimator(robot.velocity_cutoff_hz)
        self.required = self._subscribe()  # topic -> message type, each needed before any tick
        self._events: list[str] = []
        self._events_lock = threading.Lock()
        node.create_subscription(
            String,
            "teleop/event",
            self._on_event,
            QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE),
        )
        self.target_pub = node.create_publisher(PoseStamped, robot.target_pose_topic, 10)
        self.gripper_pub = node.create_publisher(Float64MultiArray, robot.gripper_command_topic, 10)
        self.state_pub = node.create_publisher(String, "actor/state", ACTOR_STATE_QOS)
        self.state = ""
        self._target_pos = np.zeros(3)
        self._target_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self._gripper = -1  # +1 closed, -1 open
        self._next_tick = time.monotonic()
        self._steps = 0
        self._said: dict[str, float] = {}
        self.holds = 0  # ticks without a new target (stale inputs or refused)
        self.stop_requested = threading.Event()
        self._armed = False  # the watchdog watches the tick only while an episode runs
        self._tripped = False
        self._last_tick = time.monotonic()
        node.create_timer(min(self.period, self.watchdog_s) / 2, self.watchdog)

    # ---- set-up ----
    def _plan_sources(self, read_keys: set[str]) -> list[str]:
        """The keys filled with zeros; refuses keys the policy reads but the cell cannot give."""
        sources = {
            "tcp_pose": "current_pose",
            "tcp_vel": "current_pose",
            **dict.fromkeys(JOINT_KEYS, "joint_states"),
            "wrench": self.robot.wrench_topic,
            "object_pose": self.robot.object_pose_topic if "object_pose" in read_keys else "",
        }
        unknown = [k for k in self.keys if not k.startswith("image_") and k not in sources]
        if unknown:
            raise ValueError(
                f"observation key(s) {unknown} have no ROS topic; known: {sorted(sources)}"
            )
        missing = [k for k in self.keys if k in read_keys and sources.get(k) == ""]
        if missing:
            raise ConfigError(
                f"the policy reads observation key(s) {missing}, which this cell does not "
                "provide: "
                + "; ".join(
                    "set robot.wrench_topic to the F/T sensor's WrenchStamped topic"
                    if k == "wrench"
                    else f"set robot.{k}_topic to a topic publishing it (a tracker node)"
                    for k in missing
                )
                + ", or train a policy that does not read them (sac.proprio_keys without them)"
            )
        zeros = [k for k in self.keys if sources.get(k) == ""]
        if zeros:
            self.node.get_logger().info(
                f"observation key(s) {zeros} are filled with zeros: this cell has no source for "
                "them and the policy does not read them"
            )
        return zeros

    def _subscribe(self) -> dict[str, type]:
        r = self.robot
        required: dict[str, type] = {
            r.current_pose_topic: PoseStamped,
            r.joint_states_topic: JointState,
        }
        self.camera_topics = {
            k: r.camera_topic.format(name=k[len("image_") :])
            for k in self.keys
            if k.startswith("image_")
        }
        self.topics = {"wrench": r.wrench_topic, "object_pose": r.object_pose_topic}
        for key, topic in self.topics.items():
            if key in self.keys and key not in self.zero_keys:
                required[topic] = WrenchStamped if key == "wrench" else PoseStamped
        required.update({t: Image for t in self.camera_topics.values()})
        if r.success_topic:
            required[r.success_topic] = Float32
        callbacks = {r.current_pose_topic: self._on_pose, r.joint_states_topic: self._on_joints}
        values = {Image: self._image_value, WrenchStamped: self._wrench_value}
        values[PoseStamped] = self._object_value
        if r.success_topic:
            values[Float32] = self._probability_value
        for topic, kind in required.items():
            callback = callbacks.get(topic) or (
                lambda m, t=topic, v=values[kind]: self._accept(t, m, v)
            )
            self.node.create_subscription(kind, topic, callback, qos_profile_sensor_data)
        return required

    def _refuse(self, topic: str, why: str) -> None:
        """Keep a bad message out of the observation and name it (at most once a second)."""
        self.newest.refuse(topic, why)
        self._say(
            f"refused {topic}",
            f"refused a message on {topic}: {why}; the robot holds until {topic} is good again",
            every_s=1.0,
        )

    def _accept(self, topic: str, msg: Any, value) -> None:
        """Store `value(msg)` as the topic's newest, or refuse the message (ValueError says why)."""
        try:
            self.newest.put(topic, value(msg))
        except ValueError as exc:
            self._refuse(topic, str(exc))

    def _image_value(self, msg: Image) -> np.ndarray:
        if msg.encoding not in ("rgb8", "bgr8"):
            raise ValueError(f"encoding {msg.encoding!r}, expected rgb8 or bgr8")
        image = image_array(msg)
        return image[..., ::-1] if msg.encoding == "bgr8" else image

    def _wrench_value(self, msg: WrenchStamped) -> np.ndarray:
        wrench = wrench_array(msg)
        why = vector_problem("wrench", wrench, 6, MAX_WRENCH) or self._stamp_problem(msg)
        if why:
            raise ValueError(why)
        return wrench

    def _object_value(self, msg: PoseStamped) -> np.ndarray:
        pose = pose_array(msg)
        why = self._pose_problem(msg, pose)
        if why:
            raise ValueError(why)
        return pose

    def _probability_value(self, msg: Float32) -> float:
        why = probability_problem(msg.data)
        if why:
            raise ValueError(why)
        return float(msg.data)

    def _stamp_problem(self, msg: Any) -> str:
        return stamp_problem(
            from_time(msg.header.stamp), time.time(), self.robot.max_stamp_offset_s
        )

    def _pose_problem(self, msg: PoseStamped, pose: np.ndarray) -> str:
        """Why a pose message (TCP or object) cannot be used, or ""."""
        frame = msg.header.frame_id
        if frame and frame != self.robot.base_frame:
            return f"frame {frame!r}, expected {self.robot.base_frame!r} (robot.base_frame)"
        safety = self.config.safety
        return pose_problem(
            pose, safety.workspace_min, safety.workspace_max, self.robot.workspace_margin_m
        ) or self._stamp_problem(msg)

    def _on_pose(self, msg: PoseStamped) -> None:
        pose = pose_array(msg)
        why = self._pose_problem(msg, pose)
        if why:
            self._refuse(self.robot.current_pose_topic, why)
            return
        twist = self._velocity.update(from_time(msg.header.stamp), pose)
        self.newest.put(self.robot.current_pose_topic, (pose, twist))

    def _on_joints(self, msg: JointState) -> None:
        topic = self.robot.joint_states_topic
        why = joint_state_problem(msg.name, msg.position, msg.velocity) or self._stamp_problem(msg)
        if why:
            self._refuse(topic, why)
            return
        now = time.monotonic()
        with self._joints_lock:
            self.joints.put(msg, now)
            self._joint_names_seen.update(msg.name)
        self.newest.put(topic, None)

    def wait_for_inputs(self, timeout_s: float) -> str:
        """Wait up to `timeout_s` for the first message of every required topic (and every named
        joint); "" when all came, else one message naming what is missing and why it may be."""
        deadline = time.monotonic() + timeout_s
        while True:
            silent = [t for t in self.required if self.newest.get(t) is None]
            with self._joints_lock:
                joints = self.joints.missing(self.joints.names)
                seen = sorted(self._joint_names_seen)
            if not silent and not joints:
                return ""
            if time.monotonic() > deadline or self.stop_requested.is_set():
                break
            time.sleep(0.05)
        types = dict(self.node.get_topic_names_and_types())
        problems = []
        for topic in silent:
            expected = type_name(self.required[topic])
            found = [t for t in types.get(self.node.resolve_topic_name(topic), []) if t != expected]
            why = (
                f"{topic} has type {', '.join(found)}, expected {expected}"
                if found
                else f"{topic} ({expected}): no message"
            )
            problems.append(why)
        if joints and self.robot.joint_states_topic not in silent:
            problems.append(
                f"{self.robot.joint_states_topic}: no message named joint(s) {joints} (names seen: "
                f"{seen}); set robot.arm_joints / robot.finger_joints to the driver's names"
            )
        return (
            f"start-up: nothing arrived within {timeout_s:g} s on: {'; '.join(problems)}. Check "
            "that the robot's controllers, cameras and the reward node run, and the topic names in "
            "the actor's robot.* parameters"
        )

    def _set_state(self, state: str) -> None:
        """Say on `actor/state` what the env does now (once per change)."""
        if state != self.state and self.node.context.ok():
            self.state = state
            self.state_pub.publish(String(data=state))

    # ---- inputs ----
    def _on_event(self, msg: String) -> None:
        if msg.data not in EVENTS:
            self._say(
                "refused teleop/event",
                f"ignored teleop/event {msg.data[:40]!r}: expected one of {list(EVENTS)}",
                every_s=1.0,
            )
            return
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

    def _hold(self, why: str) -> None:
        """Count a tick without a new target and say why (a refusal has said it already)."""
        self.holds += 1
        if not isinstance(why, Refusal):
            self._say("hold", f"holding the robot: {why}; no new target until inputs are fresh")

    def _fresh(self, topic: str, now: float) -> tuple[Any, str]:
        refused = self.newest.refused(topic)
        if refused is not None and now - refused[0] <= self.stale_s:
            return None, Refusal(f"{topic} sent a message that was refused ({refused[1]})")
        entry = self.newest.get(topic)
        if entry is None:
            return None, f"no message on {topic} yet"
        age = now - entry[0]
        if age > self.stale_s:
            return (
                None,
                f"{topic} is stale ({age * 1000:.0f} ms old > {self.stale_s * 1000:.0f} ms)",
            )
        return entry[1], ""

    def current_pose(self) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """(fresh TCP pose in base_frame, its derived twist, "") or (None, None, why not)."""
        topic = self.robot.current_pose_topic
        entry, why = self._fresh(topic, time.monotonic())
        if entry is None:
            return None, None, why
        pose, twist = entry
        if twist is None:
            return None, None, f"no TCP velocity yet ({topic} needs two stamped messages)"
        return pose, twist, ""

    def observe(self) -> tuple[dict[str, np.ndarray] | None, str]:
        """The observation from the newest messages, or (None, why not)."""
        now = time.monotonic()
        pose, twist, why = self.current_pose()
        if pose is None:
            return None, why
        values: dict[str, np.ndarray] = {"tcp_pose": pose, "tcp_vel": twist}
        if any(k in self.keys for k in JOINT_KEYS):
            r = self.robot
            _, why = self._fresh(r.joint_states_topic, now)
            if why:
                return None, why
            with self._joints_lock:
                read = self.joints.read([*r.arm_joints, *r.finger_joints], now, self.stale_s)
            if isinstance(read, str):
                return None, read
            position, velocity = read
            values["joint_pos"], values["joint_vel"] = position[:N_ARM], velocity[:N_ARM]
            values["gripper_width"] = np.array([position[N_ARM:].sum()])
        obs = {}
        for key in self.keys:
            space = self.observation_space.spaces[key]
            if key in self.zero_keys:
                value = np.zeros(space.shape)
            elif key.startswith("image_"):
                msg, why = self._fresh(self.camera_topics[key], now)
                if msg is None:
                    return None, why
                value = msg
                if value.shape != space.shape:
                    import cv2

                    value = cv2.resize(
                        value, (space.shape[1], space.shape[0]), interpolation=cv2.INTER_AREA
                    )
            elif key in self.topics:
                msg, why = self._fresh(self.topics[key], now)
                if msg is None:
                    return None, why
                value = msg
            else:
                value = values[key]
            if not key.startswith("image_"):
                if not np.all(np.isfinite(value)):
                    return None, f"non-finite values for {key}: {np.asarray(value).tolist()}"
                if value.shape != space.shape:
                    return None, f"{key} has shape {value.shape}, expected {space.shape}"
            obs[key] = value.astype(space.dtype)
        return obs, ""

    def success_prob(self) -> float:
        if not self.robot.success_topic:
            return float("nan")
        prob, _ = self._fresh(self.robot.success_topic, time.monotonic())
        return float("nan") if prob is None else prob

    def initial_state(self) -> dict[str, np.ndarray]:
        """For replay: arm and finger joint positions from the newest joint_states, and the object
        pose where the cell tracks it (an `object_pose` topic this env reads)."""
        out = {}
        with self._joints_lock:
            position = self.joints.position.copy()
        if np.all(np.isfinite(position[:N_ARM])):
            out["arm_joint_pos"] = position[:N_ARM]
        if np.all(np.isfinite(position[N_ARM:])):
            out["finger_joint_pos"] = position[N_ARM:]
        if "object_pose" in self.keys and "object_pose" not in self.zero_keys:
            tracked = self.newest.get(self.topics["object_pose"])
            if tracked is not None:
                out["object_pose"] = tracked[1]
        return out

    # ---- the control tick ----
    def _wait_tick(self) -> None:
        if self.stop_requested.is_set():
            raise Stopping()
        self._next_tick += self.period
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -self.period:  # a long stall (reset, held robot): restart the schedule
            self._next_tick = time.monotonic()
        self._last_tick = time.monotonic()

    def watchdog(self) -> None:
        """Timer callback, independent of the control thread: a tick that stalls longer than
        command_timeout_s during an episode stops new targets until the next reset."""
        age = time.monotonic() - self._last_tick
        if self._armed and not self._tripped and age > self.watchdog_s:
            self._tripped = True
            self.node.get_logger().error(
                f"watchdog: no control tick for {age:.2f} s (safety.command_timeout_s "
                f"{self.watchdog_s:g} s): the policy thread stalled or died; no new targets until "
                "the next reset"
            )

    def _observe_or_hold(self, timeout_s: float) -> dict[str, np.ndarray] | None:
        """Wait, tick by tick, for a usable observation; no target goes out meanwhile (the robot
        holds)."""
        deadline = time.monotonic() + timeout_s
        while not self.stop_requested.is_set():
            obs, why = self.observe()
            if obs is not None:
                return obs
            if self._armed:
                self._set_state("holding")
            self._hold(why)
            if time.monotonic() > deadline:
                return None
            self._wait_tick()
        return None

    def _publish_target(self) -> bool:
        topic = self.robot.target_pose_topic
        publishers = self.node.count_publishers(topic)
        if publishers > 1:
            names = sorted({i.node_name for i in self.node.get_publishers_info_by_topic(topic)})
            self.holds += 1
            self._say(
                "two",
                f"refusing to publish {topic}: {publishers} publishers ({', '.join(names)}); "
                f"stop the other one",
            )
            return False
        target = np.concatenate([self._target_pos, self._target_quat])
        self.target_pub.publish(pose_msg(target, time.time(), self.robot.base_frame))
        r = self.robot
        position = r.gripper_closed_position if self._gripper > 0 else r.gripper_open_position
        self.gripper_pub.publish(gripper_command_msg(position))
        return True

    # ---- reset ----
    def _inputs_usable(self) -> bool:
        """Whether an observation can be built now; if not the reset holds (no target), said."""
        obs, why = self.observe()
        if obs is None:
            self._hold(why)
        return obs is not None

    def _run_leg(self, leg: Leg) -> None:
        """Drive one reset leg to its end at the control rate; ResetTimeout when it runs out."""
        clock = LegClock(leg, time.monotonic())
        if leg.gripper:
            self._gripper = leg.gripper
        if leg.waits_for_operator:
            self.node.get_logger().info(
                f"reset: place the object and press reset (waiting up to {leg.timeout_s:g} s)"
            )
            self._take_events()  # a press that ended the episode does not count
            self._set_state("waiting_for_object")
            while "reset" not in self._take_events():
                if self._inputs_usable():
                    self._publish_target()
                clock.check(time.monotonic())
                self._wait_tick()
            return
        while True:
            if self._inputs_usable():
                res = self.safety.filter(leg.pos, leg.quat, time.monotonic())
                self._target_pos, self._target_quat = res.pos, res.quat
                self._publish_target()
            self._wait_tick()
            pose, _, _ = self.current_pose()
            if pose is not None and reached(leg, pose[:3], pose[3:7], self.reset_config):
                return
            clock.check(time.monotonic(), *((pose[:3], pose[3:7]) if pose is not None else ()))

    # ---- gymnasium API ----
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Home through target_pose, then re-place the object as `reset.object` says; raises
        ResetTimeout (its message tells the operator what to check) when a leg runs out of time.
        """
        self._armed = False
        self._set_state("resetting")
        self._next_tick = time.monotonic()
        obs = self._observe_or_hold(self.reset_config.timeout_s)
        if obs is None and self.stop_requested.is_set():
            raise Stopping()
        if obs is None:
            raise ResetTimeout(
                f"reset: no usable observation within {self.reset_config.timeout_s:g} s; "
                "check the robot's topics (the log line above says which is missing)"
            )
        self.safety.reset(obs["tcp_pose"][:3], obs["tcp_pose"][3:7], time.monotonic())
        for leg in reset_plan(self.reset_config, np.random.default_rng(seed)):
            try:
                self._run_leg(leg)
            except ResetTimeout as exc:
                self.node.get_logger().error(f"{exc}; holding at the last target")
                raise
        obs = self._observe_or_hold(self.hold_timeout_s)
        if obs is None:
            raise ResetTimeout("reset: inputs went stale right after the reset")
        self._target_pos, self._target_quat = self.safety.last_safe
        self._take_events()
        self._steps = 0
        self._next_tick = self._last_tick = time.monotonic()
        self._tripped, self._armed = False, True
        self._last_obs = obs
        self._set_state("running")
        return obs, {}

    def step(self, action: np.ndarray):
        a = check_action(action)
        cfg = self.config
        res = None
        if self.stop_requested.is_set() or self._tripped:  # publish nothing more: end it
            self._armed = False
            return (
                self._last_obs,
                0.0,
                False,
                True,
                self._info(
                    None,
                    "stopping" if self.stop_requested.is_set() else "watchdog",
                    float("nan"),
                    [],
                ),
            )
        self._last_tick = time.monotonic()
        current, why = self.observe()
        if current is None:  # inputs went stale or non-finite since the policy looked: hold
            self._set_state("holding")
            self._hold(why)
        else:
            pos, quat = apply_action(self._target_pos, self._target_quat, a, self.scales)
            res = self.safety.filter(pos, quat, time.monotonic())
            self._target_pos, self._target_quat = res.pos, res.quat
            command = int(gripper_class(a[GRIPPER]))
            if command:
                self._gripper = command
            self._publish_target()
            self._set_state("running")
        try:
            self._wait_tick()
            obs = self._observe_or_hold(self.hold_timeout_s)
        except Stopping:
            obs = None
        self._steps += 1
        events = self._take_events()
        prob = self.success_prob()
        success = "success" in events or (np.isfinite(prob) and prob >= self.success_threshold)
        terminated = success or "failure" in events
        truncated = (
            obs is None
            or self.stop_requested.is_set()
            or self._tripped
            or not terminated
            and (self._steps >= cfg.max_episode_steps or bool({"reset", "pause"} & set(events)))
        )
        if obs is None:  # inputs stayed stale: end the episode on the last good observation
            obs = self._last_obs
        self._last_obs = obs
        if terminated or truncated:
            self._armed = False
        info = self._info(res, why, prob, events, success)
        return obs, 1.0 if success else 0.0, bool(terminated), bool(truncated), info

    @staticmethod
    def _info(res, why: str, prob: float, events: list[str], success: bool = False) -> dict:
        return {
            "success": bool(success),
            "safety_clipped": bool(res and res.clipped),
            "safety_held": res is None or res.held,
            "safety_reason": res.reason if res else why,
            "success_prob": prob,
            "events": events,
        }

    def close(self) -> None:
        self.stop_requested.set()
        self._set_state("stopped")
