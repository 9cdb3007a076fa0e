"""The actor spool's durability policy, and what it does with files a power cut garbled."""

from __future__ import annotations

import logging
import os
import struct

import numpy as np
import pytest

from controllers.config import ConfigError
from robot_rl.loop.run_config import load_run_config
from robot_rl.transport import spool as spool_module
from robot_rl.transport.protocol import Message, decode, encode
from robot_rl.transport.spool import Spool


def _frames(value: int) -> list[bytes]:
    msg = Message("transitions", "a", "c0ffee", 1, 0, 0, {"x": np.full(500, value, np.uint8)})
    return [bytes(f) for f in encode(msg)]


def _synced_paths(monkeypatch) -> list[str]:
    synced, real_fsync = [], os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_always_fsyncs_each_file_before_its_rename_and_the_directory_after(tmp_path, monkeypatch):
    synced = _synced_paths(monkeypatch)
    spool = Spool(tmp_path, 1 << 20, fsync="always")
    for seq in range(3):
        spool.push(1, seq, _frames(seq))
    names = [f"{1:020d}-{seq:020d}" for seq in range(3)]
    assert synced == [p for n in names for p in (str(tmp_path / f"{n}.tmp"), str(tmp_path))]


def test_interval_fsyncs_what_was_spooled_since_the_last_time(tmp_path, monkeypatch):
    synced = _synced_paths(monkeypatch)
    clock = iter([0.0, 0.1, 0.2, 1.5])
    monkeypatch.setattr(spool_module.time, "monotonic", lambda: next(clock))
    spool = Spool(tmp_path, 1 << 20, fsync="interval", fsync_interval_s=1.0)
    paths = [spool.push(1, seq, _frames(seq)) for seq in range(3)]
    assert len(synced) == 2  # the first push: its file and the directory
    spool.push(1, 3, _frames(3))
    assert synced[2:] == [
        str(tmp_path / f"{1:020d}-{3:020d}.tmp"),
        str(paths[1]),
        str(paths[2]),
        str(tmp_path),
    ]


def test_none_never_fsyncs(tmp_path, monkeypatch):
    synced = _synced_paths(monkeypatch)
    spool = Spool(tmp_path, 1 << 20, fsync="none")
    for seq in range(3):
        spool.push(1, seq, _frames(seq))
    assert synced == [] and len(spool) == 3


def test_a_garbled_file_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    spool = Spool(tmp_path, 1 << 20)
    paths = [spool.push(1, seq, _frames(seq)) for seq in range(3)]
    paths[0].write_bytes(paths[0].read_bytes()[:300])  # cut short
    data = bytearray(paths[1].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of the array flipped: only the crc32 notices
    paths[1].write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert spool.load(paths[0]) is None
        assert spool.load(paths[1]) is None
    assert paths[0].name in caplog.text and paths[1].name in caplog.text
    assert spool.garbled == 2 and spool.paths(10) == [paths[2]]
    assert not paths[0].exists() and not paths[1].exists()
    assert decode(spool.load(paths[2])).arrays["x"][0] == 2


def test_files_written_before_the_crc32_are_still_read(tmp_path):
    frames = _frames(7)
    old = b"RRLSPOOL1\n" + struct.pack("<I", len(frames))
    old += b"".join(struct.pack("<Q", len(f)) + f for f in frames)
    (tmp_path / f"{1:020d}-{0:020d}.msg").write_bytes(old)
    spool = Spool(tmp_path, 1 << 20)
    assert decode(spool.load(spool.paths(1)[0])).arrays["x"][0] == 7


def test_an_unknown_policy_is_named():
    with pytest.raises(ValueError, match="spool fsync: 'sometimes' is not one of"):
        Spool("/tmp/unused-spool", 1 << 20, fsync="sometimes")
    with pytest.raises(ConfigError, match="transport.spool_fsync: 'sometimes' is not one of"):
        load_run_config(None, {"transport": {"spool_fsync": "sometimes"}})
