"""`robot-rl eval CHECKPOINT --task pick_cube --episodes 100`: success rate and time to success in the twin."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint's deterministic policy in the twin")
    p.add_argument(
        "checkpoint", help="checkpoint directory (weights.safetensors, config.json, ...)"
    )
    p.add_argument("--task", required=True, help="twin task (pick_cube, peg_insert)")
    p.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    p.add_argument(
        "--seed", type=int, default=10_000, help="episode i uses seed SEED+i (default 10000)"
    )
    p.add_argument(
        "--record", metavar="STORE", help="also record every episode into this episode store"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controllers.config import ConfigError
    from robot_rl.store import StoreError

    try:
        result = evaluate_checkpoint(
            args.checkpoint,
            args.task,
            args.episodes,
            seed=args.seed,
            record=args.record,
            threads=args.threads,
            progress=True,
        )
    except (StoreError, ConfigError, ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"robot-rl eval: {exc}") from exc
    print(json.dumps(result))
    return 0


def load_policy(checkpoint: str | Path) -> tuple[Any, dict[str, Any]]:
    """The agent of a trainer checkpoint with its weights loaded, and the checkpoint's config."""
    from controllers.config import from_dict
    from robot_rl.agents.checkpoint import load_checkpoint
    from robot_rl.agents.sac import SACAgent, SACConfig

    path = Path(checkpoint)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint directory (no config.json)")
    config = json.loads(config_file.read_text())
    for key in ("trainer", "obs_spec"):
        if key not in config:
            raise ValueError(f"{config_file}: missing key {key!r}")
    spec = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in config["obs_spec"].items()}
    sac = from_dict(SACConfig, {**config["trainer"].get("sac", {}), "device": "cpu"}, "trainer.sac")
    agent = SACAgent(spec, sac)
    load_checkpoint(path, agent, config)
    return agent, config


def evaluate_checkpoint(
    checkpoint: str | Path,
    task: str,
    episodes: int,
    *,
    seed: int = 10_000,
    record: str | Path | None = None,
    threads: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the deterministic policy for `episodes` seeded episodes; success rate and time to success."""
    import torch

    from controllers.config import to_dict
    from robot_rl.store import EpisodeStore
    from robot_rl.store.recorder import config_hash, episode_info, run_episode
    from sim import make_env

    if episodes < 1:
        raise ValueError(f"--episodes: {episodes} must be >= 1")
    torch.set_num_threads(threads)
    agent, config = load_policy(checkpoint)
    trainer = config["trainer"]
    env = make_env(task, trainer.get("env", {}))
    have = {k: (tuple(s.shape), np.dtype(s.dtype)) for k, s in env.observation_space.spaces.items()}
    want = {k: (tuple(s), np.dtype(d)) for k, (s, d) in config["obs_spec"].items()}
    if have != want:
        raise ValueError(
            f"{checkpoint}: the policy observes {sorted(want)} but the {task} env gives {sorted(have)} "
            f"(differences: {sorted(set(have.items()) ^ set(want.items()))})"
        )
    env_config = to_dict(env.unwrapped.config)
    control_dt = 1.0 / env.unwrapped.config.control_hz
    version = int(agent.actor_steps)
    fields = {
        "platform": "sim",
        "operator": "",
        "config_hash": config_hash(env_config),
        "robot_calibration_id": "twin",
    }
    steps_to_success, successes = [], 0
    store = EpisodeStore.open(record, mode="a") if record else None
    try:
        for i in range(episodes):
            episode, facts = run_episode(
                env,
                lambda obs: agent.act(obs, deterministic=True),
                seed=seed + i,
                policy_version=version,
            )
            if facts["success"]:
                successes += 1
                steps_to_success.append(facts["steps"])
            if store is not None:
                store.append(
                    episode, episode_info(task, "sim", facts, seed=seed + i, **fields), env_config
                )
            if progress:
                print(
                    f"episode {i} (seed {seed + i}): {'success' if facts['success'] else 'failure'} "
                    f"after {facts['steps']} steps",
                    file=sys.stderr,
                )
    finally:
        env.close()
        if store is not None:
            store.close()
    mean_steps = float(np.mean(steps_to_success)) if steps_to_success else None
    return {
        "checkpoint": str(checkpoint),
        "task": task,
        "episodes": episodes,
        "seeds": [seed, seed + episodes - 1],
        "successes": successes,
        "success_rate": successes / episodes,
        "mean_steps_to_success": mean_steps,
        "mean_time_to_success_s": mean_steps * control_dt if mean_steps is not None else None,
        "policy_version": version,
        "recorded_to": str(record) if record else None,
    }
