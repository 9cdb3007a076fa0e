"""Hostile-input run: every node survives any message on every topic it subscribes to.

`python -m nodes.hostile [--messages N] [--targets ...]` (or `robot-rl bench hostile-ros`) starts
each target node as its own process -- the actor in train mode (no learner) and in demo mode, the
reward node on a small proprio classifier, the tracker, the twin's `sim_robot` and the scripted
person `twin_operator` in demo mode -- feeds it a legitimate cell from this process until it runs
(a scripted CRISP cell whose TCP follows `target_pose`, a camera, an F/T sensor, a success
probability, idle teleop; a rendered marker cube for the tracker; for sim_robot, targets at the
pose it first reports, so that it must stay there; for the operator, a running actor and a cube
to pick), then floods
each subscribed topic with N hostile messages (nodes.hostile_messages): the first half mixed with
the legitimate stream, the second half replacing it (only messages a node must refuse, spread over
at least `--hold-s` seconds). Recorded per topic and node, printed as one JSON line:
- the node is alive at the end (else its exit status) and logged no traceback;
- `bad_outputs`: outputs (`target_pose`, `reward/success_prob`, `object_pose`, sim_robot's
  `current_pose`, the operator's `teleop/twist`) that are non-finite or impossible (a target
  outside the safety workspace, a non-unit quaternion, a probability outside [0, 1], a TCP that
  left the only legitimate target, a twist above MAX_TWIST); must be 0;
- `outputs_while_held`: outputs published while a topic the output is built from carried only
  refused messages (after `stale_s` plus two control ticks for the last good one to age); must be 0;
- `mean_warning_interval_s`: the mean time between the node's warning/error lines naming the
  topic (named once a second: >= ~1 s), and `max_warnings_per_s`, the most in one calendar second
  (<= 2: scheduling jitter can put two lines 0.95 s apart);
- `recovered_s`: time from the legitimate stream's return to the node's next output.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from controllers.safety import SafetyConfig
from nodes.bench_ros import ros_env
from nodes.hostile_messages import VARIANTS, hostile_stream
from nodes.input_checks import pose_problem, probability_problem, vector_problem

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("actor_train", "actor_demo", "reward", "tracker", "sim_robot", "twin_operator")
HOME = [0.5, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0]
ARM = [f"panda_joint{i}" for i in range(1, 8)]
FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]
WRENCH_TOPIC = "ft_sensor/wrench"
STALE_S = 0.3  # the actor's and reward node's staleness bound in this run
LOG_LINE = re.compile(r"^\[(WARN|ERROR|FATAL)\] \[((\d+)\.\d+)\] \[[^\]]*\]: (.*)$")
TRACKER_INFO = (640, 480, 605.0, 605.0, 320.0, 240.0)  # the rendered front camera's intrinsics
CUBE = [0.55, 0.05, 0.02, 1.0, 0.0, 0.0, 0.0]  # where the twin operator sees the object
HELD_DRIFT_M = 0.02  # sim_robot, targeted at its own pose: any farther and it followed a bad one
MAX_TWIST = 1.0  # m/s and rad/s: far above any teleop twist the twin operator sends


@dataclass
class Target:
    """One node under test: how to start it, which topics to flood, what it outputs."""

    name: str
    module: str
    params: dict[str, Any]
    topics: dict[str, type]  # every topic it subscribes to, with its message type
    holds: set[str]  # topics whose refused messages must stop the output
    output: tuple[str, type]
    # why an output message is impossible, or ""; given the output and the legitimate pose
    output_problem: Callable[[Any, np.ndarray], str]
    ready_timeout_s: float = 120.0
    # outputs carry their input's stamp (the tracker): a late one from a good input is no hold
    # broken, so the hold is judged by stamp rather than arrival
    stamped_output: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _pose_output_problem(lo, hi) -> Callable[[Any, np.ndarray], str]:
    from nodes.messages import pose_array

    def problem(msg, legit_pose: np.ndarray) -> str:
        # the safety filter clips into the box: anything outside it (bar rounding) is a bad target
        return pose_problem(pose_array(msg), lo, hi, margin=1e-6)

    return problem


def _held_pose_problem(msg, legit_pose: np.ndarray) -> str:
    """sim_robot's TCP, when every legitimate target is where it stood: it must stay there."""
    from nodes.messages import pose_array

    pose = pose_array(msg)
    problem = pose_problem(pose)
    drift = float(np.linalg.norm(pose[:3] - legit_pose[:3]))
    if not problem and drift > HELD_DRIFT_M:
        problem = f"TCP {drift:.3f} m from the only legitimate target"
    return problem


def _twist_problem(msg, legit_pose: np.ndarray) -> str:
    from nodes.messages import twist_array

    return vector_problem("teleop twist", twist_array(msg), 6, MAX_TWIST)


def _run_config(tmp: Path) -> Path:
    """A small real-cell run: one 64x64 camera and an F/T sensor observed, a proprio policy."""
    path = tmp / "run.yaml"
    run = {
        "task": "pick_cube",
        "env": {
            "cameras": ["front"],
            "image_size": [64, 64],
            "privileged_state": False,
            "max_episode_steps": 100,
            # ticks may stall while the flood and the node share two cores: that is not the
            # robustness measured here
            "safety": {"command_timeout_s": 3.0},
        },
        "demos": 0,
        "sac": {
            "hidden": [32, 32],
            "num_critics": 2,
            "proprio_keys": ["tcp_pose", "tcp_vel", "gripper_width", "joint_pos", "wrench"],
            "image_keys": [],
        },
    }
    path.write_text(yaml.safe_dump(run))
    return path


def _reward_model(tmp: Path) -> Path:
    """An untrained classifier reading the front camera, TCP pose and gripper width."""
    import torch

    from robot_rl.reward.classifier import ClassifierConfig, ProprioConfig, SuccessClassifier

    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = ClassifierConfig(
        proprio=(ProprioConfig("gripper_width", 1), ProprioConfig("tcp_pose", 7))
    )
    return SuccessClassifier(config, threshold=0.5).save(tmp / "reward_model")


def targets(names: list[str], tmp: Path) -> list[Target]:
    from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import Bool, Float32, Float64MultiArray, String

    safety = SafetyConfig()
    out = []
    for name in names:
        if name.startswith("actor"):
            out.append(
                Target(
                    name,
                    "nodes.actor",
                    {
                        "run_config": str(_run_config(tmp)),
                        "learner_endpoint": "none",
                        "store": str(tmp / f"{name}.zarr"),
                        "spool_dir": str(tmp / f"{name}_spool"),
                        "mode": name.split("_")[1],
                        "stale_s": STALE_S,
                        "hold_timeout_s": 30.0,
                        "robot": {
                            "success_topic": "reward/success_prob",
                            "wrench_topic": WRENCH_TOPIC,
                        },
                        "reset": {"object": "none", "home_pose": HOME, "timeout_s": 30.0},
                    },
                    {
                        "current_pose": PoseStamped,
                        "joint_states": JointState,
                        "cameras/front/image_raw": Image,
                        WRENCH_TOPIC: WrenchStamped,
                        "reward/success_prob": Float32,
                        "teleop/event": String,
                        "teleop/twist": TwistStamped,
                        "teleop/intervening": Bool,
                        "teleop/gripper": Float32,
                    },
                    {"current_pose", "joint_states", "cameras/front/image_raw", WRENCH_TOPIC},
                    ("target_pose", PoseStamped),
                    _pose_output_problem(safety.workspace_min, safety.workspace_max),
                )
            )
        elif name == "reward":
            out.append(
                Target(
                    name,
                    "nodes.reward",
                    {"model_dir": str(_reward_model(tmp)), "threads": 1},
                    {
                        "cameras/front/image_raw": Image,
                        "current_pose": PoseStamped,
                        "joint_states": JointState,
                    },
                    {"cameras/front/image_raw", "current_pose", "joint_states"},
                    ("reward/success_prob", Float32),
                    lambda msg, legit_pose: probability_problem(msg.data),
                    extra={"image_size": (128, 128)},
                )
            )
        elif name == "tracker":
            tracker = yaml.safe_load((REPO / "config" / "tracker.yaml").read_text())["tracker"]
            params = tracker["ros__parameters"]
            params["tracker"]["cameras"] = ["front"]
            t = params["tracker"]
            out.append(
                Target(
                    name,
                    "nodes.tracker",
                    params,
                    {"cameras/front/camera_info": CameraInfo, "cameras/front/image_raw": Image},
                    {"cameras/front/camera_info", "cameras/front/image_raw"},
                    ("object_pose", PoseStamped),
                    _pose_output_problem(t["workspace_min"], t["workspace_max"]),
                    stamped_output=True,
                    extra={"frame": _marker_frame()},
                )
            )
        elif name == "sim_robot":
            from nodes.sim_robot import GRIPPER_TOPIC

            out.append(
                Target(
                    name,
                    "nodes.sim_robot",
                    {"profile": "real_cell", "task": "pick_cube", "cameras": []},
                    {"target_pose": PoseStamped, GRIPPER_TOPIC: Float64MultiArray},
                    set(),  # it always publishes its state: held means it stays where it is
                    ("current_pose", PoseStamped),
                    _held_pose_problem,
                    extra={"target_own_pose": True, "state_output": True},
                )
            )
        elif name == "twin_operator":
            out.append(
                Target(
                    name,
                    "nodes.twin_operator",
                    {
                        "mode": "demo",
                        "run_config": str(REPO / "config" / "real_pick_cube.yaml"),
                        "stale_s": STALE_S,
                    },
                    {
                        "current_pose": PoseStamped,
                        "twin/object_pose": PoseStamped,
                        "joint_states": JointState,
                        "target_pose": PoseStamped,
                        "twin/success": Bool,
                        "actor/state": String,
                    },
                    # joint_states: it reads the fingers only, and one without an arm joint is
                    # usable to it
                    {"current_pose", "twin/object_pose", "target_pose"},
                    ("teleop/twist", TwistStamped),
                    _twist_problem,
                )
            )
        else:
            raise ValueError(f"unknown target {name!r}; choose from {list(TARGETS)}")
    return out


def _marker_frame() -> np.ndarray:
    """A 640x480 front-camera render of the twin's marker cube (config/tracker.yaml's markers)."""
    import sim

    env = sim.make_env(
        "pick_cube",
        marker={"dictionary": "DICT_4X4_50", "id": 0, "size_m": 0.03},
        cameras=("front",),
        image_size=(480, 640),
        privileged_state=False,
    )
    obs, _ = env.reset(seed=1)
    env.close()
    return obs["image_front"]


class Cell:
    """The legitimate side, in this process: the inputs a running node expects, published at
    `rate_hz` (camera at a third of it) except on `silenced` topics, and the node's outputs."""

    def __init__(self, context, target: Target, rate_hz: float = 50.0):
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from std_msgs.msg import String

        from nodes.robot_env import ACTOR_STATE_QOS

        self.target = target
        self.node = Node("hostile_cell", context=context)
        self.pose = np.array(HOME)
        self.placed = False
        self.silenced: set[str] = set()
        self.outputs: list[tuple[float, Any]] = []  # (monotonic arrival, msg)
        self.states: list[str] = []
        self._tick = 0
        rng = np.random.default_rng(0)
        size = target.extra.get("image_size", (64, 64))
        self.frame = target.extra.get("frame")
        if self.frame is None:
            self.frame = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        self.pubs = {}
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        commands = ("teleop/", "camera_info", "target_pose", "commands")
        for topic, kind in target.topics.items():
            if topic == "actor/state":
                qos = ACTOR_STATE_QOS
            elif any(c in topic for c in commands):
                qos = reliable
            else:
                qos = qos_profile_sensor_data
            self.pubs[topic] = self.node.create_publisher(kind, topic, qos)
        out_topic, out_kind = target.output
        # a best-effort output (a robot's state) is read best-effort: else nothing is delivered
        best_effort = ReliabilityPolicy.BEST_EFFORT if target.extra.get("state_output") else None
        out_qos = QoSProfile(depth=100, reliability=best_effort or ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(out_kind, out_topic, self._on_output, out_qos)
        self.node.create_subscription(
            String, "actor/state", lambda m: self.states.append(m.data), ACTOR_STATE_QOS
        )
        self.node.create_timer(1.0 / rate_hz, self._publish)

    def _on_output(self, msg) -> None:
        self.outputs.append((time.monotonic(), msg))
        if self.target.extra.get("target_own_pose") and not self.placed:
            from nodes.messages import pose_array

            self.pose, self.placed = pose_array(msg), True  # from now on, stay where you are
        if self.target.output[0] == "target_pose":
            from nodes.messages import pose_array

            pose = pose_array(msg)
            if np.all(np.isfinite(pose)):  # a stiff controller: there by the next state message
                self.pose = pose

    def legit(self, topic: str) -> Any:
        """A fresh legitimate message for `topic`, stamped now."""
        from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from std_msgs.msg import Bool, Float32, Float64MultiArray, String

        from nodes.messages import (
            camera_info_msg,
            gripper_command_msg,
            image_msg,
            joint_state_msg,
            pose_msg,
            twist_msg,
            wrench_msg,
        )

        now = time.time()
        kind = self.target.topics[topic]
        if topic == "twin/object_pose":
            return pose_msg(np.array(CUBE), now, "world")
        if kind is PoseStamped:
            return pose_msg(self.pose, now, "world")
        if kind is JointState:
            position = np.r_[np.linspace(0.1, 0.7, 7), 0.02, 0.02]
            return joint_state_msg([*ARM, *FINGERS], position, np.zeros(9), np.zeros(0), now)
        if kind is Image:
            return image_msg(self.frame, now, "front_optical_frame")
        if kind is CameraInfo:
            w, h, fx, fy, cx, cy = TRACKER_INFO
            return camera_info_msg(w, h, fx, fy, cx, cy, "plumb_bob", [0.0] * 5, now, "front")
        if kind is WrenchStamped:
            return wrench_msg(np.zeros(6), now, "ft_sensor")
        if kind is TwistStamped:
            return twist_msg(np.zeros(6), now, "world")
        if kind is Float32:
            return Float32(data=0.1 if topic == "reward/success_prob" else 0.0)
        if kind is Bool:
            return Bool(data=False)
        if kind is Float64MultiArray:
            return gripper_command_msg(0.04)
        if topic == "actor/state":
            return String(data="running")
        return String(data="pause")  # never sent as a legitimate message: it ends an episode

    def _publish(self) -> None:
        self._tick += 1
        waiting = self.target.extra.get("target_own_pose") and not self.placed
        for topic, pub in self.pubs.items():
            if topic in self.silenced or topic == "teleop/event" or waiting:
                continue
            if self.target.topics[topic].__name__ == "Image" and self._tick % 3:
                continue
            pub.publish(self.legit(topic))

    def outputs_since(self, start: float, end: float = float("inf")) -> list[Any]:
        return [m for t, m in list(self.outputs) if start <= t <= end]


class NodeUnderTest:
    """The target node's process, its parameter file and log."""

    def __init__(self, target: Target, tmp: Path, env: dict[str, str]):
        self.log_path = tmp / f"{target.name}.log"
        params = tmp / f"{target.name}.yaml"
        node_name = target.module.split(".")[-1]
        params.write_text(yaml.safe_dump({node_name: {"ros__parameters": target.params}}))
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", target.module, "--ros-args", "--params-file", str(params)],
            cwd=REPO,
            env={**env, "OMP_NUM_THREADS": "1", "RCUTILS_COLORIZED_OUTPUT": "0"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def warning_rate(log: str, topic: str, start: float, end: float) -> tuple[int, float | None]:
    """Warning/error lines naming `topic` within [start, end] (wall clock): the most in one
    calendar second, and the mean interval between consecutive ones (None for fewer than two).
    A node naming a problem once a second has a mean interval of about 1 s; its calendar-second
    count can still reach 2 where scheduling jitter puts two lines 0.95 s apart."""
    stamps = []
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match and topic in match.group(4):
            stamp = float(match.group(2))
            if start - 1 <= stamp <= end + 1:
                stamps.append(stamp)
    per_second = Counter(int(t) for t in stamps)
    interval = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else None
    return max(per_second.values(), default=0), interval


def _ready(cell: Cell, target: Target, proc: NodeUnderTest, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.proc.poll() is None:
        since = time.monotonic() - 1.0
        running = not target.name.startswith("actor") or (cell.states[-1:] == ["running"])
        if running and cell.outputs_since(since):
            return True
        time.sleep(0.1)
    return False


def _flood(cell: Cell, topic: str, messages, seconds: float) -> None:
    """Publish `messages` evenly over `seconds`."""
    pub = cell.pubs[topic]
    start = time.monotonic()
    for i, msg in enumerate(messages):
        delay = start + i * seconds / max(len(messages), 1) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pub.publish(msg)


def run_target(target: Target, args: argparse.Namespace, env: dict[str, str], tmp: Path) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env["ROS_DOMAIN_ID"]))
    cell = Cell(context, target)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(cell.node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    proc = NodeUnderTest(target, tmp, env)
    report: dict[str, Any] = {"topics": {}}
    try:
        if not _ready(cell, target, proc, target.ready_timeout_s):
            report["error"] = "never reached its running state with legitimate inputs"
        else:
            for i, (topic, kind) in enumerate(target.topics.items()):
                report["topics"][topic] = _flood_topic(cell, target, proc, topic, kind, i, args)
                if proc.proc.poll() is not None:
                    break
    finally:
        alive = proc.proc.poll() is None
        status = proc.stop()
        executor.shutdown(timeout_sec=5.0)
        cell.node.destroy_node()
        context.try_shutdown()
    log = proc.output()
    bad = [p for p in (target.output_problem(m, cell.pose) for _, m in cell.outputs) if p]
    report.update(
        alive=alive,
        exit_status=None if alive else status,
        tracebacks=log.count("Traceback"),
        outputs=len(cell.outputs),
        bad_outputs=len(bad),
        bad_output_examples=sorted(set(bad))[:3],
    )
    if not alive or report["tracebacks"] or "error" in report:
        report["log_tail"] = log[-3000:]
    return report


def _flood_topic(
    cell: Cell,
    target: Target,
    proc: NodeUnderTest,
    topic: str,
    kind: type,
    index: int,
    args: argparse.Namespace,
) -> dict:
    seed = args.seed * 1000 + index
    mixed_n = args.messages // 2
    replace_n = args.messages - mixed_n
    holds = topic in target.holds
    wall_start = time.time()
    mixed = list(hostile_stream(kind, lambda: cell.legit(topic), mixed_n, seed))
    _flood(cell, topic, [m for _, m in mixed], mixed_n / args.rate)
    bad_only = holds and any(v.bad for v in VARIANTS[kind])
    replaced = list(hostile_stream(kind, lambda: cell.legit(topic), replace_n, seed + 1, bad_only))
    if holds:
        cell.silenced.add(topic)
    start, wall_replace = time.monotonic(), time.time()
    _flood(cell, topic, [m for _, m in replaced], max(replace_n / args.rate, args.hold_s))
    end = time.monotonic()
    cell.silenced.discard(topic)
    # the last legitimate message stays usable for stale_s, and a tick may be under way
    grace = STALE_S + 0.25
    if not holds:
        held = None
    elif target.stamped_output:
        from nodes.messages import from_time

        held = sum(from_time(m.header.stamp) > wall_replace for m in cell.outputs_since(start, end))
    else:
        held = len(cell.outputs_since(start + grace, end))
    recovered = None
    deadline = end + 20.0
    while recovered is None and time.monotonic() < deadline and proc.proc.poll() is None:
        later = [t for t, _ in list(cell.outputs) if t > end]
        if later:
            recovered = round(later[0] - end, 2)
        time.sleep(0.05)
    refusable = {v.name for v in VARIANTS[kind] if v.bad}
    per_second, interval = warning_rate(proc.output(), topic, wall_start, time.time())
    return {
        "type": kind.__name__,
        "sent": len(mixed) + len(replaced),
        "refusable_sent": sum(v.name in refusable for v, _ in [*mixed, *replaced]),
        "held_window_s": round(end - start - grace, 2) if holds else None,
        "outputs_while_held": held,
        "max_warnings_per_s": per_second,
        "mean_warning_interval_s": None if interval is None else round(interval, 3),
        "recovered_s": recovered,
        "alive": proc.proc.poll() is None,
    }


def run(args: argparse.Namespace) -> dict:
    domain = args.domain_id if args.domain_id is not None else random.randint(101, 200)
    env = ros_env(domain, shm=False)
    os.environ.update(env)
    result: dict[str, Any] = {
        "messages_per_topic": args.messages,
        "rate_per_s": args.rate,
        "seed": args.seed,
        "targets": {},
    }
    with tempfile.TemporaryDirectory(prefix="hostile_ros_") as tmp:
        work = Path(args.log_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for target in targets(args.targets, work):
            result["targets"][target.name] = run_target(target, args, env, work)
    reports = list(result["targets"].values())
    topics = [t for r in reports for t in r["topics"].values()]
    result.update(
        messages_sent=sum(t["sent"] for t in topics),
        crashes=sum(not r["alive"] or r["tracebacks"] > 0 or "error" in r for r in reports),
        bad_outputs=sum(r["bad_outputs"] for r in reports),
        outputs_while_held=sum(t["outputs_while_held"] or 0 for t in topics),
        max_warnings_per_topic_per_s=max((t["max_warnings_per_s"] for t in topics), default=0),
        min_mean_warning_interval_s=min(
            (t["mean_warning_interval_s"] for t in topics if t["mean_warning_interval_s"]),
            default=None,
        ),
        not_recovered=sorted(
            f"{name}:{topic}"
            for name, r in result["targets"].items()
            for topic, t in r["topics"].items()
            if t["recovered_s"] is None
        ),
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=10_000, help="hostile messages per topic")
    parser.add_argument(
        "--targets", nargs="+", choices=TARGETS, default=list(TARGETS), help="nodes to run"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="hostile messages per second")
    parser.add_argument(
        "--hold-s", type=float, default=1.5, help="least time a topic carries only bad messages"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--log-dir", default="", help="keep the nodes' logs and files here (default: discarded)"
    )
    parser.add_argument(
        "--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random 101..200)"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the hostile-input figures as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m nodes.hostile")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.messages < 2 or args.rate <= 0 or args.hold_s <= STALE_S:
        parser.error(f"need --messages >= 2, --rate > 0 and --hold-s > {STALE_S}")
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
