"""An actor's optional record of what it sent and what the learner acknowledged (JSON lines).

One line per reliable message when it is queued ({"e": "sent", "session", "seq", "kind", "mode",
"rows", "steps", "t"}) and one per first acknowledgement ({"e": "ack", "session", "seq", "t"}),
appended and flushed at once, so a killed actor's ledger still holds everything up to the kill.
`robot-rl chaos` compares it with what the learner ingested; a normal run does not keep one.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


class Ledger:
    """Appends sent/acknowledged events of one actor process to a JSON-lines file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")
        self._lock = threading.Lock()

    def sent(
        self, session: int, seq: int, kind: str, arrays: dict[str, np.ndarray], meta: dict
    ) -> None:
        last = arrays.get("is_last")
        rows = len(last) if last is not None else 0
        steps = int(np.count_nonzero(~np.asarray(last, bool))) if rows else 0
        mode = meta.get("mode")
        self._write(
            {
                "e": "sent",
                "session": session,
                "seq": seq,
                "kind": kind,
                "mode": mode,
                "rows": rows,
                "steps": steps,
            }
        )

    def acked(self, session: int, seq: int) -> None:
        self._write({"e": "ack", "session": session, "seq": seq})

    def _write(self, event: dict[str, Any]) -> None:
        event["t"] = time.time()
        with self._lock:
            if not self._fh.closed:
                self._fh.write(json.dumps(event) + "\n")
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def read_ledger(path: str | Path) -> list[dict[str, Any]]:
    """The events of a ledger file; a line cut short by a kill is dropped."""
    events = []
    for line in Path(path).read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
