"""`twin_operator` node: a scripted person at the twin's table, standing where the human with the
SpaceMouse stands.

It looks at the table as a person does (the twin's ground truth `twin/object_pose` and
`twin/success`, plus `current_pose`, `joint_states` and the actor's `target_pose`) and speaks only
through the teleop topics, exactly as nodes/teleop.py does: `teleop/twist` (TwistStamped, world
frame), `teleop/intervening` (Bool), `teleop/gripper` (Float32, +1 close / -1 open) and
`teleop/event` (String, reliable). It never publishes `target_pose`.

`mode`:
- `demo`: drives every episode with the task's scripted expert (sim/experts), its action turned
  into a twist through the action contract (controllers.action);
- `intervene`: takes over when the policy stalls or drifts, as the twin's scripted HIL operator
  does (robot_rl.loop.operator.ScriptedOperator); the policy's action is what the person sees the
  robot being commanded: the step between two `target_pose` messages;
- `watch`: only the reset.
In every mode it does the person's part of the reset: when `actor/state` says
`waiting_for_object`, it re-places the object (service `twin/place_object`) and presses `reset`.
With `mark_success` it presses `success` `success_delay_s` after `twin/success` first turns true
during an episode, as a person who sees the object lifted and then reaches for the button (the
episode's last frames, which a classifier learns success from, then lie past the success line).
With `outcomes` set it appends one JSON line per episode to that file: the episode's start and end
(unix seconds), whether the twin's ground truth saw the task done during it, and how many ticks the
person drove: the score a harness (robot-rl rehearse) reads, since nothing in the stack may.

Only this node and evaluation harnesses may read the twin's ground truth; the stack's own nodes
(actor, reward, teleop, tracker) never do.

A pose that is not finite, whose quaternion is not a unit one or that lies more than 0.1 m outside
the safety workspace, joint states without the finger joints or that cannot be matched joint by
joint, and an actor state it does not know are refused, named once a second: the person
then sees nothing new and, once the last good message is `stale_s` old, stops driving.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Literal

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float32, String
from std_srvs.srv import Trigger

from controllers.action import GRIPPER, ActionScales, action_from_target, twist_from_action
from controllers.config import ConfigError
from nodes.input_checks import joint_state_problem, pose_problem
from nodes.messages import (
    FRANKA_FINGER_JOINTS,
    JointStates,
    pose_array,
    twist_msg,
)
from nodes.params import declare_config
from nodes.robot_env import ACTOR_STATE_QOS, ACTOR_STATES

# a pose this far outside the safety workspace is not what a person sees on the table
WORKSPACE_MARGIN_M = 0.1
# tasks whose scripted expert needs nothing of the twin but the object's pose
EXPERT_TASKS = ("pick_cube",)


@dataclass
class TwinOperatorConfig:
    mode: Literal["demo", "intervene", "watch"] = "demo"
    run_config: str = ""  # required: the actor's run YAML (task, action scales, operator.*)
    control_hz: float = 10.0  # the actor's control rate: one decision per tick
    stale_s: float = 0.3  # newest robot/ground-truth message older than this: hands off
    mark_success: bool = True  # press `success` when the twin's ground truth says so
    success_delay_s: float = 0.5  # ... this long after it first said so
    finger_joints: list[str] = field(default_factory=lambda: list(FRANKA_FINGER_JOINTS))
    outcomes: str = ""  # JSONL file of per-episode ground-truth outcomes; "" = none

    def __post_init__(self) -> None:
        for key in ("control_hz", "stale_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if self.success_delay_s < 0:
            raise ConfigError(f"success_delay_s: must be >= 0, got {self.success_delay_s}")
        if not self.finger_joints:
            raise ConfigError("finger_joints: name the gripper's finger joints")


PARAMETERS = TwinOperatorConfig  # the node's ROS parameters are this dataclass's (flattened) fields


class TableView:
    """What a person at the table sees, shaped the way the scripted experts read the twin
    (`env.unwrapped.task`, `.data.xpos/.xquat`, `.target_pose`, `.action_scales`)."""

    def __init__(self, task: str, scales: ActionScales):
        self.unwrapped = self
        self.task = SimpleNamespace(name=task, object_id=0)
        self.data = SimpleNamespace(xpos=np.zeros((1, 3)), xquat=np.array([[1.0, 0, 0, 0]]))
        self.action_scales = scales
        self.target_pose = (np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]))

    def see(self, object_pose: np.ndarray, target: np.ndarray) -> None:
        self.data.xpos[0], self.data.xquat[0] = object_pose[:3], object_pose[3:7]
        self.target_pose = (target[:3], target[3:7])


class TwinOperatorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("twin_operator", **kwargs)
        self.config = cfg = declare_config(self, TwinOperatorConfig)
        if not cfg.run_config:
            raise ConfigError(
                "run_config: empty; give the actor's run YAML (e.g. config/real_pick_cube.yaml)"
            )
        from robot_rl.loop.operator import ScriptedOperator
        from robot_rl.loop.run_config import load_run_config
        from sim.experts import EXPERTS

        run = load_run_config(cfg.run_config)
        if cfg.mode != "watch" and run.task not in EXPERT_TASKS:
            raise ConfigError(
                f"mode {cfg.mode}: the twin operator drives only {list(EXPERT_TASKS)} (experts "
                f"that need nothing but the object's pose); for {run.task} use mode watch"
            )
        env = run.env_config()
        self.workspace = (env.safety.workspace_min, env.safety.workspace_max)
        self.scales = ActionScales(env.pos_scale, env.rot_scale)
        self.period = 1.0 / cfg.control_hz
        self.max_steps = env.max_episode_steps
        self.view = TableView(run.task, self.scales)
        self.expert = EXPERTS[run.task](self.view) if run.task in EXPERTS else None
        self.operator = (
            ScriptedOperator(self._expert_act, run.operator) if cfg.mode != "watch" else None
        )
        self.newest: dict[str, tuple[float, object]] = {}
        self.joints = JointStates(cfg.finger_joints, velocity_cutoff_hz=10.0)
        self._last_target: np.ndarray | None = None
        self.actor_state = ""
        self.success_sent = False
        self.success_seen = False
        self.success_at = 0.0
        self.placing = False
        self.reset_pressed = False
        self.driving_steps = 0
        self.episodes = 0
        self.episode_start = 0.0
        self.episode_driven = 0

        sensor = qos_profile_sensor_data
        for topic, kind in (("current_pose", PoseStamped), ("twin/object_pose", PoseStamped)):
            self.create_subscription(kind, topic, lambda m, t=topic: self._put(t, m), sensor)
        self.create_subscription(Bool, "twin/success", self._on_success, sensor)
        self.create_subscription(JointState, "joint_states", self._on_joints, sensor)
        self.create_subscription(PoseStamped, "target_pose", self._on_target, 10)
        self.create_subscription(String, "actor/state", self._on_actor_state, ACTOR_STATE_QOS)
        self.twist_pub = self.create_publisher(TwistStamped, "teleop/twist", 10)
        self.intervening_pub = self.create_publisher(Bool, "teleop/intervening", 10)
        self.gripper_pub = self.create_publisher(Float32, "teleop/gripper", 10)
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        self.event_pub = self.create_publisher(String, "teleop/event", reliable)
        self.place_client = self.create_client(Trigger, "twin/place_object")
        self.create_timer(self.period, self._tick)
        self.get_logger().info(f"twin operator: mode {cfg.mode}, task {run.task}")

    # ---- what the person sees ----
    def _put(self, topic: str, msg) -> None:
        problem = pose_problem(pose_array(msg), *self.workspace, WORKSPACE_MARGIN_M)
        if problem:
            self._refuse(topic, problem)
            return
        self.newest[topic] = (time.monotonic(), msg)

    def _refuse(self, topic: str, why: str) -> None:
        self.get_logger().warning(f"refused a message on {topic}: {why}", throttle_duration_sec=1.0)

    def _fresh(self, topic: str):
        entry = self.newest.get(topic)
        if entry is None or time.monotonic() - entry[0] > self.config.stale_s:
            return None
        return entry[1]

    def _on_success(self, msg: Bool) -> None:
        # every twin step's verdict counts, not only those a 10 Hz tick samples: an episode the
        # classifier ends as the object crosses the line was a success if the twin saw it cross
        if msg.data and not self.success_seen and self.actor_state in ("running", "holding"):
            self.success_seen, self.success_at = True, time.monotonic()

    def _on_joints(self, msg: JointState) -> None:
        missing = [n for n in self.config.finger_joints if n not in msg.name]
        problem = joint_state_problem(msg.name, msg.position, msg.velocity)
        if missing:
            problem = f"no finger joint(s) {missing} in it (finger_joints)"
        if problem:
            self._refuse("joint_states", problem)
            return
        self.joints.put(msg, time.monotonic())

    def _on_target(self, msg: PoseStamped) -> None:
        self._put("target_pose", msg)

    def _expert_act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.expert.act(obs)

    def _observe(self) -> dict[str, np.ndarray] | None:
        pose, obj = self._fresh("current_pose"), self._fresh("twin/object_pose")
        target = self._fresh("target_pose")
        fingers = self.joints.read(self.config.finger_joints, time.monotonic(), self.config.stale_s)
        if pose is None or obj is None or target is None or isinstance(fingers, str):
            return None
        self.view.see(pose_array(obj), pose_array(target))
        return {"tcp_pose": pose_array(pose), "gripper_width": np.array([fingers[0].sum()])}

    def _policy_action(self) -> np.ndarray:
        """The step the robot was last commanded, as an action (zeros before two targets)."""
        target = pose_array(self._fresh("target_pose"))
        previous, self._last_target = self._last_target, target
        if previous is None:
            return np.zeros(GRIPPER + 1)
        return action_from_target(previous[:3], previous[3:7], target[:3], target[3:7], self.scales)

    # ---- the episode, as the actor reports it ----
    def _on_actor_state(self, msg: String) -> None:
        if msg.data not in ACTOR_STATES:
            self._refuse("actor/state", f"unknown actor state {msg.data[:40]!r}")
            return
        state, before = msg.data, self.actor_state
        self.actor_state = state
        if state == before:
            return
        self.get_logger().info(f"actor: {state}")
        if state == "running" and before != "holding":
            self.success_sent = self.success_seen = False
            self.episode_start, self.episode_driven = time.time(), 0
            self._last_target = None
            if self.expert is not None:
                self.expert.reset()
            if self.operator is not None:
                self.operator.start_episode(self.max_steps, demo=self.config.mode == "demo")
        elif state in ("resetting", "stopped") and before in ("running", "holding"):
            self.episodes += 1
            if self.operator is not None:
                self.operator.end_episode(self.success_seen)
            self._record_outcome()
        if state == "waiting_for_object":
            self.reset_pressed = False
            self._place_object()

    def _record_outcome(self) -> None:
        if not self.config.outcomes:
            return
        line = {
            "start_time": self.episode_start,
            "end_time": time.time(),
            "success": self.success_seen,
            "driven_ticks": self.episode_driven,
        }
        with open(self.config.outcomes, "a") as f:
            f.write(json.dumps(line) + "\n")

    def _place_object(self) -> None:
        if self.placing:
            return
        if not self.place_client.service_is_ready():
            self.get_logger().warning(
                "twin/place_object is not available yet: is sim_robot running? retrying",
                throttle_duration_sec=2.0,
            )
            return
        self.placing = True
        self.place_client.call_async(Trigger.Request()).add_done_callback(self._placed)

    def _placed(self, future) -> None:
        self.placing = False
        result = future.result()
        if result is None or not result.success:
            why = "no answer" if result is None else result.message
            self.get_logger().error(f"twin/place_object failed ({why}); trying again")
            return
        self.get_logger().info(f"{result.message}; pressing reset")
        self.reset_pressed = True
        self.event_pub.publish(String(data="reset"))

    # ---- the person's hands ----
    def _tick(self) -> None:
        if self.actor_state == "waiting_for_object" and not self.reset_pressed:
            self._place_object()  # again, if the last try failed
        running = self.actor_state in ("running", "holding")
        pressing = running and self.success_seen and self.config.mark_success
        if (
            pressing
            and not self.success_sent
            and time.monotonic() - self.success_at >= self.config.success_delay_s
        ):
            self.success_sent = True
            self.get_logger().info("the object is lifted: pressing success")
            self.event_pub.publish(String(data="success"))
        action = None
        if running and self.operator is not None:
            obs = self._observe()
            if obs is not None:
                action = self.operator.act(obs, self._policy_action())
        if action is None:
            self.intervening_pub.publish(Bool(data=False))
            return
        self.driving_steps += 1
        self.episode_driven += 1
        twist = twist_from_action(action, self.period, self.scales)
        self.twist_pub.publish(twist_msg(twist, time.time(), "world"))
        self.intervening_pub.publish(Bool(data=True))
        self.gripper_pub.publish(Float32(data=float(np.sign(action[GRIPPER]))))

    def close(self) -> None:
        # an actor stopped mid-episode may not get its `stopped` out before its context shuts down:
        # log the episode as far as the person saw it
        if self.actor_state in ("running", "holding"):
            self.actor_state = "stopped"
            self._record_outcome()


def main(argv: list[str] | None = None) -> int:
    from nodes.spin import run_node

    return run_node(TwinOperatorNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
