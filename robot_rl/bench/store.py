"""Episode store speed: steps/s written, read time, image bytes.

Each step holds two 128x128 cameras + proprio; episodes are committed whole.

Frames are rendered by the twin (pick_cube, cameras front and wrist, scripted expert); episodes for
the benchmark cycle through those recorded rows, so compression is measured on real renders.
bytes_per_image is the image shard files' size (64 frames each, index included) over the frames
stored. Commits are fsynced (the writer's default) in the runs measured; each run also writes the
same episodes with `fsync=False` for `commit_ms_median_no_fsync`: the difference is what
durability against power loss costs per episode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--episodes", type=int, default=20, help="episodes written per run (default 20)"
    )
    parser.add_argument("--steps", type=int, default=100, help="actions per episode (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="runs; figures are medians (default 3)")
    parser.add_argument(
        "--source-episodes", type=int, default=2, help="twin episodes rendered for frames"
    )


def twin_rows(episodes: int) -> dict[str, np.ndarray]:
    """Rows of scripted pick_cube episodes in the twin with two 128x128 cameras, concatenated."""
    from robot_rl.store.recorder import run_episode
    from sim import make_env
    from sim.experts import make_expert

    env = make_env("pick_cube", cameras=("front", "wrist"), image_size=(128, 128))
    expert = make_expert(env)
    parts = []
    for seed in range(episodes):
        expert.reset()
        parts.append(run_episode(env, expert.act, seed=seed)[0])
    env.close()
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def bench_episode(rows: dict[str, np.ndarray], steps: int, offset: int) -> dict[str, np.ndarray]:
    """An episode of `steps` actions cycling through the recorded rows (step keys rebuilt)."""
    n = steps + 1
    idx = (offset + np.arange(n)) % len(rows["is_first"])
    ep = {k: v[idx] for k, v in rows.items()}
    ep["is_first"] = np.arange(n) == 0
    ep["is_last"] = np.arange(n) == n - 1
    ep["is_terminal"] = np.zeros(n, bool)
    for key in ("action", "policy_action", "reward"):
        ep[key][-1] = 0
    ep["intervened"][-1] = False
    return ep


def run(args: argparse.Namespace) -> dict[str, Any]:
    from robot_rl.store import EpisodeInfo, EpisodeStore

    rows = twin_rows(args.source_episodes)
    episodes = [bench_episode(rows, args.steps, 37 * i) for i in range(args.episodes)]
    info = EpisodeInfo(task="pick_cube", source="sim", success=False)
    write_rates, cpu_rates, commit_ms, read_ms, image_bytes = [], [], [], [], []
    commit_ms_no_fsync = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            with EpisodeStore.open(Path(tmp) / "no-fsync", mode="a", fsync=False) as store:
                for ep in episodes:
                    t0 = time.perf_counter()
                    store.append(ep, info)
                    commit_ms_no_fsync.append((time.perf_counter() - t0) * 1e3)
            path = Path(tmp) / "store"
            with EpisodeStore.open(path, mode="a") as store:
                t_run, cpu_run = time.perf_counter(), time.process_time()
                for ep in episodes:
                    t0 = time.perf_counter()
                    store.append(ep, info)
                    commit_ms.append((time.perf_counter() - t0) * 1e3)
                write_rates.append(args.episodes * args.steps / (time.perf_counter() - t_run))
                cpu_rates.append(args.episodes * args.steps / (time.process_time() - cpu_run))
            reader = EpisodeStore.open(path)
            for i in range(len(reader)):
                t0 = time.perf_counter()
                reader.episode(i)
                read_ms.append((time.perf_counter() - t0) * 1e3)
            shards = [
                f
                for cam in ("front", "wrist")
                for f in (path / "data" / f"image_{cam}").glob("c.*")
            ]
            image_bytes.append(sum(f.stat().st_size for f in shards) / (2 * reader.num_steps))
    raw = int(np.prod(rows["image_front"].shape[1:]))
    per_image = statistics.median(image_bytes)
    return {
        "write_steps_per_s": round(statistics.median(write_rates), 1),
        # CPU seconds of this process (all its threads): what the writer costs, less the waiting
        # when other processes share the cores; compare with write_steps_per_s and
        # load_average_1min.
        "write_steps_per_cpu_s": round(statistics.median(cpu_rates), 1),
        "commit_ms_median": round(statistics.median(commit_ms), 2),
        "commit_ms_median_no_fsync": round(statistics.median(commit_ms_no_fsync), 2),
        "read_episode_ms": round(statistics.median(read_ms), 2),
        "bytes_per_image": round(per_image, 1),
        "raw_bytes_per_image": raw,
        "image_size_ratio": round(per_image / raw, 4),
        "steps_per_episode": args.steps,
        "episodes_per_run": args.episodes,
        "runs": args.runs,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "frames": (
            "twin pick_cube, cameras front+wrist 128x128, scripted expert, "
            f"{len(rows['is_first'])} rendered rows"
        ),
    }
