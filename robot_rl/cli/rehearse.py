"""`robot-rl rehearse --config FILE --out DIR`: a real cell's first training run, against the twin.

The operator guide's steps in real time, each on the outputs of the step before, with the twin in
its real-cell profile standing in for the arm and both cameras and its scripted person for the one
at the SpaceMouse:
1. demonstrations by teleop (twin_operator `demo` drives the teleop topics; actor `demo`);
2. the success classifier from those episodes (`robot-rl reward train`);
3. online training: `robot-rl learner` preloaded with the demonstrations, the actor node in `train`
   mode, the reward node's classifier as the only reward, the person taking over on stall or drift;
4. evaluation of the final checkpoint by the actor node in `eval` mode (episodes end on the
   classifier, as on the cell), scored by the twin's ground truth;
5. summary.json and learning_curve.png.
Every node and the learner run as separate processes over DDS and ZeroMQ; their logs go to
DIR/logs. The ground truth reaches this command only through the twin operator's `outcomes` files;
no process of the stack reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from controllers.config import merge_dicts
from robot_rl.cli.bringup import _default_sigint, _stop
from robot_rl.cli.launch_file import REPO

OUTCOME_BIN_S = 600.0  # intervention rate and success over time, per this much wall time


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "rehearse",
        help="rehearse a real cell's first training run against the twin, through ROS",
        description="Demonstrations, classifier, online training and evaluation in real time "
        "through the ROS nodes, the twin in its real-cell profile; writes summary.json.",
    )
    parser.add_argument(
        "--config",
        default=str(REPO / "config" / "rehearsal_pick_cube.yaml"),
        help="rehearsal YAML (default: config/rehearsal_pick_cube.yaml)",
    )
    parser.add_argument("--out", required=True, type=Path, help="run directory (created)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.set_defaults(func=run)


class StepFailed(RuntimeError):
    """A step did not produce its output; the message says which and where its log is."""


class Cell:
    """The rehearsal's processes: each started with its own parameter file and log."""

    def __init__(self, cfg, out: Path, env: dict[str, str]):
        self.cfg, self.out, self.env = cfg, out, env
        self.ros_params = yaml.safe_load(Path(cfg.ros_params).read_text())
        (out / "logs").mkdir(parents=True, exist_ok=True)
        (out / "params").mkdir(exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def log(self, tag: str) -> Path:
        return self.out / "logs" / f"{tag}.log"

    def start(self, tag: str, cmd: list[str]) -> subprocess.Popen:
        with open(self.log(tag), "w") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_default_sigint,
            )
        self.procs[tag] = proc
        return proc

    def node(self, node: str, tag: str, **overrides: Any) -> subprocess.Popen:
        """`python -m nodes.<node>` with config/ros_sim.yaml's section, the rehearsal's `nodes:`
        overrides and `overrides` merged."""
        section = self.ros_params[node]["ros__parameters"]
        params = merge_dicts(merge_dicts(section, self.cfg.nodes.get(node, {})), overrides)
        path = self.out / "params" / f"{tag}.yaml"
        path.write_text(yaml.safe_dump({node: {"ros__parameters": params}}, sort_keys=False))
        cmd = [sys.executable, "-m", f"nodes.{node}", "--ros-args", "--params-file", str(path)]
        return self.start(tag, cmd)

    def wait(self, tag: str, timeout_s: float) -> int:
        """Exit status of `tag`; StepFailed if it runs past `timeout_s` or another process dies."""
        deadline = time.monotonic() + timeout_s
        proc = self.procs[tag]
        while proc.poll() is None:
            self.check_alive()
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"{tag} still running after {timeout_s:.0f} s; see {self.log(tag)}"
                )
            time.sleep(0.5)
        return proc.returncode

    def check_alive(self) -> None:
        for tag, proc in self.procs.items():
            if proc.poll() is not None and proc.returncode != 0 and tag != "learner":
                raise StepFailed(f"{tag} exited with status {proc.returncode}; see {self.log(tag)}")

    def stop(self, *tags: str) -> None:
        _stop({t: self.procs.pop(t) for t in tags if t in self.procs}, timeout=30.0)

    def stop_all(self) -> None:
        self.stop(*list(self.procs))


def _episodes(store: Path) -> tuple[list, list]:
    from robot_rl.store.episodes import EpisodeStore

    if not store.exists():
        return [], []
    with EpisodeStore.open(store) as st:
        infos = st.infos()
        flags = [st.episode(i, keys=("intervened",))["intervened"] for i in range(len(st))]
    return infos, flags


def _settle(store: Path, outcomes: Path, timeout_s: float = 5.0) -> None:
    """Wait until the twin operator has logged every episode the actor stored: the actor's last
    `stopped` state reaches it a moment after the actor exits."""
    from robot_rl.loop.rehearsal import read_outcomes

    stored = len(_episodes(store)[0])
    deadline = time.monotonic() + timeout_s
    while len(read_outcomes(outcomes)) < stored and time.monotonic() < deadline:
        time.sleep(0.2)


def _phase(store: Path, outcomes: Path):
    from robot_rl.loop.rehearsal import join_episodes, read_outcomes

    infos, flags = _episodes(store)
    return join_episodes(infos, flags, read_outcomes(outcomes))


def record_demos(cell: Cell, run_yaml: Path, out: Path) -> dict[str, Any]:
    cfg = cell.cfg
    outcomes = out / "outcomes_demo.jsonl"
    cell.node(
        "twin_operator",
        "operator_demo",
        mode="demo",
        run_config=str(run_yaml),
        outcomes=str(outcomes),
    )
    cell.node(
        "actor",
        "actor_demo",
        mode="demo",
        run_config=str(run_yaml),
        episodes=cfg.demos,
        store=str(out / "demos.zarr"),
        spool_dir=str(out / "spool_demo"),
        learner_endpoint="none",
        seed=cfg.seed,
    )
    # the person needs ~10-20 s per demonstration; a stuck reset ends the step with the actor
    status = cell.wait("actor_demo", cfg.startup_timeout_s + 60.0 * cfg.demos)
    _settle(out / "demos.zarr", outcomes)
    cell.stop("operator_demo")
    if status != 0:
        raise StepFailed(
            f"demonstrations: the actor exited with {status}; see {cell.log('actor_demo')}"
        )
    from robot_rl.loop.rehearsal import phase_summary

    return phase_summary(_phase(out / "demos.zarr", outcomes))


def train_classifier(cell: Cell, out: Path) -> dict[str, Any]:
    reward_yaml = out / "reward_train.yaml"
    reward_yaml.write_text(yaml.safe_dump({"seed": cell.cfg.seed, **cell.cfg.reward}))
    cmd = [
        sys.executable,
        "-m",
        "robot_rl.cli",
        "reward",
        "train",
        "--store",
        str(out / "demos.zarr"),
        "--out",
        str(out / "reward"),
        "--config",
        str(reward_yaml),
    ]
    cell.start("reward_train", cmd)
    status = cell.wait("reward_train", 3600.0)
    cell.procs.pop("reward_train")
    if status != 0:
        raise StepFailed(
            f"classifier training exited with {status}; see {cell.log('reward_train')}"
        )
    return json.loads((out / "reward" / "report.json").read_text())


def train_policy(cell: Cell, run_yaml: Path, out: Path, threshold: float) -> None:
    cfg = cell.cfg
    learner = cell.start(
        "learner",
        [
            sys.executable,
            "-m",
            "robot_rl.cli",
            "learner",
            "--config",
            str(run_yaml),
            "--out",
            str(out / "learner"),
        ],
    )
    cell.node("reward", "reward", model_dir=str(out / "reward"))
    cell.node(
        "twin_operator",
        "operator_train",
        mode="intervene",
        mark_success=False,
        run_config=str(run_yaml),
        outcomes=str(out / "outcomes_train.jsonl"),
    )
    cell.node(
        "actor",
        "actor_train",
        mode="train",
        run_config=str(run_yaml),
        episodes=0,
        store=str(out / "train.zarr"),
        spool_dir=str(out / "spool_train"),
        learner_endpoint="",
        success_threshold=threshold,
        seed=cfg.seed + 1000,
        robot={"success_topic": "reward/success_prob"},
    )
    # the learner stops itself at its wall budget, checkpointing; the actor is stopped after it
    status = cell.wait("learner", cfg.startup_timeout_s + cfg.train_wall_s + 600.0)
    cell.stop("actor_train")
    _settle(out / "train.zarr", out / "outcomes_train.jsonl")
    cell.stop("operator_train")
    if status != 0 or learner.returncode != 0:
        raise StepFailed(f"the learner exited with {status}; see {cell.log('learner')}")


def evaluate(cell: Cell, run_yaml: Path, out: Path, threshold: float) -> None:
    cfg = cell.cfg
    cell.node(
        "twin_operator",
        "operator_eval",
        mode="watch",
        run_config=str(run_yaml),
        outcomes=str(out / "outcomes_eval.jsonl"),
    )
    cell.node(
        "actor",
        "actor_eval",
        mode="eval",
        run_config=str(run_yaml),
        episodes=cfg.eval_episodes,
        checkpoint=str(out / "learner" / "checkpoint"),
        store=str(out / "eval.zarr"),
        spool_dir=str(out / "spool_eval"),
        learner_endpoint="none",
        success_threshold=threshold,
        seed=cfg.seed + 2000,
        robot={"success_topic": "reward/success_prob"},
    )
    status = cell.wait("actor_eval", cfg.startup_timeout_s + 60.0 * cfg.eval_episodes)
    _settle(out / "eval.zarr", out / "outcomes_eval.jsonl")
    cell.stop("operator_eval", "reward")
    if status != 0:
        raise StepFailed(
            f"evaluation: the actor exited with {status}; see {cell.log('actor_eval')}"
        )


def _train_summary(out: Path, t_train: float) -> dict[str, Any]:
    from robot_rl.loop.rehearsal import first_autonomous_success_s, over_time, phase_summary

    train = _phase(out / "train.zarr", out / "outcomes_train.jsonl")
    return {
        **phase_summary(train),
        "wall_s": round(time.time() - t_train, 1),
        "learner": _learner_totals(out),
        "first_autonomous_success_s": first_autonomous_success_s(train, t_train),
        "over_time": over_time(train, t_train, OUTCOME_BIN_S),
    }


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _learner_totals(out: Path) -> dict[str, Any]:
    import csv

    path = out / "learner" / "metrics.csv"
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    if not rows:
        return {}
    last = rows[-1]
    return {k: float(last[k]) for k in ("env_steps", "updates", "wall_s", "takeovers") if k in last}


def run(args: argparse.Namespace) -> int:
    from controllers.config import ConfigError
    from robot_rl.loop.rehearsal import load_rehearsal_config, phase_summary, plot_curve
    from robot_rl.loop.train_job import free_endpoint

    try:
        cfg = load_rehearsal_config(args.config)
    except ConfigError as exc:
        print(f"rehearse: {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.seed is not None:
        cfg.seed = args.seed
    # the nodes run in the repository: every path they are given is absolute
    out: Path = args.out.resolve()
    cfg.run_config = str(Path(cfg.run_config).resolve())
    cfg.ros_params = str(Path(cfg.ros_params).resolve())
    if (out / "summary.json").exists():
        print(
            f"rehearse: {out} already holds a finished rehearsal; give a new --out", file=sys.stderr
        )
        return 2
    out.mkdir(parents=True, exist_ok=True)
    run_cfg = yaml.safe_load(Path(cfg.run_config).read_text())
    run_cfg = merge_dicts(run_cfg, cfg.run)
    run_cfg = merge_dicts(
        run_cfg,
        {
            "seed": cfg.seed,
            "max_wall_s": cfg.train_wall_s,
            "transport": {"endpoint": free_endpoint()},
            "offline": [{"store": str(out / "demos.zarr"), "source": ["demo"]}],
        },
    )
    run_yaml = out / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(run_cfg, sort_keys=False))
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm.xml"))
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("OMP_NUM_THREADS", "1")

    cell = Cell(cfg, out, env)
    summary: dict[str, Any] = {"config": str(args.config), "seed": cfg.seed, "phases": {}}
    t_start = time.time()
    t_train: float | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # SIGINT stops the rehearsal even when started from a shell that ignores it (nohup ... &)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cell.node("sim_robot", "sim_robot", seed=cfg.seed)
        print(f"rehearse: 1/4 recording {cfg.demos} demonstrations", flush=True)
        summary["phases"]["demos"] = record_demos(cell, run_yaml, out)
        summary["phases"]["demos"]["wall_s"] = round(time.time() - t_start, 1)

        print("rehearse: 2/4 training the success classifier", flush=True)
        t = time.time()
        report = train_classifier(cell, out)
        threshold = float(report["validation"]["threshold"])
        summary["classifier"] = {
            "validation": report["validation"],
            "target_met": report["target_met"],
            "train_episodes": report["train_episodes"],
            "val_episodes": report["val_episodes"],
            "wall_s": round(time.time() - t, 1),
        }

        print(f"rehearse: 3/4 online training for {cfg.train_wall_s:.0f} s", flush=True)
        t_train = time.time()
        train_policy(cell, run_yaml, out, threshold)
        summary["phases"]["train"] = _train_summary(out, t_train)

        print(f"rehearse: 4/4 evaluating on {cfg.eval_episodes} episodes", flush=True)
        t = time.time()
        evaluate(cell, run_yaml, out, threshold)
        summary["phases"]["eval"] = {
            **phase_summary(_phase(out / "eval.zarr", out / "outcomes_eval.jsonl")),
            "wall_s": round(time.time() - t, 1),
        }
    except StepFailed as exc:
        print(f"rehearse: {exc}", file=sys.stderr)
        summary["failed"] = str(exc)
    except KeyboardInterrupt:
        summary["failed"] = "interrupted"
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        cell.stop_all()
    summary["wall_s"] = round(time.time() - t_start, 1)
    if t_train is not None:
        if "train" not in summary["phases"]:  # cut short: what training did until then
            summary["phases"]["train"] = _train_summary(out, t_train)
        eval_rate = summary["phases"].get("eval", {}).get("ground_truth_success")
        train = _phase(out / "train.zarr", out / "outcomes_train.jsonl")
        plot_curve(train, t_train, cfg.curve_window, eval_rate, out / "learning_curve.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    final = summary["phases"].get("eval", {})
    print(
        json.dumps(
            {
                "ground_truth_success": final.get("ground_truth_success"),
                "classifier_success": final.get("classifier_success"),
                "wall_s": summary["wall_s"],
                "summary": str(out / "summary.json"),
            }
        )
    )
    return 1 if "failed" in summary else 0
