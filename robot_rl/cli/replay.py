"""`robot-rl replay STORE --episode N`: replay recorded actions open loop in the twin; report
the TCP divergence.

The report's `start` says where the replay began:
- `sim_state`: the twin's recorded state (twin episodes; an exact replay does not diverge at all);
- `joints+object_pose`: the recorded arm and finger joint positions at rest, and the recorded
  object pose (a real robot or the ROS actor, where the cell tracks the object);
- `joints`: the joint positions only; the object sits where the task's reset for the episode's
  seed puts it (`object_pose_from` says which seed).
From a joint start, the divergence over time is the sim-to-real gap of the twin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

# Observations a joint start falls back to where the episode attributes lack the joint positions.
START_DATA = ("joint_pos", "gripper_width")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="replay a recorded episode in the twin and report the TCP divergence"
    )
    p.add_argument("store", help="episode store")
    p.add_argument(
        "--episode", type=int, required=True, help="episode index (negative counts from the end)"
    )
    p.add_argument(
        "--out", default=".", help="folder for replay.png and replay.json (default: here)"
    )
    p.add_argument(
        "--config", help="EnvConfig YAML for the twin (default: the config stored with the episode)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controllers.config import ConfigError, load_yaml
    from robot_rl.store import StoreError

    try:
        config = None
        if args.config:
            raw = load_yaml(args.config)
            config = dict(raw.get("env", raw))
        report = replay(args.store, args.episode, Path(args.out), config=config)
    except (StoreError, ConfigError, ValueError) as exc:
        raise SystemExit(f"robot-rl replay: {exc}") from exc
    summary = {k: v for k, v in report.items() if not isinstance(v, list)}
    print(json.dumps(summary, indent=1))
    return 0


def replay(
    store_path: str | Path, index: int, out: Path, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Replay episode `index` of the store; write replay.png and replay.json to `out`; return the
    report. Opens the store read-only: nothing stored changes."""
    from robot_rl.store import EpisodeStore, StoreError
    from sim import make_env

    with EpisodeStore.open(store_path) as store:
        info = store.info(index)
        missing = _missing_for_replay(store.keys, info.initial_state)
        if missing:
            raise StoreError(
                f"{store_path}: episode {index} cannot be replayed: it lacks {', '.join(missing)}. "
                "Replay needs the executed actions, the recorded TCP pose and a start state; "
                "`robot-rl record`, `robot-rl train` and the actor node store all three, so "
                "replay an episode they recorded."
            )
        keys = ("tcp_pose", "action", *(k for k in START_DATA if k in store.keys))
        episode = store.episode(index, keys)
        if config is None and info.config_hash:
            try:
                config = store.config(info.config_hash)
            except StoreError:  # stored without its env config: the twin's defaults stand in
                config = None
    env_config = dict(config or {})
    env_config["cameras"] = ()  # images do not change the physics; skip rendering
    env = make_env(info.task, env_config)
    try:
        obs, start, object_pose_from = _start(env, episode, info)
        replayed = [np.asarray(obs["tcp_pose"], np.float64)]
        success = False
        for action in episode["action"][:-1]:
            obs, _, terminated, _, step_info = env.step(action)
            replayed.append(np.asarray(obs["tcp_pose"], np.float64))
            success = bool(step_info["success"])
            if terminated:  # the episode ended here in the twin; the recording may go on
                break
    finally:
        env.close()
    report = divergence(np.asarray(episode["tcp_pose"], np.float64), np.stack(replayed))
    report.update(
        {
            "store": str(store_path),
            "episode": index,
            "task": info.task,
            "platform": info.platform,
            "start": start,
            "object_pose_from": object_pose_from,
            "recorded_success": info.success,
            "replayed_success": success,
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(json.dumps(report, indent=1))
    _plot(
        report, np.asarray(episode["tcp_pose"], np.float64), np.stack(replayed), out / "replay.png"
    )
    report["plot"] = str(out / "replay.png")
    return report


def _missing_for_replay(data_keys: tuple[str, ...], initial_state: dict[str, Any]) -> list[str]:
    """What the episode lacks of what a replay needs, named as the operator finds it in the
    store."""
    missing = [f"data/{k}" for k in ("action", "tcp_pose") if k not in data_keys]
    has_start = (
        "sim_state" in initial_state or "arm_joint_pos" in initial_state or "joint_pos" in data_keys
    )
    if not has_start:
        missing.append(
            "a start state (initial_state 'sim_state' or 'arm_joint_pos', or data/joint_pos)"
        )
    return missing


def _start(
    env: Any, episode: dict[str, np.ndarray], info: Any
) -> tuple[dict[str, np.ndarray], str, str]:
    """Put the twin at the episode's start; returns (first observation, start, where the object
    pose came from).

    The recorded sim state where there is one; else the recorded joint configuration at rest on
    top of the task's reset for the episode's seed, with the recorded object pose where known.
    """
    from robot_rl.store import decode_state

    initial = info.initial_state
    if "sim_state" in initial:
        obs, _ = env.reset(options={"sim_state": decode_state(initial["sim_state"])})
        return obs, "sim_state", "sim_state"
    seed = 0 if info.seed is None else info.seed
    env.reset(seed=seed)
    state = {"arm_joint_pos": initial.get("arm_joint_pos", episode["joint_pos"][0])}
    if "finger_joint_pos" in initial:
        state["finger_joint_pos"] = initial["finger_joint_pos"]
    elif "gripper_width" in episode:  # the fingers move symmetrically
        state["finger_joint_pos"] = np.full(2, float(episode["gripper_width"][0][0]) / 2)
    if "object_pose" in initial:
        state["object_pose"] = initial["object_pose"]
        start, object_pose_from = "joints+object_pose", "recorded"
    else:
        start = "joints"
        object_pose_from = f"the task's reset for seed {seed}" + (
            " (the episode recorded no seed)" if info.seed is None else ""
        )
    return env.unwrapped.set_initial_state(state), start, object_pose_from


def divergence(recorded: np.ndarray, replayed: np.ndarray) -> dict[str, Any]:
    """Per-step TCP position (mm) and orientation (deg) error of a replay against the recording."""
    n = min(len(recorded), len(replayed))
    pos = np.linalg.norm(replayed[:n, :3] - recorded[:n, :3], axis=1) * 1e3
    dots = np.abs(np.sum(_unit(replayed[:n, 3:]) * _unit(recorded[:n, 3:]), axis=1))
    rot = np.degrees(2 * np.arccos(np.clip(dots, 0.0, 1.0)))
    return {
        "steps_compared": int(n - 1),
        "recorded_steps": int(len(recorded) - 1),
        "pos_err_mm_initial": float(pos[0]),
        "pos_err_mm_final": float(pos[-1]),
        "pos_err_mm_mean": float(pos.mean()),
        "pos_err_mm_max": float(pos.max()),
        "rot_err_deg_final": float(rot[-1]),
        "rot_err_deg_max": float(rot.max()),
        "pos_err_mm": pos.round(4).tolist(),
        "rot_err_deg": rot.round(4).tolist(),
    }


def _unit(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _plot(report: dict[str, Any], recorded: np.ndarray, replayed: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_err, ax_xyz) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax_err.plot(report["pos_err_mm"], label="position (mm)")
    ax_err.plot(report["rot_err_deg"], label="orientation (deg)")
    ax_err.set_ylabel("TCP divergence")
    ax_err.set_title(
        f"{report['task']} episode {report['episode']} ({report['platform']}): replay vs recording"
    )
    ax_err.legend()
    for i, axis in enumerate("xyz"):
        (line,) = ax_xyz.plot(recorded[:, i], label=f"{axis} recorded")
        ax_xyz.plot(replayed[:, i], "--", color=line.get_color(), label=f"{axis} replayed")
    ax_xyz.set_xlabel("step")
    ax_xyz.set_ylabel("TCP position (m)")
    ax_xyz.legend(ncol=3, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
