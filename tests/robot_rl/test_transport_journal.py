"""The journal's durability policy: when records reach the disk, and what a bad policy says."""

from __future__ import annotations

import os

import pytest

from robot_rl.transport import journal as journal_module
from robot_rl.transport.journal import Journal


@pytest.mark.parametrize(("policy", "syncs"), [("always", 5), ("interval", 1), ("none", 0)])
def test_fsync_policy_decides_which_appends_reach_the_disk(tmp_path, monkeypatch, policy, syncs):
    calls, real_fsync = [], os.fsync
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    journal = Journal(tmp_path, fsync=policy, fsync_interval_s=3600)
    for i in range(5):
        journal.append([b"header", bytes([i]) * 10])
    assert len(calls) == syncs
    journal.close()  # closing syncs whatever an interval left in the page cache
    assert len(calls) == syncs + (policy != "none")
    assert [f[1] for f in Journal(tmp_path).replay()] == [bytes([i]) * 10 for i in range(5)]


def test_an_unknown_fsync_policy_is_named():
    with pytest.raises(ValueError, match="'sometimes' is not one of"):
        Journal("/tmp/unused-journal", fsync="sometimes")
