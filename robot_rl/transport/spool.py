"""A bounded on-disk FIFO of encoded messages: what an actor sends while the learner is away.

One file per message, named by (session, sequence number) so that sorting names restores send
order across actor restarts (sessions are start times in ns), holding the protocol frames with
length prefixes. Reading a file back goes through
`protocol.decode` like anything off a socket. When the byte bound is reached the oldest
message is dropped and counted, loudly: the bound protects the robot PC's disk.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_MAGIC = b"RRLSPOOL1\n"


class Spool:
    """FIFO of messages (lists of frames) in `directory`, at most `max_bytes` in total."""

    def __init__(self, directory: str | Path, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be > 0, got {max_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.dropped = 0
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
        size = len(_MAGIC) + sum(8 + memoryview(f).nbytes for f in frames) + 4
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
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC)
            fh.write(struct.pack("<I", len(frames)))
            for frame in frames:
                view = memoryview(frame)
                fh.write(struct.pack("<Q", view.nbytes))
                fh.write(view)
        os.replace(tmp, path)  # a crash never leaves a half-written message visible
        bisect.insort(self._files, path)
        self._sizes[path] = size
        self._total += size
        return path

    def paths(self, count: int) -> list[Path]:
        """The files of the oldest `count` messages, oldest first."""
        return self._files[:count]

    @staticmethod
    def read(path: Path) -> list[bytes]:
        """The frames stored in one spool file."""
        return _read(path)

    def remove(self, path: Path) -> None:
        """Forget one message (it was acknowledged)."""
        if path in self._sizes:
            self._files.remove(path)
            self._total -= self._sizes.pop(path)
            path.unlink(missing_ok=True)


def _read(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
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
