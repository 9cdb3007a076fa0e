"""The two ends of the actor <-> learner link: `ActorClient` (DEALER) and `LearnerServer` (ROUTER).

Each end owns its ZeroMQ socket in one background I/O thread; the caller talks to it through
thread-safe methods and never blocks on the network. Delivery of transitions and stats is
reliable and in order per actor session:

- the actor numbers every message (`seq`, per `session` = its start time in ns) and keeps it
  until the learner acknowledges it; unacknowledged messages are resent (go-back-N), and while the
  learner is unreachable they go to a bounded disk spool that is resent on reconnect;
- each message carries `first_unacked`, the oldest sequence number the actor still holds for that
  session, so a learner that has never seen the session knows where it starts;
- the learner accepts only the next expected `seq` of a session (duplicates are acknowledged again,
  gaps are dropped and resent by the actor), journals what it accepts, then acknowledges.

Weights flow the other way; the actor keeps only the newest. Heartbeats go both ways every
`heartbeat_s`; a peer silent for `peer_timeout_s` is reported gone.

The learner checks a message's payload against its `PayloadSchema` before journaling it; a message
that fails is acknowledged like any other (the actor moves on, an intruder learns nothing),
counted in `rejected_messages` / `rejected_rows`, and logged at most once per kind per interval.
Without CURVE keys a refused peer is told only that it was refused; the learner logs why.
If either end's I/O thread dies (a journal on a full disk, a bug), `failure` says why and the
caller stops: nothing is acknowledged after that.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq
import zmq.auth.thread

from robot_rl.transport import keys as keyfiles
from robot_rl.transport.journal import FsyncPolicy, Journal
from robot_rl.transport.ledger import Ledger
from robot_rl.transport.protocol import (
    DEFAULT_LIMITS,
    PROTOCOL_VERSION,
    Limits,
    Message,
    ProtocolError,
    Scalar,
    VersionMismatch,
    decode,
    encode,
    weights_checksum,
)
from robot_rl.transport.ratelimit import RateLimitedLog
from robot_rl.transport.schema import PayloadError, PayloadSchema
from robot_rl.transport.spool import Spool

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (session, seq)


@dataclass(frozen=True)
class LinkTiming:
    """Heartbeat period, how long a silent peer is trusted, when unacknowledged data is resent."""

    heartbeat_s: float = 0.5
    peer_timeout_s: float = 3.0
    resend_after_s: float = 2.0


@dataclass
class Weights:
    """A verified set of actor parameters received from the learner."""

    version: int
    arrays: dict[str, np.ndarray]
    checksum: str
    received_at: float


@dataclass
class _Pending:
    header: dict[str, Any]
    buffers: list[bytes]
    spool_path: Path | None = None
    sent_at: float = 0.0


class ActorClient:
    """The actor's end: reliable, ordered transitions/stats out; newest weights in; never blocks."""

    def __init__(
        self,
        endpoint: str,
        actor_id: str,
        config_hash: str,
        spool_dir: str | Path,
        *,
        spool_max_bytes: int = 1 << 30,
        spool_fsync: FsyncPolicy = "always",
        max_inflight: int = 64,
        timing: LinkTiming = LinkTiming(),
        curve: keyfiles.ClientKeys | None = None,
        limits: Limits = DEFAULT_LIMITS,
        send_keys: frozenset[str] | None = None,
        ledger: Ledger | None = None,
    ):
        """`send_keys`: the arrays of a transitions message that go to the learner (what it
        stores); others (e.g. cameras only the reward model reads) stay here. None: all.
        `ledger`: where to record each message sent and acknowledged (robot-rl chaos)."""
        self.ledger = ledger
        self.endpoint = endpoint
        self.send_keys = send_keys
        self.actor_id = actor_id
        self.config_hash = config_hash
        self.session = time.time_ns()
        self.timing = timing
        self.limits = limits
        self.max_inflight = max_inflight
        self.spool = Spool(spool_dir, spool_max_bytes, spool_fsync)
        self.counters = collections.Counter()
        self.error: str | None = None  # set when the learner refuses us (version/config mismatch)
        self.connected = False
        self._lock = threading.Lock()
        self._outbox: collections.deque[tuple[Key, _Pending]] = collections.deque()
        self._inflight: dict[Key, _Pending] = {}
        self._next_seq = 0
        self._weights: Weights | None = None
        self._stop = threading.Event()
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.ROUTING_ID, f"{actor_id}/{self.session}".encode())
        self._sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on live connections; else we spool
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if curve is not None:
            public, secret = keyfiles.load_secret(curve.secret_file)
            self._sock.curve_publickey = public
            self._sock.curve_secretkey = secret
            self._sock.curve_serverkey = keyfiles.load_public(curve.server_public_file)
        self._sock.connect(endpoint)
        self._thread = threading.Thread(target=self._run, name=f"actor-io-{actor_id}", daemon=True)
        self._last_heard = 0.0
        self._down_since = time.monotonic()
        self._last_down_report = 0.0

    # --- caller side -------------------------------------------------------------------------

    def start(self) -> ActorClient:
        self._thread.start()
        return self

    def send(
        self,
        kind: str,
        arrays: dict[str, np.ndarray],
        policy_version: int = 0,
        meta: dict[str, Scalar] | None = None,
    ) -> int:
        """Queue a `transitions` or `stats` message for reliable delivery; returns its seq."""
        if kind not in ("transitions", "stats"):
            raise ValueError(f"only transitions and stats are sent reliably, not {kind!r}")
        if self.send_keys is not None:
            arrays = {k: v for k, v in arrays.items() if k in self.send_keys}
        msg = Message(
            kind,
            self.actor_id,
            self.config_hash,
            self.session,
            0,
            policy_version,
            arrays,
            dict(meta or {}),
        )
        frames = encode(msg)
        header = msgpack.unpackb(frames[0])
        buffers = [bytes(f) for f in frames[1:]]  # own a copy: the caller may reuse its arrays
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            header["seq"] = seq
            if self.ledger is not None:
                self.ledger.sent(self.session, seq, kind, arrays, msg.meta)
            self._outbox.append(((self.session, seq), _Pending(header, buffers)))
        self.counters["queued"] += 1
        return seq

    def take_weights(self) -> Weights | None:
        """The newest verified weights not yet taken, or None."""
        with self._lock:
            weights, self._weights = self._weights, None
        return weights

    def unacked(self) -> int:
        """Messages not yet acknowledged (queued, in flight or spooled)."""
        with self._lock:
            return (
                len(self._outbox) + len(self._inflight) + len(self.spool) - self._inflight_spooled()
            )

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything sent so far is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.unacked() == 0:
                return True
            time.sleep(0.005)
        return self.unacked() == 0

    def close(self) -> None:
        """Stop the I/O thread; whatever is unacknowledged stays in the spool for the next start."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            for key, item in list(self._inflight.items()) + list(self._outbox):
                if item.spool_path is None:
                    self.spool.push(*key, self._frames(item, key))
            self._inflight.clear()
            self._outbox.clear()
        self._sock.close(linger=0)

    # --- I/O thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # the actor loop checks `error` and stops with this message
            self.error = (
                f"the actor's network thread failed ({type(exc).__name__}: {exc}); "
                f"unacknowledged data stays in the spool {self.spool.directory} for the next start"
            )
            log.critical("actor %s: %s", self.actor_id, self.error, exc_info=True)

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        next_beat = 0.0
        while not self._stop.is_set():
            if poller.poll(2):
                self._receive_all()
            now = time.monotonic()
            if now >= next_beat:
                self._send_frames(
                    encode(Message("heartbeat", self.actor_id, self.config_hash, self.session))
                )
                next_beat = now + self.timing.heartbeat_s
            with self._lock:
                self._check_link(now)
                if self.error is None:
                    self._pump(now)

    def _receive_all(self) -> None:
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                msg = decode(frames, self.limits)
            except ProtocolError as exc:
                self.counters["rejected"] += 1
                log.error(
                    "actor %s: message from learner %s rejected: %s",
                    self.actor_id,
                    self.endpoint,
                    exc,
                )
                continue
            with self._lock:
                self._handle(msg)

    def _handle(self, msg: Message) -> None:
        now = time.monotonic()
        self._last_heard = now
        if not self.connected and msg.kind != "reject":
            self.connected = True
            level = logging.WARNING if self.counters["outages"] or len(self.spool) else logging.INFO
            log.log(
                level,
                "actor %s: learner at %s reachable after %.1f s; %d spooled batches to resend",
                self.actor_id,
                self.endpoint,
                now - self._down_since,
                len(self.spool),
            )
        if msg.kind == "ack":
            item = self._inflight.pop((msg.session, msg.seq), None)
            if item is not None:
                self.counters["acked"] += 1
                if self.ledger is not None:
                    self.ledger.acked(msg.session, msg.seq)
                if item.spool_path is not None:
                    self.spool.remove(item.spool_path)
        elif msg.kind == "weights":
            self._accept_weights(msg)
        elif msg.kind == "reject":
            self.error = str(msg.meta.get("reason", "refused by the learner"))
            log.error(
                "actor %s: the learner at %s refused this actor: %s",
                self.actor_id,
                self.endpoint,
                self.error,
            )

    def _accept_weights(self, msg: Message) -> None:
        checksum = weights_checksum(msg.arrays)
        if checksum != msg.meta.get("checksum"):
            self.counters["weights_rejected"] += 1
            log.error(
                "actor %s: weights v%d fail their checksum (%s != %s); keeping v%s",
                self.actor_id,
                msg.policy_version,
                checksum,
                msg.meta.get("checksum"),
                self._weights and self._weights.version,
            )
            return
        for name, array in msg.arrays.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                self.counters["weights_rejected"] += 1
                log.error(
                    "actor %s: weights v%d hold NaN/inf in %r; keeping the current ones",
                    self.actor_id,
                    msg.policy_version,
                    name,
                )
                return
        if self._weights is None or msg.policy_version >= self._weights.version:
            arrays = {k: np.array(v) for k, v in msg.arrays.items()}  # own copies, writable
            self._weights = Weights(msg.policy_version, arrays, checksum, time.monotonic())
        self.counters["weights"] += 1

    def _check_link(self, now: float) -> None:
        silent = now - self._last_heard
        if self.connected and silent > self.timing.peer_timeout_s:
            self.connected = False
            self._down_since = now
            self.counters["outages"] += 1
            for key, item in self._inflight.items():
                if item.spool_path is None:
                    item.spool_path = self.spool.push(*key, self._frames(item, key))
            self._inflight.clear()
        outage = now - self._down_since
        if (
            not self.connected
            and outage > self.timing.peer_timeout_s
            and now - self._last_down_report > 10.0
        ):
            self._last_down_report = now
            log.warning(
                "actor %s: learner unreachable at %s (no reply for %.1f s); "
                "acting with the current weights and spooling transitions to %s "
                "(%d batches, %.1f MB)",
                self.actor_id,
                self.endpoint,
                now - self._last_heard if self._last_heard else outage,
                self.spool.directory,
                len(self.spool),
                self.spool.nbytes / 1e6,
            )

    def _pump(self, now: float) -> None:
        """Move queued messages to the wire (in order) or to the spool."""
        if not self.connected:
            while self._outbox:
                key, item = self._outbox.popleft()
                item.spool_path = self.spool.push(*key, self._frames(item, key))
                self.counters["spooled"] += 1
            return
        # Spooled messages are older than anything queued: they go first.
        if len(self.spool) > self._inflight_spooled():
            room = self.max_inflight - len(self._inflight)
            for path in self.spool.paths(len(self._inflight) + max(room, 0)):
                if room <= 0:
                    break
                key = _spool_key(path)
                if key in self._inflight:
                    continue
                frames = self.spool.load(path)
                if frames is None:
                    continue
                item = _Pending(msgpack.unpackb(frames[0]), frames[1:], path)
                if self._transmit(key, item, now):
                    self.counters["resent"] += 1
                room -= 1
            while self._outbox:  # keep order: new data waits behind the spool
                key, item = self._outbox.popleft()
                item.spool_path = self.spool.push(*key, self._frames(item, key))
            return
        while self._outbox and len(self._inflight) < self.max_inflight:
            key, item = self._outbox[0]
            if not self._transmit(key, item, now):
                break
            self._outbox.popleft()
        if self._inflight:
            oldest = next(iter(self._inflight.values()))
            if now - oldest.sent_at > self.timing.resend_after_s:  # go-back-N
                for key, item in list(self._inflight.items()):
                    self._transmit(key, item, now)
                    self.counters["resent"] += 1

    def _transmit(self, key: Key, item: _Pending, now: float) -> bool:
        if self._send_frames(self._frames(item, key)):
            item.sent_at = now
            self._inflight[key] = item  # sends happen in key order, so this dict stays sorted
            self.counters["sent"] += 1
            return True
        return False

    def _frames(self, item: _Pending, key: Key) -> list[bytes]:
        # `first_unacked` is stamped at send time: the oldest message of this session we still hold.
        first = next((s for (sess, s) in self._inflight if sess == key[0]), key[1])
        item.header["meta"]["first_unacked"] = min(first, key[1])
        return [msgpack.packb(item.header, use_bin_type=True), *item.buffers]

    def _inflight_spooled(self) -> int:
        return sum(1 for item in self._inflight.values() if item.spool_path is not None)

    def _send_frames(self, frames: list) -> bool:
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False


def _spool_key(path: Path) -> Key:
    session, seq = path.stem.split("-")
    return int(session), int(seq)


@dataclass
class PeerState:
    """What the learner knows about one connected actor process."""

    actor_id: str
    session: int
    last_heard: float
    alive: bool = True
    weights_version_sent: int = -1


@dataclass
class _Slot:
    frames: list | None = None
    version: int = -1
    published_at: float = 0.0


class LearnerServer:
    """The learner's end: validates, orders, journals and acknowledges; publishes newest weights."""

    def __init__(
        self,
        endpoint: str,
        config_hash: str,
        *,
        journal: Journal | None = None,
        timing: LinkTiming = LinkTiming(),
        curve: keyfiles.ServerKeys | None = None,
        limits: Limits = DEFAULT_LIMITS,
        schema: PayloadSchema | None = None,
        log_every_s: float = 10.0,
    ):
        self.config_hash = config_hash
        self.timing = timing
        self.limits = limits
        self.journal = journal
        self.schema = schema
        self.authenticated = curve is not None
        self.counters = collections.Counter()
        self.rejections = collections.Counter()  # reason category -> count
        self.failure: str | None = None  # why the I/O thread stopped, if it died
        self._failed_on_os = False
        self._log = RateLimitedLog(log, log_every_s)
        self.peers: dict[bytes, PeerState] = {}
        self.expected: dict[tuple[str, int], int] = {}  # (actor_id, session) -> next seq to accept
        self._inbox: collections.deque[Message] = collections.deque()
        self._weights = _Slot()
        self._lock = threading.Lock()
        # held from journaling a message to queueing it, so a journal cut sees both or neither
        self._journal_lock = threading.Lock()
        self._stop = threading.Event()
        self._ctx = zmq.Context.instance()
        self._auth = None
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes + limits.max_header_bytes)
        if curve is not None:
            self._auth = zmq.auth.thread.ThreadAuthenticator(self._ctx)
            self._auth.start()
            if not Path(curve.authorized_dir).is_dir():
                raise FileNotFoundError(
                    f"CURVE authorized-keys folder not found: {curve.authorized_dir}"
                )
            self._auth.configure_curve(domain="*", location=str(curve.authorized_dir))
            public, secret = keyfiles.load_secret(curve.secret_file)
            self._sock.curve_server = True
            self._sock.curve_publickey = public
            self._sock.curve_secretkey = secret
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(linger=0)
            raise OSError(f"learner cannot listen on {endpoint}: {exc}") from None
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        if curve is None and not is_loopback(endpoint):
            log.warning(
                "SECURITY: the learner listens on %s without CURVE keys: anyone who can reach "
                "this port can send it training data. Use transport.keys (robot-rl keys "
                "generate) on any link that leaves this machine, or bind tcp://127.0.0.1",
                endpoint,
            )
        self._thread = threading.Thread(target=self._run, name="learner-io", daemon=True)

    def start(self) -> LearnerServer:
        self._thread.start()
        return self

    def restore(self, frames: list[bytes]) -> Message:
        """Re-read one journaled message (on --resume) and mark it as already accepted; raises
        ProtocolError (the sequence number still counts) if it fails today's checks."""
        msg = decode(frames, self.limits)
        key = (msg.actor_id, msg.session)
        self.expected[key] = max(self.expected.get(key, 0), msg.seq + 1)
        if self.schema is not None:
            self.schema.check(msg)
        return msg

    def check_alive(self) -> None:
        """Raise naming the cause if the I/O thread has died: OSError for a disk or socket the
        operator must fix (a full journal disk), RuntimeError for anything else."""
        if self.failure is not None:
            if self._failed_on_os:
                raise OSError(self.failure)
            raise RuntimeError(self.failure)
        if (
            self._thread.ident is not None
            and not self._thread.is_alive()
            and not self._stop.is_set()
        ):
            raise RuntimeError("the learner's network thread stopped without saying why")

    def receive(self, max_messages: int = 1 << 30) -> list[Message]:
        """Accepted transitions/stats messages since the last call, in arrival order."""
        out = []
        with self._lock:
            while self._inbox and len(out) < max_messages:
                out.append(self._inbox.popleft())
        return out

    def cut_journal(self) -> tuple[list[Path], list[Message]]:
        """Rotate the journal for a checkpoint: returns its closed segments and the accepted
        messages not yet received, which are exactly the ones those segments hold beyond what
        was received before. Once the caller has them in a checkpoint, the segments may go."""
        with self._journal_lock:
            segments = self.journal.rotate() if self.journal is not None else []
            return segments, self.receive()

    def publish_weights(self, arrays: dict[str, np.ndarray], version: int) -> None:
        """Send actor parameters to every live actor (and any that joins later); newest wins."""
        meta = {"checksum": weights_checksum(arrays)}
        frames = [
            bytes(f)
            for f in encode(
                Message("weights", "learner", self.config_hash, 0, 0, version, arrays, meta)
            )
        ]
        with self._lock:
            self._weights = _Slot(frames, version, time.monotonic())
        self.counters["weights_published"] += 1

    def live_actors(self) -> list[str]:
        peers = list(self.peers.values())  # one atomic copy: the I/O thread adds peers as they join
        return sorted({p.actor_id for p in peers if p.alive})

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()

    # --- I/O thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # whatever it is, the owner must hear of it and stop
            self._failed_on_os = isinstance(exc, OSError)
            self.failure = (
                str(exc)
                if isinstance(exc, OSError)
                else f"the learner's network thread failed: {type(exc).__name__}: {exc}"
            )
            log.critical("%s", self.failure, exc_info=not isinstance(exc, OSError))

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        next_beat = 0.0
        while not self._stop.is_set():
            if poller.poll(2):
                for _ in range(1000):  # bounded so heartbeats and weights still go out under load
                    try:
                        frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._on_frames(frames)
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.timing.heartbeat_s
                self._beat(now)
            self._push_weights()

    def _on_frames(self, frames: list) -> None:
        identity = bytes(frames[0].buffer) if frames else b""
        try:
            msg = decode(frames[1:], self.limits)
        except VersionMismatch as exc:
            self._reject(identity, "version", str(exc))
            return
        except ProtocolError as exc:
            self._drop(identity, "malformed", str(exc))
            return
        if identity.split(b"/", 1)[0] != msg.actor_id.encode():
            self._drop(
                identity,
                "identity",
                f"actor_id {msg.actor_id!r} does not match the connection's identity",
            )
            return
        if msg.config_hash != self.config_hash:
            self._reject(
                identity,
                "config",
                f"config hash mismatch: actor {msg.actor_id} has {msg.config_hash or '-'}, "
                f"learner has {self.config_hash or '-'} (run both from the same config)",
            )
            return
        if msg.kind not in ("heartbeat", "transitions", "stats"):
            self._drop(identity, "kind", f"actors may not send {msg.kind!r} messages")
            return
        now = time.monotonic()
        peer = self.peers.get(identity)
        if peer is None or not peer.alive:
            log.info("actor %s (session %d) joined", msg.actor_id, msg.session)
            peer = self.peers[identity] = PeerState(msg.actor_id, msg.session, now)
            self.counters["joins"] += 1
            self._send(identity, Message("heartbeat", msg.actor_id, self.config_hash, msg.session))
        peer.last_heard = now
        if msg.kind == "heartbeat":
            return
        first = msg.meta.get("first_unacked")
        if type(first) is not int or not 0 <= first <= msg.seq:
            self._drop(
                identity,
                "malformed",
                f"first_unacked {first!r} missing or not in [0, seq={msg.seq}]",
            )
            return
        key = (msg.actor_id, msg.session)
        expected = max(self.expected.get(key, first), first)
        if msg.seq > expected:  # an earlier message is missing; the actor will resend from there
            self.counters["gaps"] += 1
            return
        if msg.seq == expected:
            self._accept(msg, frames[1:])
            self.expected[key] = expected + 1
        else:
            self.counters["duplicates"] += 1
        self._send(identity, Message("ack", msg.actor_id, self.config_hash, msg.session, msg.seq))

    def _accept(self, msg: Message, frames: list) -> None:
        """Journal and queue `msg` if its payload passes the schema; else count and log it."""
        try:
            if self.schema is not None:
                self.schema.check(msg)
        except PayloadError as exc:
            self.counters["rejected_messages"] += 1
            self.counters["rejected_rows"] += rows_in(msg)
            self.rejections["payload"] += 1
            self._log.log(
                logging.WARNING,
                "payload",
                "learner: rejected %s seq %d of actor %s: %s",
                msg.kind,
                msg.seq,
                msg.actor_id,
                exc,
            )
            return
        with self._journal_lock:
            if self.journal is not None:
                self.journal.append(frames)
            with self._lock:
                self._inbox.append(msg)
        self.counters[msg.kind] += 1
        self.counters["bytes"] += sum(memoryview(f).nbytes for f in frames)

    def _beat(self, now: float) -> None:
        for identity, peer in list(self.peers.items()):
            if not peer.alive:
                continue
            if now - peer.last_heard > self.timing.peer_timeout_s:
                peer.alive = False
                log.warning(
                    "actor %s (session %d) silent for %.1f s: marked gone",
                    peer.actor_id,
                    peer.session,
                    now - peer.last_heard,
                )
                continue
            self._send(
                identity, Message("heartbeat", peer.actor_id, self.config_hash, peer.session)
            )
        stale = [i for i, p in self.peers.items() if not p.alive and now - p.last_heard > 60.0]
        for identity in stale:
            del self.peers[identity]

    def _push_weights(self) -> None:
        with self._lock:
            slot = self._weights
        if slot.frames is None:
            return
        for identity, peer in self.peers.items():
            if peer.alive and peer.weights_version_sent < slot.version:
                try:
                    self._sock.send_multipart([identity, *slot.frames], zmq.NOBLOCK, copy=False)
                    peer.weights_version_sent = slot.version
                except zmq.Again:
                    pass  # this actor's queue is full; it gets the newest version on a later pass
                except zmq.ZMQError:
                    peer.alive = False

    def _send(self, identity: bytes, msg: Message) -> None:
        try:
            self._sock.send_multipart([identity, *encode(msg)], zmq.NOBLOCK)
        except (
            zmq.ZMQError
        ):  # peer gone (ROUTER_MANDATORY) or its queue is full: heartbeats will tell
            self.counters["send_failed"] += 1

    def _drop(self, identity: bytes, category: str, reason: str) -> None:
        self.rejections[category] += 1
        self._log.log(
            logging.WARNING,
            category,
            "learner: rejected a message from %r: %s",
            identity[:80],
            reason,
        )

    def _reject(self, identity: bytes, category: str, reason: str) -> None:
        """Refuse the peer; an authenticated one is told why (both sides then log the same
        versions and hashes), anyone else only that it was refused."""
        self._drop(identity, category, reason)
        meta: dict[str, Scalar] = {"reason": REFUSED}
        if self.authenticated:
            meta = {
                "reason": reason,
                "learner_protocol": PROTOCOL_VERSION,
                "learner_config_hash": self.config_hash,
            }
        actor_id = identity.split(b"/", 1)[0].decode("ascii", "replace")
        actor_id = (
            actor_id
            if actor_id and all(c.isalnum() or c in "_.:-" for c in actor_id)
            else "unknown"
        )
        self._send(identity, Message("reject", actor_id[:64], self.config_hash, meta=meta))


REFUSED = (
    "refused by the learner: its protocol version or run config differs from this actor's "
    "(the learner's log names both)"
)


def rows_in(msg: Message) -> int:
    """Rows a transitions message claims to hold (0 for anything else)."""
    flags = msg.arrays.get("is_first")
    return (
        int(flags.shape[0]) if msg.kind == "transitions" and flags is not None and flags.ndim else 0
    )


def is_loopback(endpoint: str) -> bool:
    """Whether `endpoint` is reachable only from this machine (ipc, inproc, a loopback address)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = endpoint.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: assume it is reachable from outside
