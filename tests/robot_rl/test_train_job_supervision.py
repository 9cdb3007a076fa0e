"""The train job's supervision of its processes, and the learner's end when its journal's disk
is full or its network thread dies."""

from __future__ import annotations

import errno
import logging
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from robot_rl.loop.train_job import supervise
from robot_rl.transport.channels import ActorClient, LearnerServer, LinkTiming
from robot_rl.transport.journal import Journal

FAST = LinkTiming(heartbeat_s=0.1, peer_timeout_s=1.0, resend_after_s=0.5)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _crash() -> None:
    raise SystemExit(3)


def test_an_actor_killed_while_the_learner_runs_is_logged_and_restarted(caplog):
    caplog.set_level(logging.ERROR)
    ctx = mp.get_context("spawn")
    learner = ctx.Process(target=_sleep, args=(5.0,))
    learner.start()
    actors = [ctx.Process(target=_sleep, args=(30.0,)) for _ in range(2)]
    for p in actors:
        p.start()
    os.kill(actors[1].pid, signal.SIGKILL)
    started = []

    def restart(i: int) -> mp.Process:
        p = ctx.Process(target=_sleep, args=(30.0,))
        p.start()
        started.append(i)
        return p

    try:
        assert supervise(learner, actors, restart, poll_s=0.1) == {0: 0, 1: 1}
        assert started == [1] and all(p.is_alive() for p in actors)
        assert "actor-1 was killed by signal SIGKILL while the learner runs; restarting it" in (
            caplog.text
        )
    finally:
        for p in actors:
            p.kill()
            p.join()


def test_actors_that_keep_dying_stop_the_learner_and_fail_the_job(caplog):
    caplog.set_level(logging.ERROR)
    ctx = mp.get_context("spawn")
    learner = ctx.Process(target=_sleep, args=(60.0,))
    learner.start()

    def crashing(_: int) -> mp.Process:
        p = ctx.Process(target=_crash)
        p.start()
        return p

    actors = [crashing(0)]
    with pytest.raises(RuntimeError, match="kept dying"):
        supervise(learner, actors, crashing, max_restarts=2, poll_s=0.05)
    assert not learner.is_alive()
    assert caplog.text.count("exited with code 3") == 3


class _FullDisk:
    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def tell(self) -> int:
        return 0

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "closed")

    def close(self) -> None:
        pass


def _free_endpoint() -> str:
    from robot_rl.loop.train_job import free_endpoint

    return free_endpoint()


def test_a_full_journal_disk_stops_the_learner_with_its_reason_and_acks_nothing(
    tmp_path, monkeypatch, caplog
):
    journal = Journal(tmp_path / "journal")
    monkeypatch.setattr(journal, "_open_next", lambda: setattr(journal, "_fh", _FullDisk()))
    server = LearnerServer(_free_endpoint(), "c0ffee", journal=journal, timing=FAST).start()
    client = ActorClient(server.endpoint, "a0", "c0ffee", tmp_path / "spool", timing=FAST).start()
    try:
        client.send("transitions", {"x": np.zeros(3, np.float32)})
        deadline = time.monotonic() + 10
        while server.failure is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(OSError, match="the disk is full") as info:
            server.check_alive()
        assert "--resume" in str(info.value)
        assert "the disk is full" in caplog.text  # logged as it happens, not only when asked
        time.sleep(0.5)
        assert client.unacked() == 1 and server.receive() == []
    finally:
        client.close()
        server.close()
    assert len(list((tmp_path / "spool").glob("*.msg"))) == 1  # kept for the next start


def test_a_network_thread_that_dies_is_reported_to_its_owner(tmp_path, monkeypatch):
    server = LearnerServer(_free_endpoint(), "c0ffee", timing=FAST)

    def broken(now: float) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(server, "_beat", broken)
    server.start()
    try:
        deadline = time.monotonic() + 5
        while server.failure is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(RuntimeError, match="network thread failed: KeyError"):
            server.check_alive()
    finally:
        server.close()
