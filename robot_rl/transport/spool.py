"""A bounded on-disk FIFO of encoded messages: what an actor sends while the learner is away.

One file per message, named by (session, sequence number) so that sorting names restores send
order across actor restarts (sessions are start times in ns), holding the protocol frames with
length prefixes and a crc32 of them. Reading a file back goes through `protocol.decode` like
anything off a socket. When the byte bound is reached the oldest message is dropped and counted,
loudly: the bound protects the robot PC's disk.

Durability (`fsync`, the policies of the learner's journal): "always" fsyncs each file before it
is renamed into place and its directory after (survives power loss); "interval" does so at most
every `fsync_interval_s`, then also for the files spooled since the last time (a power cut may
lose or garble that last stretch); "none" leaves it to the OS. Every policy survives `kill -9`.
A file that a power cut left garbled is skipped with a warning naming it (`load`).
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

from robot_rl.fsync import fsync_dir
from robot_rl.transport.journal import FSYNC_POLICIES, FsyncPolicy

log = logging.getLogger(__name__)

_MAGIC = b"RRLSPOOL2\n"
_MAGIC_NO_CRC = b"RRLSPOOL1\n"  # written before files carried a crc32; still read


class Spool:
    """FIFO of messages (lists of frames) in `directory`, at most `max_bytes` in total."""

    def __init__(
        self,
        directory: str | Path,
        max_bytes: int,
        fsync: FsyncPolicy = "always",
        fsync_interval_s: float = 1.0,
    ):
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be > 0, got {max_bytes}")
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"spool fsync: {fsync!r} is not one of {list(FSYNC_POLICIES)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.dropped = 0
        self.garbled = 0
        self._synced_at = -float("inf")
        self._unsynced: list[Path] = []  # renamed into place since the last fsync ("interval")
        for stale in self.directory.glob("*.tmp"):  # a write cut short by a crash
            stale.unlink()
        self._files = sorted(self.directory.glob("*.msg"))
        self._sizes = {path: path.stat().st_size for path in self._files}
        self._total = sum(self._sizes.values())

    def __len__(self) -> int:
        return len(self._files)

    @property
    def nbytes(self) -> int:
        return self._total

    def push(self, session: int, seq: int, frames: Sequence[bytes | memoryview]) -> Path:
        """Store one message; drop the oldest ones if the bound would be exceeded."""
        size = len(_MAGIC) + 4 + sum(8 + memoryview(f).nbytes for f in frames) + 4
        while self._files and self.nbytes + size > self.max_bytes:
            oldest = self._files.pop(0)
            self._total -= self._sizes.pop(oldest)
            oldest.unlink(missing_ok=True)
            self.dropped += 1
            log.error(
                "spool %s full (limit %d bytes): dropped oldest spooled batch %s",
                self.directory,
                self.max_bytes,
                oldest.name,
            )
        path = self.directory / f"{session:020d}-{seq:020d}.msg"
        if path in self._sizes:
            return path
        tmp = path.with_suffix(".tmp")
        now = time.monotonic()
        sync = self.fsync == "always" or (
            self.fsync == "interval" and now - self._synced_at >= self.fsync_interval_s
        )
        with open(tmp, "wb") as fh:
            head = struct.pack("<I", len(frames))
            fh.write(_MAGIC + head)
            crc = zlib.crc32(head)
            for frame in frames:
                view = memoryview(frame)
                prefix = struct.pack("<Q", view.nbytes)
                fh.write(prefix)
                fh.write(view)
                crc = zlib.crc32(view, zlib.crc32(prefix, crc))
            fh.write(struct.pack("<I", crc))
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)  # a crash never leaves a half-written message visible
        if sync:
            self._sync_unsynced()
            fsync_dir(self.directory)
            self._synced_at = now
        elif self.fsync == "interval":
            self._unsynced.append(path)
        bisect.insort(self._files, path)
        self._sizes[path] = size
        self._total += size
        return path

    def paths(self, count: int) -> list[Path]:
        """The files of the oldest `count` messages, oldest first."""
        return self._files[:count]

    @staticmethod
    def read(path: Path) -> list[bytes]:
        """The frames stored in one spool file; ValueError if it is garbled."""
        return _read(path)

    def load(self, path: Path) -> list[bytes] | None:
        """The frames of one spooled message, or None when its file is garbled or gone (a power
        cut while it was written): it is then forgotten, with a warning naming it."""
        try:
            return _read(path)
        except (ValueError, OSError) as exc:
            self.garbled += 1
            log.warning(
                "spool %s: skipping %s, garbled by a crash or power cut (%s); the batch it held "
                "is lost, the rest is resent",
                self.directory,
                path.name,
                exc,
            )
            self.remove(path)
            return None

    def remove(self, path: Path) -> None:
        """Forget one message (it was acknowledged)."""
        if path in self._sizes:
            self._files.remove(path)
            self._total -= self._sizes.pop(path)
            path.unlink(missing_ok=True)

    def _sync_unsynced(self) -> None:
        for path in self._unsynced:
            try:
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
            except FileNotFoundError:
                pass  # acknowledged and removed meanwhile
        self._unsynced.clear()


def _read(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if data.startswith(_MAGIC) and len(data) >= len(_MAGIC) + 8:
        (crc,) = struct.unpack_from("<I", data, len(data) - 4)
        data = data[:-4]
        if zlib.crc32(memoryview(data)[len(_MAGIC) :]) != crc:
            raise ValueError(f"{path}: spool file fails its crc32 check")
    elif not data.startswith(_MAGIC_NO_CRC) or len(data) < len(_MAGIC_NO_CRC) + 4:
        raise ValueError(f"{path}: not a spool file")
    pos = len(_MAGIC)
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    frames = []
    for _ in range(count):
        if pos + 8 > len(data):
            raise ValueError(f"{path}: truncated spool file")
        (length,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        if pos + length > len(data):
            raise ValueError(f"{path}: truncated spool file")
        frames.append(data[pos : pos + length])
        pos += length
    return frames
