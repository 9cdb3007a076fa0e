"""Checkpoints hold the buffers; the journal keeps only what arrived since the last checkpoint.

A real learner fed over real ZeroMQ (train rows with operator takeovers, demonstrations, stats)
is checkpointed, fed more, and dropped without a final checkpoint (as `kill -9` leaves it): a
resume rebuilds buffers, counters, sessions and open intervention segments exactly, nothing
doubled, offline-store rows included once; a long run's journal stays below one interval's data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import zmq
from test_offline_preload import _write_store

from robot_rl.agents.replay_buffer import ReplayBuffer
from robot_rl.loop.learner import Learner
from robot_rl.loop.run_config import RunConfig, load_run_config
from robot_rl.loop.train_job import free_endpoint
from robot_rl.transport.protocol import Message, decode, encode

SPEC = {"tcp_pose": ((7,), np.dtype(np.float32)), "gripper_width": ((1,), np.dtype(np.float32))}


def _config(tmp_path: Path, capacity: int = 2_000, offline: bool = True) -> RunConfig:
    stores = [{"store": str(_write_store(tmp_path / "demos.zarr", [2, 5]))}] if offline else []
    return load_run_config(
        None,
        {
            "sac": {"hidden": [32, 32]},
            "learner": {"replay_capacity": capacity},
            "offline": stores,
            "transport": {"journal_fsync": "none"},
        },
    )


def _rows(n: int, episode_start: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n rows of a running episode; a few operator takeovers, some spanning batches."""
    intervened = rng.random(n) < 0.3
    return {
        "tcp_pose": rng.uniform(-1, 1, (n, 7)).astype(np.float32),
        "gripper_width": rng.uniform(0, 0.08, (n, 1)).astype(np.float32),
        "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32),
        "policy_action": np.zeros((n, 7), np.float32),
        "reward": rng.random(n).astype(np.float32),
        "intervened": intervened,
        "success_prob": np.full(n, np.nan, np.float32),
        "policy_version": np.zeros(n, np.int64),
        "timestamp": np.arange(n, dtype=np.float64),
        "is_first": (np.arange(n) == 0) & episode_start,
        "is_last": np.zeros(n, bool),
        "is_terminal": np.zeros(n, bool),
        "episode_id": np.zeros(n, np.int64),
        "step": np.arange(n, dtype=np.int64),
    }


class _Actor:
    """A protocol-speaking actor over a DEALER socket: sends in order, counts acks."""

    def __init__(self, endpoint: str, hash_: str, name: str, seed: int):
        self.name, self.hash, self.seq = name, hash_, 0
        self.session = 1000 + seed
        self.rng = np.random.default_rng(seed)
        self.acked: set[int] = set()
        self.rows = 0
        self.connect(endpoint)

    def connect(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.ROUTING_ID, f"{self.name}/{self.session}".encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, kind: str, arrays: dict, meta: dict) -> None:
        meta = {**meta, "first_unacked": self.seq}
        msg = Message(kind, self.name, self.hash, self.session, self.seq, 0, arrays, meta)
        self.sock.send_multipart(encode(msg))
        self.seq += 1
        self.rows += len(arrays.get("is_first", ()))

    def episode(
        self, batches: int, batch_rows: int = 6, demo: bool = False, start: bool = True
    ) -> None:
        """An episode's batches; `start=False` ends the episode `open_episode` began."""
        for b in range(batches):
            rows = _rows(batch_rows, start and b == 0, self.rng)
            if b == batches - 1:
                rows["is_last"][-1] = rows["is_terminal"][-1] = True
            if demo:
                rows["intervened"][:] = True
            self.send("transitions", rows, {"mode": "demo" if demo else "train"})
        if not demo:
            self.send("stats", {}, {"mode": "train", "success": True, "steps": 10})

    def open_episode(self, batches: int) -> None:
        """Batches of an episode that goes on after them (a takeover may be open at the end)."""
        for b in range(batches):
            rows = _rows(6, b == 0, self.rng)
            rows["intervened"][-2:] = True
            self.send("transitions", rows, {"mode": "train"})

    def collect_acks(self) -> None:
        while self.sock.poll(0):
            msg = decode(self.sock.recv_multipart())
            if msg.kind == "ack":
                self.acked.add(msg.seq)


def _pump(learner: Learner, actors: list[_Actor], timeout_s: float = 30.0) -> None:
    """Until every message sent so far is acknowledged and in the buffers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        learner.server.check_alive()
        for msg in learner.server.receive():
            learner.ingest(msg)
        for a in actors:
            a.collect_acks()
        if all(len(a.acked) == a.seq for a in actors) and all(
            learner.covered.get((a.name, a.session), 0) == a.seq for a in actors
        ):
            return
        time.sleep(0.01)
    raise AssertionError("messages were not all acknowledged and ingested in time")


def _assert_buffers_equal(got: ReplayBuffer, want: ReplayBuffer) -> None:
    assert (got.cursor, got.rows_written) == (want.cursor, want.rows_written)
    assert got.streams == want.streams
    for key in want.obs:
        np.testing.assert_array_equal(got.obs[key], want.obs[key])
    for key in ReplayBuffer._ARRAYS:
        np.testing.assert_array_equal(getattr(got, key), getattr(want, key), err_msg=key)


def _counters(learner: Learner) -> dict:
    return {
        "env_steps": learner.env_steps,
        "demo_steps": learner.demo_steps,
        "episodes": learner.episodes,
        "train_window": list(learner.train_window),
        "covered": dict(learner.covered),
        "segments": learner.segments.state(),
    }


def test_resume_from_checkpoint_and_journal_gives_the_same_buffers_nothing_doubled(tmp_path):
    cfg = _config(tmp_path)
    run = tmp_path / "run"
    learner = Learner(cfg, SPEC, run, endpoint=free_endpoint())
    learner.server.start()
    actors = [_Actor(learner.server.endpoint, cfg.data_hash(), f"actor-{i}", i) for i in range(2)]
    try:
        preloaded = learner.offline.rows_written
        assert preloaded > 0
        actors[0].episode(3, demo=True)
        for a in actors:
            a.episode(4)
        _pump(learner, actors)
        learner.save(1.0)
        first_segments = sorted((run / "journal").glob("*.log"))
        assert first_segments == []  # all of it is in the checkpoint
        for a in actors:
            a.episode(2)
            a.open_episode(2)  # the kill comes inside an episode and inside a takeover
        _pump(learner, actors)
        assert learner.segments.state(), "a takeover is open at the kill"
        online, offline, counters = learner.online, learner.offline, _counters(learner)
        in_journal = len(list(learner.journal.replay()))
        # only what came after the checkpoint: per actor 2 + 1 stats, then 2 more batches
        assert in_journal == 2 * 5
    finally:
        learner.close()  # no final checkpoint: what kill -9 leaves
        for a in actors:
            a.sock.close()
    resumed = Learner(cfg, SPEC, run, resume=True, endpoint=free_endpoint())
    try:
        assert resumed.preloaded == []  # the checkpoint holds the store rows: not read twice
        _assert_buffers_equal(resumed.online, online)
        _assert_buffers_equal(resumed.offline, offline)
        assert _counters(resumed) == counters
        assert resumed.server.expected == {(a.name, a.session): a.seq for a in actors}
        # the next batches continue the open episodes and takeovers as if nothing happened
        resumed.server.start()
        for a in actors:
            a.sock.close()
            a.connect(resumed.server.endpoint)
            a.episode(1, start=False)
        _pump(resumed, actors)
        assert resumed.online.rows_written == online.rows_written + 2 * 6
        assert resumed.segments.state() == dict.fromkeys(counters["segments"], False)
        assert len(resumed.quarantine) == 0
    finally:
        for a in actors:
            a.sock.close()
        resumed.close()


def test_a_kill_between_checkpoint_and_journal_pruning_inserts_nothing_twice(tmp_path):
    cfg = _config(tmp_path, offline=False)
    run = tmp_path / "run"
    learner = Learner(cfg, SPEC, run, endpoint=free_endpoint())
    learner.server.start()
    actor = _Actor(learner.server.endpoint, cfg.data_hash(), "actor-0", 0)
    try:
        actor.episode(5)
        _pump(learner, [actor])
        kept = [p.read_bytes() for p in sorted((run / "journal").glob("*.log"))]
        learner.save(1.0)
        online = learner.online
    finally:
        actor.sock.close()
        learner.close()
    for i, data in enumerate(kept):  # the segments as they were before the prune
        (run / "journal" / f"{i:08d}.log").write_bytes(data)
    resumed = Learner(cfg, SPEC, run, resume=True, endpoint=free_endpoint())
    try:
        _assert_buffers_equal(resumed.online, online)
        assert resumed.env_steps == learner.env_steps
    finally:
        resumed.close()


def test_journal_stays_bounded_over_many_checkpoints_and_resume_time_is_measured(tmp_path):
    """20k state rows through the learner with a checkpoint every 2k: the journal never holds
    more than one interval, the checkpoint grows with the data, and resume reads both."""
    cfg = _config(tmp_path, capacity=50_000, offline=False)
    run = tmp_path / "run"
    learner = Learner(cfg, SPEC, run, endpoint=free_endpoint())
    learner.server.start()
    actor = _Actor(learner.server.endpoint, cfg.data_hash(), "actor-0", 0)
    sizes = []
    try:
        for _ in range(10):
            for _ in range(20):
                actor.episode(10, batch_rows=10)  # 2k rows per checkpoint interval
                _pump(learner, [actor])
            journal = sum(p.stat().st_size for p in (run / "journal").glob("*.log"))
            learner.save(1.0)
            checkpoint = sum(
                p.stat().st_size for p in (run / "checkpoint").rglob("*") if p.is_file()
            )
            left = sum(p.stat().st_size for p in (run / "journal").glob("*.log"))
            sizes.append((journal, left, checkpoint))
        rows = learner.online.rows_written
        assert rows == 20_000
    finally:
        actor.sock.close()
        learner.close()
    interval = max(j for j, _, _ in sizes)
    assert all(left == 0 for _, left, _ in sizes)
    # one interval's journal: about the same every time, not growing with the run
    assert max(j for j, _, _ in sizes) < 1.5 * min(j for j, _, _ in sizes)
    assert sizes[-1][2] < 20_000 * 200  # the checkpoint holds rows, not the capacity
    started = time.monotonic()
    resumed = Learner(cfg, SPEC, run, resume=True, endpoint=free_endpoint())
    resume_s = time.monotonic() - started
    try:
        assert resumed.online.rows_written == rows
    finally:
        resumed.close()
    print(
        json.dumps(
            {
                "rows": rows,
                "journal_bytes_per_interval": interval,
                "checkpoint_bytes": sizes[-1][2],
                "resume_s": round(resume_s, 2),
            }
        )
    )
    assert resume_s < 10.0
