"""`actor` node: the actor loop (robot_rl.loop.actor.Actor) on a robot reached through ROS topics.

The robot is a real cell under CRISP's controllers or the twin behind `sim_robot`, spoken to through
the real-cell interface only (nodes.robot_env.RobotEnv, topic names in the `robot.*` parameters).
At start the node waits `robot.startup_timeout_s` for the first message of every topic it needs
and exits naming any that stayed silent. Each episode starts with the stack's own reset (home
through `target_pose`, then the object re-placement `reset.object` names); a reset that times out
holds the robot at its last target and ends the run (exit status 1): the operator checks the
controller and restarts the node.

Per control tick (10 Hz): observation from the newest messages, policy inference, the operator's
action in place of the policy's while `teleop/intervening` is true (converted from the teleop twist
into the policy's action frame, stored with intervened=True), safety filter, `target_pose` and the
gripper command. Modes: `train` streams step rows to the learner over ZeroMQ (robot_rl.transport);
`eval` runs the policy alone, ignores the operator and sends the learner no transitions; `demo`
lets the operator drive every step (the policy's proposal is recorded as policy_action) until a
`success`, `failure` or `reset` event or the step limit. When `store` is set, each finished episode
is committed to the zarr episode store (source `demo` for demonstrations).
`checkpoint` (with `mode: eval`) runs the policy of a checkpoint that `robot-rl train`, `learner` or
`demo` wrote instead of a fresh one; one of another task or observation layout than the run config
is refused at start-up, naming what differs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from std_msgs.msg import Bool, Float32

from controllers.action import ActionScales, action_from_twist
from controllers.config import ConfigError
from controllers.reset import ResetConfig, ResetTimeout
from controllers.se3 import quat_to_mat
from nodes.input_checks import vector_problem
from nodes.messages import twist_array
from nodes.params import declare_config
from nodes.robot_env import Newest, RobotEnv, RobotInterfaceConfig, Stopping
from robot_rl.store.tee import StoreTee
from sim.observation import observation_space


@dataclass
class ActorNodeConfig:
    run_config: str = ""  # required: the run YAML shared with the learner (task, env, sac, ...)
    learner_endpoint: str = ""  # "" = the run config's transport.endpoint; "none" = no learner
    actor_id: str = "ros-actor"
    spool_dir: str = "runs/ros_actor/spool"  # transitions wait here while the learner is away
    store: str = ""  # zarr episode store to commit episodes to; "" = none
    platform: Literal["sim", "real"] = "real"  # what is behind the topics (stored per episode)
    control_hz: float = 10.0
    stale_s: float = 0.3  # newest robot/camera message older than this at a tick: hold
    teleop_stale_s: float = 0.3  # teleop messages older than this do not count
    success_threshold: float = 0.5  # success probability at or above it ends the episode
    hold_timeout_s: float = 5.0  # inputs stale this long end the episode (truncated)
    episodes: int = 0  # stop after this many episodes; 0 = until stopped
    mode: Literal["train", "eval", "demo"] = "train"
    checkpoint: str = ""  # mode eval: a checkpoint directory to run; "" = a fresh policy
    seed: int = 0
    robot: RobotInterfaceConfig = field(default_factory=RobotInterfaceConfig)
    reset: ResetConfig = field(default_factory=ResetConfig)

    def __post_init__(self) -> None:
        for key in ("control_hz", "stale_s", "teleop_stale_s", "hold_timeout_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if self.episodes < 0:
            raise ConfigError(f"episodes: must be >= 0, got {self.episodes}")
        if self.checkpoint and self.mode != "eval":
            raise ConfigError(
                f"checkpoint: only used with mode eval (mode is {self.mode}); in train mode the "
                "learner's weights drive the actor: resume the learner from its checkpoint instead"
            )


PARAMETERS = ActorNodeConfig  # the node's ROS parameters are this dataclass's (flattened) fields


MAX_TWIST = 10.0  # m/s and rad/s: no teleop device commands anything near it


class TeleopOperator:
    """The human at the teleop device, as the operator robot_rl.loop.actor.Actor expects.

    While `teleop/intervening` is true, act() returns the human's action in the policy's frame: the
    twist (m/s, rad/s, world frame) integrated over one control period and divided by the env's
    per-step scales, gripper from `teleop/gripper`. Take-over and hand-back steps are logged and
    kept in `events` (RLIF-style: where the human judged the policy wrong). A twist that is not
    finite or above MAX_TWIST, a gripper value outside [-1, 1], or a twist in an unknown frame is
    refused (named at most once a second per topic): the human's action holds the robot still.
    """

    def __init__(self, node: Node, period: float, scales: ActionScales, stale_s: float):
        self.node = node
        self.period, self.scales, self.stale_s = period, scales, stale_s
        self.newest = Newest()
        for topic, kind in (
            ("teleop/twist", TwistStamped),
            ("teleop/intervening", Bool),
            ("teleop/gripper", Float32),
        ):
            node.create_subscription(kind, topic, lambda m, t=topic: self.newest.put(t, m), 10)
        self.events: list[dict[str, Any]] = []
        self._step = 0
        self._intervening = False
        self._demo = False
        self._said: dict[str, float] = {}

    def _fresh(self, topic: str):
        entry = self.newest.get(topic)
        if entry is None or time.monotonic() - entry[0] > self.stale_s:
            return None
        return entry[1]

    def start_episode(self, max_steps: int, demo: bool = False) -> None:
        """demo=True: the operator drives every step, with or without `teleop/intervening`."""
        self._step = 0
        self._intervening = False
        self._demo = demo
        self.events = []

    def end_episode(self, success: bool) -> None:
        if self._intervening:
            self._mark("hand_back")

    def _mark(self, kind: str) -> None:
        self.events.append({"step": self._step, "event": kind})
        self.node.get_logger().info(f"operator {kind.replace('_', ' ')} at step {self._step}")

    def act(self, obs: dict[str, np.ndarray], policy_action: np.ndarray) -> np.ndarray | None:
        flag = self._fresh("teleop/intervening")
        intervening = bool(flag is not None and flag.data)
        if intervening != self._intervening:
            self._mark("take_over" if intervening else "hand_back")
            self._intervening = intervening
        self._step += 1
        if not (intervening or self._demo):
            return None
        twist_msg, gripper_msg = self._fresh("teleop/twist"), self._fresh("teleop/gripper")
        # no fresh twist while intervening: the human holds the robot still
        twist = np.zeros(6) if twist_msg is None else self._world_twist(twist_msg, obs)
        gripper = 0.0 if gripper_msg is None else self._gripper(gripper_msg.data)
        return action_from_twist(twist, self.period, self.scales, gripper).astype(np.float32)

    def _refuse(self, topic: str, why: str) -> None:
        now = time.monotonic()
        if now - self._said.get(topic, -np.inf) >= 1.0:
            self._said[topic] = now
            self.node.get_logger().warning(f"refused {topic}: {why}; holding still instead")

    def _gripper(self, value: float) -> float:
        if not -1.0 <= value <= 1.0:  # NaN fails too
            self._refuse("teleop/gripper", f"gripper {value!r} is not in [-1, 1]")
            return 0.0
        return value

    def _world_twist(self, msg: TwistStamped, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The operator's twist in `world` (the policy's action frame); `tcp` twists are rotated by
        the current TCP orientation (a device mounted on, or thought of as, the tool)."""
        twist = twist_array(msg)
        frame = msg.header.frame_id or "world"
        why = vector_problem("twist", twist, 6, MAX_TWIST)
        if not why and frame not in ("world", "tcp"):
            why = f"frame {frame!r}, expected 'world' or 'tcp'"
        if why:
            self._refuse("teleop/twist", why)
            return np.zeros(6)
        if frame == "tcp":
            R = quat_to_mat(np.asarray(obs["tcp_pose"][3:7], np.float64))
            return np.concatenate([R @ twist[:3], R @ twist[3:]])
        return twist


class EvalClient:
    """The learner link of an evaluation run: weights and episode stats pass, transitions do not
    (nothing evaluated is learned from)."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def send(self, kind: str, arrays, policy_version: int = 0, meta=None) -> None:
        if kind != "transitions":
            self.client.send(kind, arrays, policy_version, meta)


class ActorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("actor", **kwargs)
        self.config = cfg = declare_config(self, ActorNodeConfig)
        self.run = run = self._run_config()
        import torch

        torch.set_num_threads(run.actor_torch_threads)
        from robot_rl.agents.sac import Policy
        from robot_rl.loop.actor import Actor, best_device

        device = best_device(run.actor_device)
        self.policy_version = 0
        self.policy = (
            self._checkpoint_policy(device)
            if cfg.checkpoint
            else Policy(run.obs_spec(), replace(run.sac, device=device))
        )
        env_cfg = run.env_config()
        self.env = RobotEnv(
            self,
            observation_space(env_cfg, run.task),
            self.policy.read_keys,
            env_cfg,
            cfg.robot,
            cfg.reset,
            control_hz=cfg.control_hz,
            stale_s=cfg.stale_s,
            success_threshold=cfg.success_threshold,
            hold_timeout_s=cfg.hold_timeout_s,
        )
        self.operator = TeleopOperator(
            self, 1.0 / cfg.control_hz, self.env.scales, cfg.teleop_stale_s
        )
        self.policy.warm_up()
        client = self._client()
        if client is not None and cfg.mode == "eval":
            client = EvalClient(client)
        self.tee = StoreTee(
            client,
            cfg.store,
            run.task,
            cfg.platform,
            run.data_hash(),
            env_config=run.env,
            fsync=run.store_fsync,
        )
        self.actor = Actor(
            self.env,
            self.policy,
            self.tee,
            batch_steps=run.transport.batch_steps,
            operator=self.operator,
            max_episode_steps=env_cfg.max_episode_steps,
        )
        self.actor.policy_version = self.policy_version  # stored with each step: which weights
        self.episodes_done = 0
        self.exit_status = 0
        self._thread = threading.Thread(target=self._loop, name="actor-loop", daemon=True)
        self._thread.start()

    def _run_config(self):
        from robot_rl.loop.run_config import load_run_config

        if not self.config.run_config:
            raise ConfigError(
                "run_config: empty; give the run YAML the learner uses (e.g. "
                "config/real_pick_cube.yaml on a real cell, config/sim_pick_cube.yaml in the twin)"
            )
        return load_run_config(self.config.run_config)

    def _checkpoint_policy(self, device: str):
        """The checkpoint's policy; ConfigError unless its task and observation layout are the
        run config's."""
        from robot_rl.agents.checkpoint import load_policy, read_checkpoint_info
        from robot_rl.loop.evaluation import layout_differences

        path, run = self.config.checkpoint, self.run
        try:
            info = read_checkpoint_info(path)
            if info.task != run.task:
                raise ConfigError(
                    f"{path} was trained on task {info.task!r}, but run_config "
                    f"{self.config.run_config} is for {run.task!r}; give a checkpoint of a "
                    f"{run.task} run or the run config it was trained with"
                )
            policy = load_policy(info, device)
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(f"checkpoint: {exc}") from exc
        diffs = layout_differences(info.obs_spec, run.obs_spec(), policy.read_keys)
        if diffs:
            raise ConfigError(
                f"checkpoint: {path} reads other observations than run_config "
                f"{self.config.run_config} gives:\n  "
                + "\n  ".join(diffs)
                + "\nuse the run config the checkpoint was trained with"
            )
        self.get_logger().info(
            f"policy from checkpoint {path} (policy version {info.policy_version})"
        )
        self.policy_version = info.policy_version
        return policy

    def _client(self):
        endpoint = self.config.learner_endpoint or self.run.transport.endpoint
        if endpoint == "none":
            return None
        from robot_rl.loop.actor import learner_client

        return learner_client(
            self.run, endpoint, self.config.actor_id, self.config.spool_dir, self.policy.read_keys
        )

    def _loop(self) -> None:
        cfg, log = self.config, self.get_logger()
        try:
            problem = self.env.wait_for_inputs(cfg.robot.startup_timeout_s)
            if problem:
                log.error(problem)
                self.exit_status = 1
                return
            while not self.env.stop_requested.is_set() and (
                cfg.episodes == 0 or self.episodes_done < cfg.episodes
            ):
                stats = self.actor.run_episode(cfg.mode, seed=cfg.seed + self.episodes_done)
                self.episodes_done += 1
                takeovers = [e["step"] for e in self.operator.events if e["event"] == "take_over"]
                log.info(
                    f"episode {stats.episode_id} ({cfg.mode}): {stats.steps} steps, success "
                    f"{stats.success}, {stats.intervened_steps} intervened steps, take-overs at "
                    f"steps {takeovers}, {self.env.holds} held ticks so far"
                )
                if self.tee.error:
                    log.error(f"learner refused this actor: {self.tee.error}")
                    self.exit_status = 1
                    break
        except Stopping:
            pass
        except ResetTimeout:  # already said by the env; the robot holds its last target
            self.exit_status = 1
        except Exception as exc:  # the loop thread must not die silently: say why and stop the node
            log.error(f"actor loop stopped: {type(exc).__name__}: {exc}")
            self.exit_status = 1
        finally:
            self.env.close()  # no target after this thread ends, whatever ended it
            self.tee.flush(timeout_s=5.0)
            if cfg.episodes or self.exit_status:
                self.context.try_shutdown()  # done (or broken): let the process exit

    def close(self) -> None:
        self.env.close()
        self._thread.join(timeout=5.0)
        self.tee.close()


def main(argv: list[str] | None = None) -> int:
    from nodes.spin import run_node

    logging.basicConfig(level=logging.INFO)
    return run_node(ActorNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
