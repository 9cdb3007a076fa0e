"""`robot-rl chaos`: a training run in the twin under a seeded schedule of faults, then an audit.

The run is `robot-rl train`'s (learner and actor processes on localhost over ZeroMQ, scripted
operator, the run config's network), with the actors keeping a ledger of what they sent and what
was acknowledged (robot_rl.transport.ledger). Every `gap_s` one fault of the schedule strikes:

- learner_kill: SIGKILL the learner, restart it with --resume;
- learner_stop: SIGSTOP the learner past the peer timeout, then SIGCONT (actors spool meanwhile);
- actor_kill: SIGKILL an actor; it is restarted as `robot-rl train` does (new session, no demos);
- actor_stop: SIGSTOP an actor past the peer timeout, then SIGCONT: its link drops both ways;
- disk_full: the journal's next segment is made a link to /dev/full, so the learner's next
  journal write fails with the kernel's ENOSPC (as on a full disk) and the learner exits on it;
  the link is removed and the learner restarted with --resume;
- poison: a hostile client process sends a stream of messages that each fail the payload schema
  or the buffers (NaN/inf/absurd values, wrong shapes and dtypes, missing and extra arrays, an
  episode without a start, undecodable frames); every row carries a sentinel value so that any
  that reached a buffer would be found.

After the last fault the run goes on for `settle_s` (or until its step budget), then stops as
`robot-rl train` does (actors flush, the learner checkpoints). The audit compares the ledgers
with what the learner holds (final checkpoint + journal since) and reports sent / acknowledged /
ingested / lost (acknowledged, not ingested) / duplicated messages and rows, quarantined and
poisoned rows, each learner restart's recovery time (restart to first acknowledgement) and the
final evaluation next to an undisturbed run of the same config and seed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controllers.config import ConfigError
from robot_rl.loop.run_config import RunConfig
from robot_rl.loop.train_job import (
    LOG_FILE,
    actor_process,
    evaluate_checkpoint,
    free_endpoint,
    learner_process,
    make_env,
    obs_spec,
    run_train,
)

log = logging.getLogger(__name__)

FAULT_KINDS = ("learner_kill", "learner_stop", "actor_kill", "actor_stop", "disk_full", "poison")
RESTARTING = ("learner_kill", "disk_full")  # faults after which the learner starts again
SENTINEL = np.float32(0.4242421)  # first value of every poisoned row's float observations
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ChaosConfig:
    """The fault schedule: how many, how often, seeded."""

    faults: int = 24
    seed: int = 0
    gap_s: float = 4.0  # from the end of one fault (a restarted learner listening) to the next
    settle_s: float | None = 5.0  # run time after the last fault; None: until the step budget
    poison_messages: int = 200  # per poison fault
    baseline: bool = True  # also train undisturbed with the same config and seed

    def __post_init__(self):
        if self.faults < 0:
            raise ConfigError(f"chaos faults: must be >= 0, got {self.faults}")
        if not self.gap_s > 0:
            raise ConfigError(f"chaos gap_s: must be > 0, got {self.gap_s}")
        if self.settle_s is not None and self.settle_s < 0:
            raise ConfigError(f"chaos settle_s: must be >= 0 or None, got {self.settle_s}")
        if self.poison_messages < 1:
            raise ConfigError(f"chaos poison_messages: must be >= 1, got {self.poison_messages}")


def fault_schedule(faults: int, seed: int) -> list[str]:
    """`faults` kinds in a seeded order: each kind at least once (from 6 faults on), learner
    restarts at most a third of them."""
    rng = np.random.default_rng(seed)
    kinds = list(FAULT_KINDS[: min(faults, len(FAULT_KINDS))])
    restarts_left = max(faults // 3 - sum(k in RESTARTING for k in kinds), 0)
    while len(kinds) < faults:
        kind = FAULT_KINDS[int(rng.integers(len(FAULT_KINDS)))]
        if kind in RESTARTING:
            if restarts_left == 0:
                continue
            restarts_left -= 1
        kinds.append(kind)
    rng.shuffle(kinds)
    return kinds


# ---- the hostile client ------------------------------------------------------------------------


def _poisons(obs: dict[str, tuple[tuple[int, ...], str]], action_dim: int) -> dict[str, Any]:
    """name -> function(valid rows) -> (kind, arrays, meta) or raw frames: each one poisoned."""

    def with_obs(value):
        def mutate(rows):
            # the widest float observation, so the sentinel in its first value stays beside it
            key = max(
                (k for k, (_, d) in obs.items() if np.dtype(d).kind == "f"),
                key=lambda k: int(np.prod(obs[k][0])),
            )
            rows[key] = rows[key].copy()
            rows[key].reshape(len(rows[key]), -1)[1, -1] = value
            return "transitions", rows, {"mode": "train"}

        return mutate

    def with_array(key, value):
        def mutate(rows):
            rows[key] = value(rows)
            return "transitions", rows, {"mode": "train"}

        return mutate

    def without(key):
        def mutate(rows):
            del rows[key]
            return "transitions", rows, {"mode": "train"}

        return mutate

    return {
        "obs NaN": with_obs(np.nan),
        "obs inf": with_obs(np.inf),
        "obs absurd": with_obs(1e30),
        "action out of range": with_array("action", lambda r: np.full_like(r["action"], 5.0)),
        "reward NaN": with_array("reward", lambda r: np.full_like(r["reward"], np.nan)),
        "reward shape": with_array("reward", lambda r: np.zeros((len(r["reward"]), 3), "f4")),
        "flag dtype": with_array("is_last", lambda r: r["is_last"].astype(np.uint8)),
        "missing reward": without("reward"),
        "extra array": with_array("evil", lambda r: np.zeros(len(r["reward"]), "f4")),
        "no episode start": with_array("is_first", lambda r: np.zeros_like(r["is_first"])),
        "stats NaN return": lambda r: ("stats", {}, {"mode": "train", "return": float("nan")}),
        "undecodable": lambda r: [b"\x93not msgpack", b"\x00" * 64],
    }


def _poisoned_rows(obs: dict[str, tuple[tuple[int, ...], str]], action_dim: int, n: int = 4):
    """A batch that would be valid, every float observation's first value the sentinel."""
    rows: dict[str, np.ndarray] = {}
    for key, (shape, dtype) in obs.items():
        array = np.zeros((n, *shape), np.dtype(dtype))
        if array.dtype.kind == "f":
            array.reshape(n, -1)[:, 0] = SENTINEL
        rows[key] = array
    rows.update(
        action=np.zeros((n, action_dim), np.float32),
        reward=np.zeros(n, np.float32),
        intervened=np.zeros(n, bool),
        is_first=np.arange(n) == 0,
        is_last=np.arange(n) == n - 1,
        is_terminal=np.zeros(n, bool),
    )
    return rows


def hostile_process(
    endpoint: str,
    config_hash: str,
    obs: dict[str, tuple[tuple[int, ...], str]],
    action_dim: int,
    count: int,
    seed: int,
    report: str,
) -> None:
    """Send `count` poisoned messages as a made-up actor; write what was sent/acked to `report`."""
    import zmq

    from robot_rl.transport.protocol import Message, ProtocolError, decode, encode

    poisons = _poisons(obs, action_dim)
    names = sorted(poisons)
    rng = np.random.default_rng(seed)
    session = 10**18 + seed
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, f"mallory/{session}".encode())
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sent: dict[str, int] = {}
    acked: set[int] = set()

    def drain(timeout_ms: int) -> None:
        while sock.poll(timeout_ms):
            with contextlib.suppress(ProtocolError):
                msg = decode(sock.recv_multipart())
                if msg.kind == "ack":
                    acked.add(msg.seq)
            timeout_ms = 0

    for seq in range(count):
        name = names[int(rng.integers(len(names)))]
        out = poisons[name](_poisoned_rows(obs, action_dim))
        if isinstance(out, list):
            sock.send_multipart(out)
        else:
            kind, arrays, meta = out
            meta = {**meta, "first_unacked": seq}
            sock.send_multipart(
                encode(Message(kind, "mallory", config_hash, session, seq, 0, arrays, meta))
            )
        sent[name] = sent.get(name, 0) + 1
        drain(0)
        time.sleep(0.002)  # a stream, not one burst the socket's queue would cut
    drain(1000)
    sock.close()
    Path(report).write_text(json.dumps({"sent": sent, "acked": len(acked), "session": session}))


# ---- the run -----------------------------------------------------------------------------------


class ChaosRun:
    """Learner, actors and faults of one chaos run in `out`."""

    def __init__(self, cfg: RunConfig, chaos: ChaosConfig, out: Path):
        self.cfg, self.chaos, self.out = cfg, chaos, out
        self.ctx = mp.get_context("spawn")
        self.endpoint = free_endpoint()
        self.log_file = str(out / LOG_FILE)
        self.learner: mp.Process | None = None
        self.actors: list[mp.Process] = []
        self.stopping = False
        self.restarts: list[dict[str, Any]] = []  # one per learner start after the first
        self.faults: list[dict[str, Any]] = []
        self.actor_restarts = 0
        env = make_env(cfg)
        spec = obs_spec(env)
        self.action_dim = int(env.action_space.shape[0])
        env.close()
        from robot_rl.agents.sac import Policy

        policy = Policy(spec, cfg.sac)
        self.obs = {k: (tuple(spec[k][0]), np.dtype(spec[k][1]).str) for k in policy.read_keys}
        total = cfg.demos
        self.demos = [
            total // cfg.num_actors + (i < total % cfg.num_actors) for i in range(cfg.num_actors)
        ]

    # -- processes --
    def start_learner(self, reason: str | None = None) -> float:
        """Start the learner (resuming whatever the run holds) and wait until it listens;
        returns the seconds that took."""
        resume = (self.out / "checkpoint").exists() or any((self.out / "journal").glob("*.log"))
        ready = self.ctx.Event()
        spawned = time.time()
        self.learner = self.ctx.Process(
            target=learner_process,
            args=(self.cfg, str(self.out), resume, self.endpoint, ready),
            name="learner",
        )
        self.learner.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.wait(0.1):
            if not self.learner.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the learner did not come back (exit code {self.learner.exitcode}); "
                    f"see {self.log_file}"
                )
        listening = time.time() - spawned
        if reason is not None:
            self.restarts.append({"after": reason, "spawned": spawned, "listening_s": listening})
        return listening

    def start_actor(self, i: int, demos: int) -> mp.Process:
        p = self.ctx.Process(
            target=actor_process,
            name=f"actor-{i}",
            args=(
                self.cfg,
                self.endpoint,
                f"actor-{i}",
                str(self.out / "spool" / f"actor-{i}"),
                demos,
                i,
                None,
                None,
                self.log_file,
                str(self.out / "ledger" / f"actor-{i}.jsonl"),
            ),
        )
        p.start()
        return p

    def tend(self, seconds: float) -> None:
        """Wait `seconds`, restarting actors that died (as `robot-rl train` supervises them)."""
        deadline = time.monotonic() + seconds
        while True:
            for i, p in enumerate(self.actors):
                if not self.stopping and not p.is_alive():
                    p.join()
                    self.actors[i] = self.start_actor(i, 0)
                    self.actor_restarts += 1
            left = deadline - time.monotonic()
            if left <= 0 or self.learner_done():
                return
            time.sleep(min(0.2, left))

    def learner_done(self) -> bool:
        """The learner ended by itself (its step or time budget)."""
        return self.learner is not None and self.learner.exitcode == 0

    # -- faults --
    def strike(self, kind: str, index: int, rng: np.random.Generator) -> dict[str, Any]:
        t = self.cfg.transport
        past_timeout = t.peer_timeout_s + 2 * t.heartbeat_s + 0.5
        fault: dict[str, Any] = {"kind": kind, "at": time.time()}
        if kind == "learner_kill":
            os.kill(self.learner.pid, signal.SIGKILL)
            self.learner.join()
            self.start_learner(reason=f"{index}:{kind}")
        elif kind == "learner_stop":
            os.kill(self.learner.pid, signal.SIGSTOP)
            self.tend(past_timeout)
            os.kill(self.learner.pid, signal.SIGCONT)
            fault["stopped_s"] = past_timeout
        elif kind in ("actor_kill", "actor_stop"):
            i = int(rng.integers(len(self.actors)))
            fault["actor"] = i
            if kind == "actor_kill":
                os.kill(self.actors[i].pid, signal.SIGKILL)
            else:
                os.kill(self.actors[i].pid, signal.SIGSTOP)
                self.tend(past_timeout)
                os.kill(self.actors[i].pid, signal.SIGCONT)
        elif kind == "disk_full":
            fault.update(self._disk_full(index))
        elif kind == "poison":
            fault.update(self._poison(index))
        fault["took_s"] = round(time.time() - fault["at"], 2)
        return fault

    def _disk_full(self, index: int) -> dict[str, Any]:
        journal = self.out / "journal"
        segments = sorted(journal.glob("*.log"))
        full = journal / f"{(int(segments[-1].stem) + 1 if segments else 0):08d}.log"
        full.symlink_to("/dev/full")
        try:
            self.learner.join(60.0)  # it writes there at its next checkpoint
            exit_code = self.learner.exitcode
            if exit_code is None:
                os.kill(self.learner.pid, signal.SIGKILL)
                self.learner.join()
        finally:
            full.unlink()
        self.start_learner(reason=f"{index}:disk_full")
        return {"learner_exit_code": exit_code, "journal_write_failed": exit_code not in (None, 0)}

    def _poison(self, index: int) -> dict[str, Any]:
        report = self.out / "hostile" / f"{index}.json"
        report.parent.mkdir(exist_ok=True)
        p = self.ctx.Process(
            target=hostile_process,
            name="hostile",
            args=(
                self.endpoint,
                self.cfg.data_hash(),
                self.obs,
                self.action_dim,
                self.chaos.poison_messages,
                self.chaos.seed * 1000 + index,
                str(report),
            ),
        )
        p.start()
        while p.is_alive():
            self.tend(0.2)
        return json.loads(report.read_text()) if report.exists() else {"sent": {}, "acked": 0}

    # -- the whole run --
    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        self.start_learner()
        self.actors = [self.start_actor(i, self.demos[i]) for i in range(self.cfg.num_actors)]
        rng = np.random.default_rng(self.chaos.seed)
        schedule = fault_schedule(self.chaos.faults, self.chaos.seed)
        skipped = 0
        try:
            for index, kind in enumerate(schedule):
                self.tend(self.chaos.gap_s)
                if self.learner_done():
                    skipped = len(schedule) - index
                    break
                fault = self.strike(kind, index, rng)
                self.faults.append(fault)
                log.warning("chaos fault %d/%d: %s", index + 1, len(schedule), fault)
            if self.chaos.settle_s is None:
                while not self.learner_done():
                    if not self.learner.is_alive():
                        break
                    self.tend(1.0)
            else:
                self.tend(self.chaos.settle_s)
            self._stop()
        finally:
            self._kill_all()
        if self.learner.exitcode != 0:
            raise RuntimeError(
                f"the learner failed at the end of the chaos run (exit code "
                f"{self.learner.exitcode}); see {self.log_file}"
            )
        return {"faults_skipped": skipped}

    def _stop(self) -> None:
        """As `robot-rl train` ends: actors flush and stop, then the learner checkpoints."""
        self.stopping = True
        for p in self.actors:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in self.actors:
            p.join(60)
        if self.learner.is_alive():
            os.kill(self.learner.pid, signal.SIGTERM)
        self.learner.join(120)

    def _kill_all(self) -> None:
        for p in [*self.actors, self.learner]:
            if p is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.join()


# ---- the audit ---------------------------------------------------------------------------------


def audit(out: Path, run: ChaosRun) -> dict[str, Any]:
    """Compare the actors' ledgers with what the learner holds; see the module doc."""
    from robot_rl.agents.checkpoint import load_buffers
    from robot_rl.transport.journal import Journal
    from robot_rl.transport.ledger import read_ledger
    from robot_rl.transport.protocol import decode

    sent: dict[tuple[str, int, int], dict[str, Any]] = {}
    acks: dict[tuple[str, int, int], float] = {}
    for path in sorted((out / "ledger").glob("*.jsonl")):
        actor = path.stem
        for e in read_ledger(path):
            key = (actor, e["session"], e["seq"])
            if e["e"] == "sent":
                sent[key] = e
            else:
                acks.setdefault(key, e["t"])
    state = json.loads((out / "checkpoint" / "state.json").read_text())["run"]
    covered = {(a, s): n for a, s, n in state["sessions"]}
    in_journal: list[tuple[str, int, int]] = []
    for frames in Journal(out / "journal").replay():
        msg = decode(frames)
        if msg.seq >= covered.get((msg.actor_id, msg.session), 0):
            in_journal.append((msg.actor_id, msg.session, msg.seq))
    ingested = {k for k in sent if k[2] < covered.get(k[:2], 0)} | set(in_journal)
    actor_ingested = {k for k in ingested if k in sent}
    lost = sorted(k for k in acks if k not in ingested)
    buffers = load_buffers(out / "checkpoint")
    online = buffers["online"]

    def rows_of(keys, demo: bool) -> int:
        return sum(
            sent[k]["rows"]
            for k in keys
            if sent[k]["kind"] == "transitions" and (sent[k]["mode"] == "demo") == demo
        )

    # rows the final checkpoint should hold: every ingested message it covers, once
    in_checkpoint = actor_ingested - set(in_journal)
    expected_online = rows_of(in_checkpoint, demo=False)
    expected_steps = sum(sent[k]["steps"] for k in in_checkpoint if sent[k]["kind"] != "stats")
    held_steps = state["env_steps"] + state["demo_steps"]
    duplicated_journal = len(in_journal) - len(set(in_journal))

    poisoned = 0
    for buffer in buffers.values():
        filled = min(buffer.rows_written, buffer.capacity)
        for ring in buffer.obs.values():
            flat = np.asarray(ring[:filled]).reshape(filled, -1)
            if flat.dtype.kind == "f":
                poisoned += int(np.count_nonzero(flat[:, 0] == SENTINEL))
                poisoned += int(np.count_nonzero(~np.isfinite(flat).all(axis=1)))
    hostile = [json.loads(p.read_text()) for p in sorted((out / "hostile").glob("*.json"))]
    quarantine = out / "quarantine" / "index.jsonl"
    quarantined = len(quarantine.read_text().splitlines()) if quarantine.exists() else 0

    restarts = []
    ack_times = sorted(acks.values())
    for r in run.restarts:
        first = next((t for t in ack_times if t > r["spawned"]), None)
        restarts.append(
            {
                "after": r["after"],
                "listening_s": round(r["listening_s"], 2),
                "first_ack_s": round(first - r["spawned"], 2) if first is not None else None,
            }
        )
    counts: dict[str, int] = {}
    for f in run.faults:
        counts[f["kind"]] = counts.get(f["kind"], 0) + 1
    return {
        "faults": len(run.faults),
        "faults_by_kind": counts,
        "actor_restarts": run.actor_restarts,
        "messages": {
            "sent": len(sent),
            "acknowledged": len(acks),
            "ingested": len(actor_ingested),
            "lost": len(lost),
            "duplicated": max(duplicated_journal, 0),
            "sent_not_acknowledged": len(set(sent) - set(acks)),
        },
        "rows": {
            "online_expected": expected_online,
            "online_in_checkpoint": online.rows_written,
            "duplicated": max(online.rows_written - expected_online, 0),
            "missing": max(expected_online - online.rows_written, 0),
            "steps_expected": expected_steps,
            "steps_in_checkpoint": held_steps,
        },
        "poison": {
            "sent": sum(sum(h["sent"].values()) for h in hostile),
            "acknowledged": sum(h["acked"] for h in hostile),
            "quarantined": quarantined,
            "rows_in_buffers": poisoned,
        },
        "learner_restarts": restarts,
        "max_recovery_s": max(
            (r["first_ack_s"] for r in restarts if r["first_ack_s"] is not None), default=None
        ),
        "lost_keys": [list(k) for k in lost[:20]],
    }


def run_chaos(cfg: RunConfig, chaos: ChaosConfig, out: str | Path) -> dict[str, Any]:
    """The chaos run in `out/chaos` (+ an undisturbed run in `out/baseline`); the report, also
    written to `out/chaos_report.json`."""
    from robot_rl.loop.learner import check_run_dir

    out = Path(out)
    check_run_dir(out / "chaos", resume=False)
    (out / "chaos").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    run = ChaosRun(cfg, chaos, out / "chaos")
    extra = run.run()
    report: dict[str, Any] = {
        "seed": chaos.seed,
        "chaos_wall_s": round(time.monotonic() - started, 1),
        **extra,
        **audit(out / "chaos", run),
    }
    if cfg.final_eval_episodes:
        results = evaluate_checkpoint(
            cfg, out / "chaos" / "checkpoint", cfg.final_eval_episodes, cfg.num_actors
        )
        report["eval_success_rate"] = float(np.mean(results))
    if chaos.baseline:
        report["baseline_eval_success_rate"] = run_train(cfg, out / "baseline")["eval_success_rate"]
    (out / "chaos_report.json").write_text(json.dumps(report, indent=1))
    return report
