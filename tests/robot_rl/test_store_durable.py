"""Episode-store commits that survive power loss: what is fsynced, and in which order."""

from __future__ import annotations

import os
from pathlib import Path

from store_testdata import assert_episode_equal, make_episode, make_info

from robot_rl.store import EpisodeStore


def _record(monkeypatch) -> list[tuple[str, ...]]:
    """Every fsync (of the path behind the fd) and rename, in the order they happen."""
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_a_commit_fsyncs_every_file_and_directory_it_changed_around_the_marker(
    tmp_path, monkeypatch
):
    path = tmp_path / "s"
    with EpisodeStore.open(path, "a") as store:
        store.append(make_episode(0), make_info(0))
        events = _record(monkeypatch)
        store.append(make_episode(1), make_info(1))
        monkeypatch.undo()
    marker = str(path / "meta" / "episode_ends" / "zarr.json")
    renames = [(i, e[1], e[2]) for i, e in enumerate(events) if e[0] == "replace"]
    commit = next(i for i, _, dst in renames if dst == marker)
    synced_at = {}
    for i, event in enumerate(events):
        if event[0] == "fsync":
            synced_at.setdefault(event[1], []).append(i)
    written = {dst for _, _, dst in renames}
    assert any("image_" in dst for dst in written) and any("/data/" in dst for dst in written)
    for i, src, dst in renames:
        assert any(j < i for j in synced_at.get(src, [])), f"{dst} renamed before its data synced"
        parent = str(Path(dst).parent)
        after = [j for j in synced_at.get(parent, []) if j > i]
        assert after, f"the directory of {dst} was not fsynced after the rename"
        if i < commit:
            assert after[0] < commit, f"{dst} is not durable before the commit marker"
    with EpisodeStore.open(path) as reader:
        assert len(reader) == 2
        assert_episode_equal(reader.episode(1), make_episode(1))


def test_without_fsync_nothing_is_synced(tmp_path, monkeypatch):
    events = _record(monkeypatch)
    with EpisodeStore.open(tmp_path / "s", "a", fsync=False) as store:
        store.append(make_episode(0), make_info(0))
        store.append(make_episode(1), make_info(1))
    assert [e for e in events if e[0] == "fsync"] == []
    assert len(EpisodeStore.open(tmp_path / "s")) == 2


def test_a_new_store_is_durable_up_to_its_parent_directory(tmp_path, monkeypatch):
    events = _record(monkeypatch)
    with EpisodeStore.open(tmp_path / "new" / "s", "a") as store:
        store.append(make_episode(0), make_info(0))
    synced = {e[1] for e in events if e[0] == "fsync"}
    assert {str(tmp_path), str(tmp_path / "new"), str(tmp_path / "new" / "s")} <= synced
