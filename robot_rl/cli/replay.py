"""`robot-rl replay STORE --episode N`: replay recorded actions open loop in the twin; report TCP divergence.

Twin episodes restart from their recorded sim state (an exact replay should not diverge at all).
Real-robot episodes start from the recorded joint pose and, where the episode attributes know it, the
object pose: the divergence over time is then the sim-to-real gap of the twin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


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
    """Replay episode `index` of the store; write replay.png and replay.json to `out`; return the report."""
    from robot_rl.store import EpisodeStore, decode_state
    from sim import make_env

    with EpisodeStore.open(store_path) as store:
        info = store.info(index)
        episode = store.episode(index, ("tcp_pose", "joint_pos", "joint_vel", "action", "is_last"))
        if config is None and info.config_hash:
            try:
                config = store.config(info.config_hash)
            except (
                Exception
            ):  # a real robot's config is not a twin config; the twin's defaults stand in
                config = None
    env_config = dict(config or {})
    env_config["cameras"] = ()  # images do not change the physics; skip rendering
    env = make_env(info.task, env_config)
    try:
        if info.platform == "sim":
            if "sim_state" not in info.initial_state:
                raise ValueError(
                    f"{store_path}: episode {index} is from the twin but has no initial sim state"
                )
            state = decode_state(info.initial_state["sim_state"])
            start = "recorded sim state"
        else:
            state = _real_start_state(env, episode, info)
            start = "recorded joint pose" + (
                " and object pose" if "object_pose" in info.initial_state else ""
            )
        obs, _ = env.reset(options={"sim_state": state})
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


def _real_start_state(env: Any, episode: dict[str, np.ndarray], info: Any) -> dict[str, np.ndarray]:
    """A twin state at the recorded start of a real episode: arm joints, TCP target and object pose where known."""
    env.reset(seed=info.seed)
    state = env.unwrapped.get_sim_state()
    joints = np.asarray(episode["joint_pos"][0], np.float64)
    tcp = np.asarray(episode["tcp_pose"][0], np.float64)
    n = len(joints)
    state["qpos"][:n] = joints
    state["qvel"][:n] = np.asarray(episode["joint_vel"][0], np.float64)
    state["qacc_warmstart"][:] = 0.0
    state["target_pos"], state["target_quat"] = tcp[:3].copy(), tcp[3:].copy()
    state["controller_target_pos"], state["controller_target_quat"] = tcp[:3].copy(), tcp[3:].copy()
    state["controller_rest_posture"] = joints.copy()
    state["controller_tau_prev"][:] = 0.0
    if "object_pose" in info.initial_state:
        adr = env.unwrapped.task.object_qpos
        state["qpos"][adr : adr + 7] = np.asarray(info.initial_state["object_pose"], np.float64)
    return state


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
