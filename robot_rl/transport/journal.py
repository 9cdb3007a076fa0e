"""The learner's append-only journal of accepted messages, written before they are acknowledged.

An acknowledgement therefore means "durable": after `kill -9`, `--resume` replays the journal
into the replay buffers and restores each actor session's next expected sequence number, so
nothing acknowledged is lost and nothing resent is inserted twice. Records are the protocol
frames with length prefixes; a record cut short by a crash is dropped on replay.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_RECORD = b"RRLJ"


class Journal:
    """Segmented append-only log of messages (lists of frames) in `directory`."""

    def __init__(self, directory: str | Path, segment_bytes: int = 256 * 1024 * 1024):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        segments = sorted(self.directory.glob("*.log"))
        self._index = int(segments[-1].stem) + 1 if segments else 0
        self._fh = None

    def append(self, frames: Sequence[bytes | memoryview]) -> None:
        if self._fh is None or self._fh.tell() >= self.segment_bytes:
            self._open_next()
        views = [memoryview(f) for f in frames]
        self._fh.write(_RECORD + struct.pack("<I", len(views)))
        for view in views:
            self._fh.write(struct.pack("<Q", view.nbytes))
            self._fh.write(view)
        self._fh.flush()  # in the OS page cache: survives the process being killed

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
        if self._fh is not None:
            self._fh.close()
            self._fh = None

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
