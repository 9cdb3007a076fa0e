"""A real learner under a stream of hostile messages over real ZeroMQ: it stays up, keeps every
invalid or unprocessable message out of its buffers, counts each kind, logs each kind rarely, and
a resume replays none of them."""

from __future__ import annotations

import csv
import logging
import time

import numpy as np
import zmq

from robot_rl.loop.learner import Learner
from robot_rl.loop.run_config import RunConfig
from robot_rl.loop.train_job import free_endpoint
from robot_rl.transport.protocol import Message, decode, encode

SPEC = {"tcp_pose": ((7,), np.dtype(np.float32))}
CAPACITY = 5_000


def _episode(n: int = 4) -> dict[str, np.ndarray]:
    return {
        "tcp_pose": np.linspace(-1, 1, n * 7, dtype=np.float32).reshape(n, 7),
        "action": np.zeros((n, 7), np.float32),
        "policy_action": np.zeros((n, 7), np.float32),
        "reward": np.zeros(n, np.float32),
        "intervened": np.zeros(n, bool),
        "success_prob": np.full(n, np.nan, np.float32),
        "policy_version": np.zeros(n, np.int64),
        "timestamp": np.arange(n, dtype=np.float64),
        "is_first": np.arange(n) == 0,
        "is_last": np.arange(n) == n - 1,
        "is_terminal": np.zeros(n, bool),
        "episode_id": np.zeros(n, np.int64),
        "step": np.arange(n, dtype=np.int64),
    }


def _set(key, value):
    def mutate(rows):
        rows[key] = value(rows) if callable(value) else value
        return "transitions", rows, {"mode": "train"}

    return mutate


def _drop(key):
    def mutate(rows):
        del rows[key]
        return "transitions", rows, {"mode": "train"}

    return mutate


def _meta(kind, meta, arrays=False):
    return lambda rows: (kind, rows if arrays else {}, meta)


def _pose(value):
    def mutate(rows):
        rows["tcp_pose"] = rows["tcp_pose"].copy()
        rows["tcp_pose"][1, 3] = value
        return "transitions", rows, {"mode": "train"}

    return mutate


# Each passes the wire protocol and fails the learner's payload schema.
INVALID = {
    "obs NaN": _pose(np.nan),
    "obs inf": _pose(-np.inf),
    "obs absurd": _pose(1e30),
    "obs int dtype": _set("tcp_pose", lambda r: r["tcp_pose"].astype(np.int32)),
    "obs bool dtype": _set("tcp_pose", np.ones((4, 7), bool)),
    "obs rank": _set("tcp_pose", lambda r: r["tcp_pose"][..., None]),
    "obs shape": _set("tcp_pose", lambda r: r["tcp_pose"][:, :6].copy()),
    "obs rows": _set("tcp_pose", lambda r: r["tcp_pose"][:3].copy()),
    "flag dtype": _set("is_last", lambda r: r["is_last"].astype(np.uint8)),
    "flag scalar": _set("is_first", np.array(True)),
    "action range": _set("action", np.full((4, 7), 3.0, np.float32)),
    "action NaN": _set("action", np.full((4, 7), np.nan, np.float32)),
    "action rank": _set("action", np.zeros(4, np.float32)),
    "reward NaN": _set("reward", np.full(4, np.nan, np.float32)),
    "reward absurd": _set("reward", np.full(4, 1e30, np.float32)),
    "reward rank": _set("reward", np.zeros((4, 2), np.float32)),
    "missing reward": _drop("reward"),
    "missing obs": _drop("tcp_pose"),
    "extra array": _set("evil", np.zeros(4, np.float32)),
    "zero rows": lambda r: ("transitions", {k: v[:0] for k, v in r.items()}, {"mode": "train"}),
    "too many rows": lambda r: (
        "transitions",
        {k: np.repeat(v, CAPACITY // 4 + 1, axis=0) for k, v in r.items()},
        {"mode": "train"},
    ),
    "success_prob range": _set("success_prob", np.full(4, 2.0, np.float32)),
    "policy_version negative": _set("policy_version", np.full(4, -5, np.int64)),
    "timestamp inf": _set("timestamp", np.full(4, np.inf)),
    "step float": _set("step", np.zeros(4, np.float32)),
    "mode unknown": lambda r: ("transitions", r, {"mode": "hack"}),
    "mode int": lambda r: ("transitions", r, {"mode": 5}),
    "meta unknown": lambda r: ("transitions", r, {"mode": "train", "x": 1}),
    "episode_id negative": lambda r: ("transitions", r, {"mode": "train", "episode_id": -1}),
    "stats takeovers str": _meta("stats", {"mode": "train", "takeovers": "abc"}),
    "stats steps negative": _meta("stats", {"mode": "train", "steps": -3}),
    "stats success str": _meta("stats", {"mode": "train", "success": "yes"}),
    "stats return NaN": _meta("stats", {"mode": "train", "return": float("nan")}),
    "stats return absurd": _meta("stats", {"mode": "train", "return": 1e300}),
    "stats steps float": _meta("stats", {"mode": "train", "steps": 2.5}),
    "stats with arrays": _meta("stats", {"mode": "train"}, arrays=True),
}
# Each passes the schema and fails in the buffers: a stream must start with an is_first row.
UNPROCESSABLE = {
    "no episode start": _set("is_first", np.zeros(4, bool)),
}


def _hostile_stream(count: int, seed: int):
    """(case, kind, arrays, meta): a valid episode every 10th message, else a seeded bad one."""
    rng = np.random.default_rng(seed)
    cases = [*INVALID, *UNPROCESSABLE]
    for i in range(count):
        if i % 10 == 0:
            yield "valid", "transitions", _episode(), {"mode": "train"}
            continue
        case = cases[int(rng.integers(len(cases)))]
        yield case, *{**INVALID, **UNPROCESSABLE}[case](_episode())


def _send_all(endpoint, hash_, count, seed):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, b"mallory/1")
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sent, acks = {}, set()
    for seq, (case, kind, arrays, meta) in enumerate(_hostile_stream(count, seed)):
        meta = {**meta, "first_unacked": 0}
        sock.send_multipart(encode(Message(kind, "mallory", hash_, 1, seq, 0, arrays, meta)))
        sent[case] = sent.get(case, 0) + 1
        while sock.poll(0):
            acks.add(decode(sock.recv_multipart()).seq)
    return sock, sent, acks


def _pump(learner, until, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        learner.server.check_alive()
        for msg in learner.server.receive():
            learner.ingest(msg)
        if until():
            return True
        time.sleep(0.01)
    return False


def _assert_clean(buffer):
    rows = min(buffer.rows_written, buffer.capacity)
    assert np.isfinite(buffer.obs["tcp_pose"][:rows]).all()
    assert np.abs(buffer.obs["tcp_pose"][:rows]).max() <= 1.0
    assert np.abs(buffer.action[:rows]).max() <= 1.0 and np.isfinite(buffer.task_reward).all()


def test_ten_thousand_hostile_messages_leave_the_learner_up_and_its_buffers_clean(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    cfg = RunConfig()
    cfg.learner.replay_capacity = CAPACITY
    learner = Learner(cfg, SPEC, tmp_path / "run", endpoint=free_endpoint())
    learner.server.start()
    count = 10_000
    try:
        sock, sent, acks = _send_all(learner.server.endpoint, cfg.data_hash(), count, seed=0)
        invalid = sum(n for case, n in sent.items() if case in INVALID)
        bad_rows = (
            sum(
                n * (CAPACITY // 4 + 1) * 4 if case == "too many rows" else n * 4
                for case, n in sent.items()
                if case in INVALID and not case.startswith("stats") and case != "zero rows"
            )
            - sent.get("flag scalar", 0) * 4
        )  # a 0-d is_first holds no rows
        assert len(sent) == len(INVALID) + len(UNPROCESSABLE) + 1, "every case was sent"
        assert _pump(
            learner,
            lambda: (
                learner.server.counters["rejected_messages"]
                + len(learner.quarantine)
                + learner.online.rows_written // 4
                == count
            ),
            120,
        ), learner.server.counters
        while sock.poll(500):
            acks.add(decode(sock.recv_multipart()).seq)
        sock.close()
        c = learner.server.counters
        assert c["rejected_messages"] == invalid
        assert c["rejected_rows"] == bad_rows
        assert len(learner.quarantine) == sent["no episode start"]
        assert (
            learner.online.rows_written == 4 * sent["valid"]
            and learner.env_steps == 3 * sent["valid"]
        )
        assert learner.online.size == 3 * sent["valid"]
        assert learner.episodes == 0  # no stats message was valid
        _assert_clean(learner.online)
        # rejected messages are acknowledged like accepted ones: the sender learns nothing
        assert acks == set(range(count))
        summary = learner.summary(1.0)
        assert summary["rejected_messages"] == invalid and summary["quarantined"] == len(
            learner.quarantine
        )
        assert (tmp_path / "run" / "quarantine" / "index.jsonl").exists()
        learner._report(1.0, 0.0, 0.0)
        with open(tmp_path / "run" / "metrics.csv") as fh:
            row = list(csv.DictReader(fh))[-1]
        assert int(row["rejected_messages"]) == invalid and int(row["rejected_rows"]) == bad_rows
        assert int(row["quarantined"]) == sent["no episode start"]
        assert int(row["bytes_per_env_step"]) > 0
    finally:
        learner.close()
    # one line per kind at first, then at most one per kind per interval: a handful, not 9,000
    lines = [
        r for r in caplog.records if "rejected" in r.getMessage() or "quarantined" in r.getMessage()
    ]
    assert 2 <= len(lines) <= 3 * 2
    # --resume replays the journal: the valid rows come back, nothing quarantined does
    caplog.clear()
    again = Learner(cfg, SPEC, tmp_path / "run", resume=True, endpoint=free_endpoint())
    try:
        assert again.online.rows_written == 4 * sent["valid"]
        assert len(again.quarantine) == sent["no episode start"]
        _assert_clean(again.online)
        assert f"{sent['no episode start']} quarantined or invalid ones skipped" in caplog.text
    finally:
        again.close()


def test_learning_stalled_is_said_when_most_updates_are_skipped():
    from robot_rl.loop.learner import STALL_S, _StallWatch

    watch = _StallWatch()
    for t in np.arange(0, STALL_S, 0.5):
        watch.update(skipped=t > 3.0, now=float(t))
    assert watch.stalled(STALL_S) == (int(2 * STALL_S) - 7, int(2 * STALL_S))
    healthy = _StallWatch()
    for t in np.arange(0, STALL_S, 0.5):
        healthy.update(skipped=int(t) % 2 == 0, now=float(t))
    assert healthy.stalled(STALL_S) is None  # half skipped: noisy, not stalled
    assert watch.stalled(3 * STALL_S) is None  # no updates lately says nothing about skipping
