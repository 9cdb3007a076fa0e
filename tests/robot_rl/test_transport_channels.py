"""Actor <-> learner over real ZeroMQ sockets, actors and learners in separate processes."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from robot_rl.transport import keys
from robot_rl.transport.channels import REFUSED, ActorClient, LearnerServer, LinkTiming, is_loopback
from robot_rl.transport.journal import Journal
from robot_rl.transport.protocol import Limits, Message, decode, encode, weights_checksum
from robot_rl.transport.spool import Spool

FAST = LinkTiming(heartbeat_s=0.1, peer_timeout_s=1.0, resend_after_s=0.5)
HASH = "c0ffee"
SPAWN = mp.get_context("spawn")


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _batch(actor: int, seq: int, rows: int = 8) -> dict[str, np.ndarray]:
    return {
        "tcp_pose": np.full((rows, 7), seq, np.float32),
        "actor": np.full(rows, actor, np.int64),
        "intervened": np.zeros(rows, bool),
    }


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _actor_process(
    endpoint: str,
    index: int,
    batches: int,
    spool: str,
    result: mp.Queue,
    key_dir: str | None = None,
    pause_every: int = 0,
) -> None:
    curve = keys.client_keys(key_dir) if key_dir else None
    client = ActorClient(endpoint, f"actor-{index}", HASH, spool, timing=FAST, curve=curve).start()
    weights_seen = []
    for seq in range(batches):
        client.send("transitions", _batch(index, seq), policy_version=0)
        if pause_every and seq % pause_every == 0:
            time.sleep(0.05)
        if (w := client.take_weights()) is not None:
            weights_seen.append(w.version)
    flushed = client.flush(timeout_s=60)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not weights_seen:
        if (w := client.take_weights()) is not None:
            weights_seen.append(w.version)
        time.sleep(0.01)
    client.close()
    result.put((index, flushed, weights_seen, dict(client.counters)))


def _start_actors(endpoint, count, batches, tmp_path, **kw):
    result = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=_actor_process,
            args=(endpoint, i, batches, str(tmp_path / f"spool{i}"), result),
            kwargs=kw,
        )
        for i in range(count)
    ]
    for p in procs:
        p.start()
    return procs, result


def _drain(server: LearnerServer, into: dict, until, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until():
        for msg in server.receive():
            into.setdefault(msg.actor_id, []).append((msg.seq, float(msg.arrays["tcp_pose"][0, 0])))
        time.sleep(0.005)


def test_four_actor_processes_deliver_every_batch_in_order_and_get_weights(tmp_path):
    endpoint = _free_endpoint()
    server = LearnerServer(endpoint, HASH, timing=FAST).start()
    server.publish_weights({"pi.w": np.ones((64, 64), np.float32)}, version=5)
    procs, result = _start_actors(endpoint, 4, 200, tmp_path)
    got: dict[str, list] = {}
    _drain(server, got, lambda: sum(map(len, got.values())) == 800, 60)
    reports = [result.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
    server.close()
    assert sorted(got) == [f"actor-{i}" for i in range(4)]
    for rows in got.values():
        assert [seq for seq, _ in rows] == list(range(200))
        assert [value for _, value in rows] == [
            float(s) for s in range(200)
        ]  # payload matches its seq
    for index, flushed, weights_seen, counters in reports:
        assert flushed, f"actor {index} had unacknowledged batches: {counters}"
        assert weights_seen == [5]


def test_actor_spools_while_learner_is_away_and_resends_on_reconnect(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    endpoint = _free_endpoint()
    client = ActorClient(endpoint, "actor-0", HASH, tmp_path / "spool", timing=FAST).start()
    for seq in range(30):
        client.send("transitions", _batch(0, seq))
    assert _wait(lambda: len(client.spool) == 30, 5)
    assert _wait(lambda: "learner unreachable at " + endpoint in caplog.text, 15)
    assert str(tmp_path / "spool") in caplog.text  # says where the data goes
    server = LearnerServer(endpoint, HASH, timing=FAST).start()
    for seq in range(30, 40):
        client.send("transitions", _batch(0, seq))
    got: dict[str, list] = {}
    _drain(server, got, lambda: len(got.get("actor-0", [])) == 40, 20)
    assert client.flush(10)
    assert [s for s, _ in got["actor-0"]] == list(range(40))
    assert len(client.spool) == 0 and not list((tmp_path / "spool").glob("*.msg"))
    client.close()
    server.close()


def _learner_process(endpoint: str, journal_dir: str) -> None:
    server = LearnerServer(endpoint, HASH, timing=FAST, journal=Journal(journal_dir))
    for frames in Journal(journal_dir).replay():
        server.restore(frames)
    server.start()
    while True:
        server.receive()
        time.sleep(0.01)


def test_learner_killed_with_sigkill_and_restarted_loses_and_duplicates_nothing(tmp_path):
    endpoint = _free_endpoint()
    journal = str(tmp_path / "journal")
    learner = SPAWN.Process(target=_learner_process, args=(endpoint, journal))
    learner.start()
    procs, result = _start_actors(endpoint, 4, 300, tmp_path, pause_every=5)
    assert _wait(lambda: sum(1 for _ in Journal(journal).replay()) >= 100, 30)
    os.kill(learner.pid, signal.SIGKILL)  # mid-stream
    learner.join()
    assert sum(1 for _ in Journal(journal).replay()) < 1200
    time.sleep(1.5)  # long enough for the actors to notice and spool
    learner = SPAWN.Process(target=_learner_process, args=(endpoint, journal))
    learner.start()
    reports = [result.get(timeout=90) for _ in procs]
    os.kill(learner.pid, signal.SIGKILL)
    learner.join()
    for p in procs:
        p.join(10)
    seen: dict[str, list[int]] = {}
    for frames in Journal(journal).replay():
        msg = decode(frames)
        seen.setdefault(msg.actor_id, []).append(msg.seq)
        assert float(msg.arrays["tcp_pose"][0, 0]) == msg.seq
    assert all(flushed for _, flushed, _, _ in reports), reports
    assert sum(c.get("outages", 0) for *_, c in reports) >= 1, (
        "the kill was not noticed by any actor"
    )
    assert sorted(seen) == [f"actor-{i}" for i in range(4)]
    for seqs in seen.values():
        assert seqs == list(range(300))  # every batch exactly once, in order


def test_dead_peers_are_noticed_within_the_timeout(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    endpoint = _free_endpoint()
    server = LearnerServer(endpoint, HASH, timing=FAST).start()
    client = ActorClient(endpoint, "actor-7", HASH, tmp_path / "spool", timing=FAST).start()
    assert _wait(lambda: client.connected and server.live_actors() == ["actor-7"], 5)
    client.close()
    t0 = time.monotonic()
    assert _wait(lambda: server.live_actors() == [], 5)
    assert time.monotonic() - t0 < FAST.peer_timeout_s + 1.0
    assert "actor-7" in caplog.text and "marked gone" in caplog.text
    client = ActorClient(endpoint, "actor-7", HASH, tmp_path / "spool", timing=FAST).start()
    assert _wait(lambda: server.live_actors() == ["actor-7"], 5)  # a restarted actor rejoins
    server.close()
    t0 = time.monotonic()
    assert _wait(lambda: not client.connected, 5)
    assert time.monotonic() - t0 < FAST.peer_timeout_s + 1.0
    client.close()


def test_config_mismatch_is_refused_and_only_the_learner_log_names_the_hashes(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    endpoint = _free_endpoint()
    server = LearnerServer(endpoint, "aaaa", timing=FAST).start()
    client = ActorClient(endpoint, "actor-0", "bbbb", tmp_path / "spool", timing=FAST).start()
    client.send("transitions", _batch(0, 0))
    assert _wait(lambda: client.error is not None, 5)
    # without keys the peer is unauthenticated: the learner's hash would let it forge data
    assert "aaaa" not in client.error and "refused by the learner" in client.error
    assert server.rejections["config"] >= 1 and "learner has aaaa" in caplog.text
    assert server.receive() == []
    client.close()
    server.close()


def test_an_authenticated_actor_is_told_both_config_hashes(tmp_path):
    key_dir = tmp_path / "keys"
    keys.generate(key_dir)
    endpoint = _free_endpoint()
    server = LearnerServer(endpoint, "aaaa", timing=FAST, curve=keys.server_keys(key_dir)).start()
    client = ActorClient(
        endpoint,
        "actor-0",
        "bbbb",
        tmp_path / "spool",
        timing=FAST,
        curve=keys.client_keys(key_dir),
    ).start()
    client.send("transitions", _batch(0, 0))
    assert _wait(lambda: client.error is not None, 5)
    assert "actor actor-0 has bbbb, learner has aaaa" in client.error
    client.close()
    server.close()


def test_binding_beyond_loopback_without_keys_warns(caplog):
    caplog.set_level(logging.WARNING)
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://[::1]:5555")
    assert is_loopback("ipc:///tmp/learner") and not is_loopback("tcp://10.0.0.2:5555")
    server = LearnerServer("tcp://0.0.0.0:0", HASH, timing=FAST)
    server.close()
    assert "SECURITY" in caplog.text and "without CURVE keys" in caplog.text
    caplog.clear()
    LearnerServer(_free_endpoint(), HASH, timing=FAST).close()
    assert "SECURITY" not in caplog.text


def _raw_dealer(endpoint: str, identity: bytes) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def test_wrong_protocol_version_gets_a_reply_naming_both_versions(tmp_path, caplog):
    endpoint = _free_endpoint()
    server = LearnerServer(endpoint, HASH, timing=FAST).start()
    sock = _raw_dealer(endpoint, b"old-actor/1")
    header = msgpack.unpackb(encode(Message("heartbeat", "old-actor", HASH))[0])
    header["protocol"] = 0
    sock.send_multipart([msgpack.packb(header)])
    assert sock.poll(5000)
    reply = decode(sock.recv_multipart())
    assert reply.kind == "reject"
    assert reply.meta == {"reason": REFUSED}  # unauthenticated: nothing about the learner
    assert server.rejections["version"] == 1
    assert "peer speaks v0, this side speaks v1" in caplog.text
    sock.close()
    server.close()


def _fuzz_messages(count: int, seed: int = 0):
    """Invalid inputs: garbage, flipped header bytes, truncations, frames dropped or added."""
    rng = np.random.default_rng(seed)
    valid = [
        bytes(f)
        for f in encode(
            Message("transitions", "actor-0", HASH, 1, 0, 0, _batch(0, 0), {"first_unacked": 0})
        )
    ]
    for _ in range(count):
        kind = rng.integers(5)
        frames = list(valid)
        if kind == 0:
            frames = [rng.bytes(int(rng.integers(0, 300))) for _ in range(int(rng.integers(1, 5)))]
        elif kind == 1:
            head = bytearray(frames[0])
            for pos in rng.integers(0, len(head), int(rng.integers(1, 6))):
                head[pos] = int(rng.integers(256))
            frames[0] = bytes(head)
        elif kind == 2:
            i = int(rng.integers(len(frames)))
            frames[i] = frames[i][: int(rng.integers(0, max(len(frames[i]), 1)))]
        elif kind == 3:
            frames = frames[: int(rng.integers(1, len(frames)))]
        else:
            frames = frames + [rng.bytes(int(rng.integers(0, 64)))]
        yield frames


def test_ten_thousand_bad_messages_are_each_rejected_and_the_learner_keeps_serving(
    tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="robot_rl.transport.channels")
    endpoint = _free_endpoint()
    server = LearnerServer(endpoint, HASH, timing=FAST, log_every_s=3600).start()
    # The intruder's identity never matches the actor_id inside the messages, so even a mutation
    # that happens to decode is refused: every one of the messages must be rejected with a logged
    # reason.
    intruder = _raw_dealer(endpoint, b"intruder/1")
    sent = 0
    for frames in _fuzz_messages(10_000):
        intruder.send_multipart(frames)
        sent += 1
    assert _wait(lambda: sum(server.rejections.values()) == sent, 60), server.rejections
    rejected_logs = [r for r in caplog.records if "rejected a message" in r.getMessage()]
    assert len(rejected_logs) == len(server.rejections)  # one line per kind, not per message
    assert server.receive() == [] and server.expected == {}
    # Oversized: two frames each under libzmq's per-frame cap but over the total limit together.
    small = LearnerServer(
        _free_endpoint(), HASH, timing=FAST, limits=Limits(max_message_bytes=1 << 20)
    ).start()
    big = encode(
        Message(
            "transitions",
            "intruder",
            HASH,
            1,
            0,
            0,
            {"a": np.zeros(150_000, np.float32), "b": np.zeros(150_000, np.float32)},
            {"first_unacked": 0},
        )
    )
    intruder2 = _raw_dealer(small.endpoint, b"intruder/1")
    intruder2.send_multipart(big)
    assert _wait(lambda: small.rejections["malformed"] == 1, 5)
    assert "exceeds the 1048576-byte limit" in caplog.text
    small.close()
    intruder2.close()
    # ... and a real actor is still served.
    client = ActorClient(endpoint, "actor-0", HASH, tmp_path / "spool", timing=FAST).start()
    client.send("transitions", _batch(0, 0))
    assert client.flush(10)
    assert [m.seq for m in server.receive()] == [0]
    client.close()
    intruder.close()
    server.close()


def test_curve_admits_the_key_holder_and_refuses_everyone_else(tmp_path):
    key_dir = tmp_path / "keys"
    keys.generate(key_dir)
    with pytest.raises(FileExistsError, match="already exist"):
        keys.generate(key_dir)
    endpoint = _free_endpoint()
    server = LearnerServer(endpoint, HASH, timing=FAST, curve=keys.server_keys(key_dir)).start()
    server.publish_weights({"w": np.ones(4, np.float32)}, version=1)
    # no key at all
    plain = ActorClient(endpoint, "plain", HASH, tmp_path / "s1", timing=FAST).start()
    # a valid CURVE key pair that the learner has not authorised
    other = tmp_path / "other"
    keys.generate(other)
    stranger = ActorClient(
        endpoint,
        "stranger",
        HASH,
        tmp_path / "s2",
        timing=FAST,
        curve=keys.ClientKeys(other / "actor.key_secret", key_dir / "learner.key"),
    ).start()
    for client in (plain, stranger):
        client.send("transitions", _batch(0, 0))
    trusted = ActorClient(
        endpoint, "trusted", HASH, tmp_path / "s3", timing=FAST, curve=keys.client_keys(key_dir)
    ).start()
    trusted.send("transitions", _batch(0, 0))
    assert trusted.flush(10)
    assert _wait(lambda: trusted.take_weights() is not None, 5)
    time.sleep(1.0)
    assert [m.actor_id for m in server.receive()] == ["trusted"]
    assert server.live_actors() == ["trusted"]
    for client in (plain, stranger):
        assert (
            not client.connected and client.counters["acked"] == 0 and client.take_weights() is None
        )
        client.close()
    trusted.close()
    server.close()


def test_actor_keeps_only_the_newest_verified_weights(tmp_path):
    endpoint = _free_endpoint()
    fake = zmq.Context.instance().socket(zmq.ROUTER)
    fake.setsockopt(zmq.LINGER, 0)
    fake.bind(endpoint)
    client = ActorClient(endpoint, "actor-0", HASH, tmp_path / "spool", timing=FAST).start()
    identity, *_ = fake.recv_multipart()  # its first heartbeat

    def weights(version, arrays, checksum=None):
        meta = {"checksum": checksum or weights_checksum(arrays)}
        fake.send_multipart(
            [identity, *encode(Message("weights", "learner", HASH, 0, 0, version, arrays, meta))]
        )

    for version in range(1, 6):
        weights(version, {"w": np.full(3, version, np.float32)})
    weights(6, {"w": np.full(3, 6, np.float32)}, checksum="0" * 32)  # corrupted in transit
    weights(7, {"w": np.array([1.0, np.nan, 0.0], np.float32)})  # never reaches the robot
    assert _wait(lambda: client.counters["weights_rejected"] == 2, 5)
    got = client.take_weights()
    assert got.version == 5 and got.arrays["w"].tolist() == [5.0, 5.0, 5.0]
    assert client.take_weights() is None
    client.close()
    fake.close()


def test_spool_is_bounded_drops_oldest_and_survives_reopening(tmp_path):
    frames = encode(Message("transitions", "a", HASH, 1, 0, 0, {"x": np.zeros(1000, np.uint8)}))
    spool = Spool(tmp_path, max_bytes=5_500)
    for seq in range(10):
        spool.push(1, seq, frames)
    assert spool.nbytes <= 5_500 and spool.dropped == 10 - len(spool) > 0
    kept = [p.name for p in spool.paths(100)]
    reopened = Spool(tmp_path, max_bytes=5_500)
    assert [p.name for p in reopened.paths(100)] == kept
    assert decode(Spool.read(reopened.paths(1)[0])).arrays["x"].shape == (1000,)


def test_journal_drops_a_torn_tail_record(tmp_path):
    journal = Journal(tmp_path)
    for seq in range(3):
        journal.append(encode(Message("transitions", "a", HASH, 1, seq, 0, {"x": np.arange(5)})))
    journal.close()
    segment = next(Path(tmp_path).glob("*.log"))
    segment.write_bytes(segment.read_bytes()[:-7])
    assert [decode(f).seq for f in Journal(tmp_path).replay()] == [0, 1]


def test_learner_accepts_each_seq_once_in_order_and_acks_duplicates(tmp_path):
    endpoint = _free_endpoint()
    server = LearnerServer(endpoint, HASH, timing=FAST)
    for seq in range(3):  # as replayed from the journal on --resume
        server.restore(encode(Message("transitions", "actor-0", HASH, 9, seq, 0, _batch(0, seq))))
    server.start()
    sock = _raw_dealer(endpoint, b"actor-0/9")

    def send(seq, first_unacked):
        sock.send_multipart(
            encode(
                Message(
                    "transitions",
                    "actor-0",
                    HASH,
                    9,
                    seq,
                    0,
                    _batch(0, seq),
                    {"first_unacked": first_unacked},
                )
            )
        )

    for seq, first in [
        (2, 2),
        (4, 2),
        (3, 2),
        (3, 2),
        (4, 2),
    ]:  # duplicate, gap, in order, duplicate, in order
        send(seq, first)
    acks = []
    while len(acks) < 4 and sock.poll(3000):
        msg = decode(sock.recv_multipart())
        if msg.kind == "ack":
            acks.append(msg.seq)
    assert sorted(acks) == [2, 3, 3, 4]  # the gap (first 4) is not acknowledged
    assert [m.seq for m in server.receive()] == [3, 4]
    assert server.counters["duplicates"] == 2 and server.counters["gaps"] == 1
    sock.close()
    server.close()


def test_actor_sends_only_the_arrays_the_learner_stores(tmp_path):
    server = LearnerServer(_free_endpoint(), HASH, timing=FAST).start()
    client = ActorClient(
        server.endpoint,
        "actor-0",
        HASH,
        tmp_path / "spool",
        timing=FAST,
        send_keys=frozenset({"tcp_pose", "intervened"}),
    ).start()
    batch = {**_batch(0, 0), "image_reward_cam": np.zeros((8, 64, 64, 3), np.uint8)}
    client.send("transitions", batch)
    assert client.flush(10)
    [msg] = server.receive()
    assert set(msg.arrays) == {"tcp_pose", "intervened"}
    assert server.counters["bytes"] < 1000  # the 98 KB camera stayed with the actor
    client.close()
    server.close()


def test_a_garbled_spool_file_is_skipped_and_the_sender_goes_on(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    endpoint = _free_endpoint()
    first = ActorClient(endpoint, "actor-0", HASH, tmp_path / "spool", timing=FAST).start()
    for seq in range(6):
        first.send("transitions", _batch(0, seq))
    assert _wait(lambda: len(first.spool) == 6, 5)
    first.close()
    garbled = first.spool.paths(6)[2]
    garbled.write_bytes(garbled.read_bytes()[:40])  # a power cut while it was written
    server = LearnerServer(endpoint, HASH, timing=FAST).start()
    client = ActorClient(endpoint, "actor-0", HASH, tmp_path / "spool", timing=FAST).start()
    got: dict[str, list] = {}
    _drain(server, got, lambda: len(got.get("actor-0", [])) == 5, 20)
    client.send("transitions", _batch(0, 6))
    _drain(server, got, lambda: len(got.get("actor-0", [])) == 6, 20)
    assert client.flush(10) and client.error is None
    assert [v for _, v in got["actor-0"]] == [0, 1, 3, 4, 5, 6]
    assert garbled.name in caplog.text and client.spool.garbled == 1
    client.close()
    server.close()
