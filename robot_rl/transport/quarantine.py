"""Messages the learner journaled but could not process, kept aside instead of crashing it.

Each one is appended (frames, as in the journal) to `quarantine/*.log` while the disk budget
lasts, and always listed in `quarantine/index.jsonl` with its actor, session, sequence number,
kind and reason; `--resume` skips every listed message when it replays the journal, so a poisoned
message is processed at most once.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from robot_rl.transport.journal import Journal

MessageKey = tuple[str, int, int]  # (actor_id, session, seq)


class Quarantine:
    """Append-only store of unprocessable messages in `directory`; frames kept up to `max_bytes`."""

    def __init__(self, directory: str | Path, max_bytes: int = 256 * 1024 * 1024):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.index_path = self.directory / "index.jsonl"
        self.keys: set[MessageKey] = set()
        self.counts: collections.Counter[str] = collections.Counter()
        if self.index_path.exists():
            for line in self.index_path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    key = (str(entry["actor_id"]), int(entry["session"]), int(entry["seq"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash: its message is quarantined again
                self.keys.add(key)
                self.counts[str(entry.get("category", "unknown"))] += 1
        self._frames = Journal(self.directory, fsync="none")
        self._stored = sum(p.stat().st_size for p in self.directory.glob("*.log"))

    def __contains__(self, key: MessageKey) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def add(
        self, key: MessageKey, kind: str, category: str, reason: str, frames: Sequence[bytes]
    ) -> None:
        """Keep `frames` aside (while the budget lasts) and list the message as quarantined."""
        size = sum(memoryview(f).nbytes for f in frames)
        kept = self._stored + size <= self.max_bytes
        if kept:
            self._frames.append(frames)
            self._stored += size
        entry = {
            "actor_id": key[0],
            "session": key[1],
            "seq": key[2],
            "kind": kind,
            "category": category,
            "reason": reason[:500],
            "frames_kept": kept,
            "time": time.time(),
        }
        with open(self.index_path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())  # rare, and what keeps a poisoned message from being replayed
        self.keys.add(key)
        self.counts[category] += 1

    def close(self) -> None:
        self._frames.close()
