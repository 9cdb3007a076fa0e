"""The learner's append-only journal of accepted messages, written before they are acknowledged.

An acknowledgement therefore means "durable": after `kill -9`, `--resume` replays the journal
into the replay buffers and restores each actor session's next expected sequence number, so
nothing acknowledged is lost and nothing resent is inserted twice. Records are the protocol
frames with length prefixes; a record cut short by a crash is dropped on replay.

Durability (`fsync`): "always" fsyncs every record before it is acknowledged (survives power
loss); "interval" fsyncs at most every `fsync_interval_s` (a power cut may lose that last stretch,
a killed process nothing); "none" leaves it to the OS. Every policy survives `kill -9`.

Bounded: the learner rotates the journal at every checkpoint (`rotate`: the next record opens a
new segment `<n>.log`) and, once the checkpoint holding those messages is on disk, deletes the
closed segments (`prune`). The journal then holds only what arrived since the last checkpoint.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

_RECORD = b"RRLJ"
FSYNC_POLICIES = ("always", "interval", "none")
FsyncPolicy = Literal["always", "interval", "none"]


class JournalError(OSError):
    """The journal cannot be written: nothing more may be acknowledged; the text says why."""


class Journal:
    """Segmented append-only log of messages (lists of frames) in `directory`."""

    def __init__(
        self,
        directory: str | Path,
        segment_bytes: int = 256 * 1024 * 1024,
        fsync: FsyncPolicy = "always",
        fsync_interval_s: float = 1.0,
    ):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"journal fsync: {fsync!r} is not one of {list(FSYNC_POLICIES)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        segments = sorted(self.directory.glob("*.log"))
        self._index = int(segments[-1].stem) + 1 if segments else 0
        self._fh = None
        self._synced_at = -float("inf")
        self._failed: str | None = None

    def append(self, frames: Sequence[bytes | memoryview]) -> None:
        """Write one record; JournalError when the disk refuses (full, read-only, removed)."""
        if self._failed is not None:
            raise JournalError(errno.EIO, self._failed)
        try:
            if self._fh is None or self._fh.tell() >= self.segment_bytes:
                self._open_next()
            views = [memoryview(f) for f in frames]
            self._fh.write(_RECORD + struct.pack("<I", len(views)))
            for view in views:
                self._fh.write(struct.pack("<Q", view.nbytes))
                self._fh.write(view)
            self._fh.flush()  # in the OS page cache: survives the process being killed
            now = time.monotonic()
            if self.fsync == "always" or (
                self.fsync == "interval" and now - self._synced_at >= self.fsync_interval_s
            ):
                os.fsync(self._fh.fileno())
                self._synced_at = now
        except OSError as exc:
            # a torn record ends what replay reads of its segment: nothing may follow it
            what = "the disk is full" if exc.errno == errno.ENOSPC else f"{exc.strerror or exc}"
            self._failed = (
                f"cannot write the learner's journal in {self.directory}: {what}. Nothing more "
                "is acknowledged, so no data is lost: actors keep it in their spools. Free space "
                "there (or move the run with --out) and restart the learner with --resume"
            )
            raise JournalError(exc.errno or errno.EIO, self._failed) from exc

    def rotate(self) -> list[Path]:
        """Close the current segment (the next record opens a new one); returns every segment
        written so far, oldest first: what a checkpoint taken now covers."""
        self.close()
        # a segment file this journal has not reached yet (written by no one) is not covered
        return sorted(p for p in self.directory.glob("*.log") if int(p.stem) < self._index)

    @staticmethod
    def prune(segments: Sequence[Path]) -> int:
        """Delete `segments` (their messages are in a checkpoint); returns the bytes freed."""
        freed = 0
        for segment in segments:
            with contextlib.suppress(FileNotFoundError):
                freed += segment.stat().st_size
                segment.unlink()
        return freed

    def replay(self) -> Iterator[list[bytes]]:
        """Every complete record, oldest first; a torn tail record is skipped with a warning."""
        for segment in sorted(self.directory.glob("*.log")):
            data = segment.read_bytes()
            pos = 0
            while pos < len(data):
                record = _parse(data, pos)
                if record is None:
                    log.warning(
                        "journal %s: dropping a torn record at byte %d (crash while writing)",
                        segment,
                        pos,
                    )
                    break
                frames, pos = record
                yield frames

    def close(self) -> None:
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            if self._failed is None and self.fsync != "none":
                fh.flush()
                os.fsync(fh.fileno())
            fh.close()
        except OSError:
            pass  # the failure was reported by append; closing must not hide it

    def _open_next(self) -> None:
        self.close()
        # Each process writes fresh segments, so a torn tail of a crashed run is never appended to.
        self._fh = open(self.directory / f"{self._index:08d}.log", "ab")
        self._index += 1


def _parse(data: bytes, pos: int) -> tuple[list[bytes], int] | None:
    if data[pos : pos + 4] != _RECORD or pos + 8 > len(data):
        return None
    (count,) = struct.unpack_from("<I", data, pos + 4)
    pos += 8
    frames = []
    for _ in range(count):
        if pos + 8 > len(data):
            return None
        (length,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        if pos + length > len(data):
            return None
        frames.append(data[pos : pos + length])
        pos += length
    return frames, pos
