"""A writer SIGKILLed at random never leaves a broken store; a reader can follow a live writer."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from store_testdata import assert_episode_equal, make_episode, make_info

from robot_rl.store import EpisodeStore

STEPS = 30
IMAGE = (32, 32, 3)
# Episode i of the store is always make_episode(i): a writer resumes with seed = len(store).
WRITER = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from store_testdata import make_episode, make_info
from robot_rl.store import EpisodeStore
store = EpisodeStore.open(sys.argv[1], mode="a")
seed = len(store)
print("ready", seed, flush=True)
while True:
    store.append(make_episode(seed, steps={STEPS}, image_shape={IMAGE}), make_info(seed))
    seed += 1
"""


def start_writer(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    assert line.startswith("ready"), f"writer did not start: {line!r}"
    return proc


def check_store(path: Path, verified: int) -> int:
    """Open read-only, check each episode not checked yet (and the last one); return the count."""
    store = EpisodeStore.open(path)
    n = len(store)
    for i in sorted({*range(verified, n), n - 1} - {-1}):
        assert_episode_equal(store.episode(i), make_episode(i, steps=STEPS, image_shape=IMAGE))
        assert store.info(i) == make_info(i)
    return n


def uncommitted_leftovers(path: Path) -> bool:
    """Frames or rows past the committed end: evidence that the kill landed inside a commit."""
    store = EpisodeStore.open(path)
    root = zarr.open_group(str(path), mode="r")
    n = store.num_steps
    present = [
        root[f"data/{key}"] for key in ("image_wrist", "action") if key in store.keys
    ]  # may die creating
    written = [arr for arr in present if arr.shape[0] > n]
    return any(np.any(arr[n] != 0) for arr in written)


@pytest.mark.parametrize(
    "kills",
    [pytest.param(4, id="4-kills"), pytest.param(30, id="30-kills", marks=pytest.mark.slow)],
)
def test_sigkill_during_commits_never_corrupts_the_store(tmp_path, kills):
    path = tmp_path / "store"
    rng = random.Random(kills)
    verified, mid_commit = 0, 0
    for _ in range(kills):
        writer = start_writer(path)
        time.sleep(rng.uniform(0.0, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        mid_commit += uncommitted_leftovers(path)
        count = check_store(path, verified)
        assert count >= verified  # committed episodes never disappear
        verified = count
    if kills >= 30:
        assert mid_commit > 0, (
            "no kill landed inside a commit; the test did not exercise the crash path"
        )
    # A final writer cleans up what the killed ones left and goes on appending.
    writer = start_writer(path)
    deadline = time.monotonic() + 30
    while len(EpisodeStore.open(path)) < verified + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGTERM)
    writer.wait()
    with EpisodeStore.open(path, mode="a") as store:
        assert not list(path.rglob("*.partial"))
        for key in store.keys:
            assert store._root[f"data/{key}"].shape[0] == store.num_steps
    assert check_store(path, 0) >= verified + 2


def test_reader_follows_a_writer_that_is_appending(tmp_path):
    path = tmp_path / "store"
    writer = start_writer(path)
    try:
        seen, verified = set(), 0
        store = EpisodeStore.open(path)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and len(seen) < 5:
            store.refresh()
            n = len(store)
            seen.add(n)
            for i in range(verified, n):
                assert_episode_equal(
                    store.episode(i), make_episode(i, steps=STEPS, image_shape=IMAGE)
                )
            verified = n
        assert len(seen) >= 3, f"the reader saw the store at only these sizes: {sorted(seen)}"
        assert writer.poll() is None
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert check_store(path, 0) >= verified
    assert os.path.exists(path / "zarr.json") and np.all(
        np.diff(EpisodeStore.open(path).episode_ends) == STEPS + 1
    )
