"""Learner and actors as processes on the twin: kill -9 the learner, kill an actor, restart both."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest
from process_run import small_run

from robot_rl.loop.train_job import actor_process, free_endpoint, learner_process
from robot_rl.transport.journal import Journal
from robot_rl.transport.protocol import decode

SPAWN = mp.get_context("spawn")


def _journal(run: Path) -> dict[tuple[str, int], list[int]]:
    """Sequence numbers per actor session the learner holds: what its checkpoint covers, then
    what its journal holds since."""
    try:
        sessions = json.loads((run / "checkpoint" / "state.json").read_text())["run"]["sessions"]
    except FileNotFoundError:  # none yet, or this instant the learner swaps in a new one
        sessions = []
    covered = {(a, s): n for a, s, n in sessions}
    seqs = {key: list(range(n)) for key, n in covered.items()}
    for frames in Journal(run / "journal").replay():
        msg = decode(frames)
        key = (msg.actor_id, msg.session)
        if msg.seq >= covered.get(key, 0):
            seqs.setdefault(key, []).append(msg.seq)
    return seqs


def _count(run: Path) -> int:
    return sum(map(len, _journal(run).values()))


def _updates(run: Path) -> int:
    state = run / "checkpoint" / "state.json"
    return json.loads(state.read_text())["agent"]["critic_steps"] if state.exists() else -1


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _spooled(run: Path, actor: str) -> int:
    return len(list((run / "spool" / actor).glob("*.msg")))


@pytest.mark.slow
def test_learner_sigkill_resume_and_actor_kill_rejoin_lose_nothing(tmp_path):
    cfg, run, endpoint = small_run(), tmp_path / "run", free_endpoint()

    def learner(resume):
        ready = SPAWN.Event()
        proc = SPAWN.Process(
            target=learner_process, args=(cfg, str(run), resume, endpoint, ready), name="learner"
        )
        proc.start()
        assert ready.wait(120), "learner did not start listening"
        return proc

    def actor(i):
        proc = SPAWN.Process(
            target=actor_process,
            name=f"actor-{i}",
            args=(cfg, endpoint, f"actor-{i}", str(run / "spool" / f"actor-{i}"), 1, i),
        )
        proc.start()
        return proc

    lp = learner(resume=False)
    actors = [actor(0), actor(1)]
    _wait(lambda: _updates(run) >= 20 and _count(run) >= 40, 240, "training with a checkpoint")

    # 1) kill -9 the learner mid-run: the actors keep acting and spool
    os.kill(lp.pid, signal.SIGKILL)
    lp.join()
    updates_at_kill, count_at_kill = _updates(run), _count(run)
    _wait(
        lambda: _spooled(run, "actor-0") > 0 and _spooled(run, "actor-1") > 0, 60, "actors spooling"
    )
    assert all(p.is_alive() for p in actors)

    # 2) restart with --resume: spooled data arrives, training continues from the checkpoint
    lp = learner(resume=True)
    _wait(
        lambda: _updates(run) > updates_at_kill and _count(run) > count_at_kill + 20,
        240,
        "training to continue after resume",
    )
    _wait(
        lambda: _spooled(run, "actor-0") == 0 and _spooled(run, "actor-1") == 0,
        60,
        "spools to drain",
    )

    # 3) kill -9 an actor: the learner carries on; a restarted actor rejoins as a new session
    os.kill(actors[1].pid, signal.SIGKILL)
    actors[1].join()
    before = _count(run)
    _wait(lambda: _count(run) > before + 10, 120, "the learner to keep receiving from actor-0")
    assert lp.is_alive()
    sessions_before = {s for (a, s) in _journal(run) if a == "actor-1"}
    actors[1] = actor(1)
    _wait(
        lambda: {s for (a, s) in _journal(run) if a == "actor-1"} - sessions_before,
        120,
        "actor-1 to rejoin",
    )

    # 4) stop everything cleanly: actors flush, the learner checkpoints on SIGTERM
    for p in actors:
        os.kill(p.pid, signal.SIGTERM)
    for p in actors:
        p.join(60)
        assert p.exitcode == 0
    os.kill(lp.pid, signal.SIGTERM)
    lp.join(60)
    assert lp.exitcode == 0
    summary = json.loads((run / "learner_summary.json").read_text())
    assert summary["updates"] >= _updates(run) > updates_at_kill
    assert summary["quarantined"] == 0 and summary["rejected_messages"] == 0

    # Nothing lost, nothing twice: every session's sequence numbers arrived exactly once, in order,
    # and nothing is left unacknowledged in the spools of the actors that exited cleanly.
    seqs = _journal(run)
    assert (
        len({s for (a, s) in seqs if a == "actor-1"}) == 2
        and len({s for (a, s) in seqs if a == "actor-0"}) == 1
    )
    for key, got in seqs.items():
        assert got == list(range(len(got))), (
            f"{key}: sequence numbers {got[:5]}... not contiguous from 0"
        )
    assert _spooled(run, "actor-0") == 0 and _spooled(run, "actor-1") == 0
