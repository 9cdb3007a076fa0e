"""Synthetic episodes, every value derived from (seed, row), so a reader can check any it sees."""

from __future__ import annotations

import numpy as np

from robot_rl.store import EpisodeInfo

IMAGE_SHAPE = (16, 16, 3)


def make_episode(
    seed: int, steps: int = 12, image_shape: tuple[int, int, int] = IMAGE_SHAPE
) -> dict[str, np.ndarray]:
    """An episode of `steps` actions in the contract's step-row layout, determined by `seed`."""
    rng = np.random.default_rng(seed)
    n = steps + 1
    t = np.arange(n)
    ep = {
        "tcp_pose": rng.normal(size=(n, 7)).astype(np.float32),
        "gripper_width": rng.uniform(0, 0.08, (n, 1)).astype(np.float32),
        "image_front": (
            (seed * 7 + t[:, None, None, None]) % 256 * np.ones((n, *image_shape))
        ).astype(np.uint8),
        "image_wrist": rng.integers(0, 256, (n, *image_shape), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32),
        "policy_action": rng.uniform(-1, 1, (n, 7)).astype(np.float32),
        "reward": np.zeros(n, np.float32),
        "intervened": (rng.random(n) < 0.3) if seed % 2 else np.zeros(n, bool),
        "success_prob": np.full(n, np.nan, np.float32),
        "policy_version": np.full(n, seed, np.int64),
        "timestamp": 1000.0 * seed + 0.1 * t,
        "is_first": t == 0,
        "is_last": t == n - 1,
        "is_terminal": (t == n - 1) & (seed % 3 == 0),
    }
    ep["success_prob"][: n // 2] = 0.25
    ep["reward"][-2] = 1.0 if seed % 3 == 0 else 0.0
    for key in ("action", "policy_action", "reward"):
        ep[key][-1] = 0
    ep["intervened"][-1] = False
    return ep


def make_info(seed: int) -> EpisodeInfo:
    return EpisodeInfo(
        task="pick_cube" if seed % 4 else "peg_insert",
        source=("sim", "real", "demo", "intervention")[seed % 4],
        success=seed % 3 == 0,
        operator="op",
        start_time=1.7e9 + seed,
        seed=seed,
        initial_state={"object_pose": [0.1 * seed, 1.0 / 3.0, -2.0, 1.0, 0.0, 0.0, 0.0]},
    )


def assert_episode_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value.astype(got[key].dtype), err_msg=key)
