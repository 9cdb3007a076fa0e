"""`robot-rl record`: record scripted demonstrations in the twin into an episode store."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

EXPERTS = ("scripted",)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="record demonstrations in the twin into an episode store")
    p.add_argument("--task", required=True, help="twin task (pick_cube, peg_insert)")
    p.add_argument("--episodes", type=int, default=20, help="episodes to record (default 20)")
    p.add_argument(
        "--expert", choices=EXPERTS, default="scripted", help="who acts (default scripted)"
    )
    p.add_argument("--out", required=True, help="episode store to create or append to")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed SEED+i (default 0)")
    p.add_argument("--config", help="YAML of sim.config.EnvConfig (or with an 'env:' section)")
    p.add_argument(
        "--cameras",
        help="comma-separated cameras to record (default: the config's, else front,wrist)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controllers.config import ConfigError
    from robot_rl.store import StoreError

    try:
        summary = record_demos(
            args.task,
            args.episodes,
            args.out,
            seed=args.seed,
            config=_env_config(args),
            progress=True,
        )
    except (StoreError, ConfigError, ValueError) as exc:
        raise SystemExit(f"robot-rl record: {exc}") from exc
    print(
        f"recorded {summary['episodes']} episodes ({summary['successes']} successful) "
        f"to {summary['store']}; "
        f"the store now holds {summary['store_episodes']}"
    )
    return 0


def _env_config(args: argparse.Namespace) -> dict[str, Any]:
    from controllers.config import load_yaml

    config: dict[str, Any] = {}
    if args.config:
        config = load_yaml(args.config)
        config = dict(config.get("env", config))
    if args.cameras is not None:
        config["cameras"] = [c for c in args.cameras.split(",") if c]
    elif "cameras" not in config:
        config["cameras"] = ["front", "wrist"]
    return config


def record_demos(
    task: str,
    episodes: int,
    out: str | Path,
    *,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Record `episodes` scripted-expert episodes of `task` (seeds seed, seed+1, ..) into `out`."""
    from controllers.config import to_dict
    from robot_rl.store import EpisodeStore
    from robot_rl.store.recorder import config_hash, episode_info, run_episode
    from sim import make_env
    from sim.cameras import DEFAULT_CAMERA_YAML
    from sim.experts import make_expert

    if episodes < 1:
        raise ValueError(f"--episodes: {episodes} must be >= 1")
    env = make_env(task, config)
    env_config = to_dict(env.unwrapped.config)
    camera_yaml = Path(env_config["camera_yaml"] or DEFAULT_CAMERA_YAML)
    fields = {
        "platform": "sim",
        "operator": "scripted",
        "config_hash": config_hash(env_config),
        "robot_calibration_id": "twin",
        "camera_calibration_id": hashlib.sha256(camera_yaml.read_bytes()).hexdigest()[:16],
    }
    expert = make_expert(env)
    successes = 0
    try:
        with EpisodeStore.open(out, mode="a") as store:
            for i in range(episodes):
                expert.reset()
                episode, facts = run_episode(env, expert.act, seed=seed + i)
                index = store.append(
                    episode, episode_info(task, "demo", facts, seed=seed + i, **fields), env_config
                )
                successes += facts["success"]
                if progress:
                    outcome = "success" if facts["success"] else "failure"
                    print(
                        f"episode {index}: {outcome} after {facts['steps']} steps "
                        f"(seed {seed + i})",
                        file=sys.stderr,
                    )
            total = len(store)
    finally:
        env.close()
    return {
        "store": str(out),
        "episodes": episodes,
        "successes": successes,
        "store_episodes": total,
    }
