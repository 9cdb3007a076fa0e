"""The one live progress line of a long training job: counters in, a line of text out.

On a terminal the line is rewritten in place (carriage return); into a file or a pipe it is
written as a new line at most every `every_s` seconds, so a log of a long run stays readable.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

NOT_A_TTY_EVERY_S = 30.0


@dataclass(frozen=True)
class Progress:
    """What an operator watching a run wants at a glance; rates are NaN until measured."""

    elapsed_s: float
    env_steps: int
    updates_per_s: float
    success_rate: float  # recent training episodes, operator included
    eval_success_rate: float  # recent operator-free evaluation episodes
    intervention_rate: float  # share of recent training steps the operator drove
    faults: int = 0  # skipped updates + quarantined + rejected messages so far


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _rate(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def format_progress(p: Progress) -> str:
    """One line; under 80 columns for runs shorter than 10 h and a million env steps."""
    interventions = "-" if math.isnan(p.intervention_rate) else f"{p.intervention_rate:.0%}"
    return (
        f"{_clock(p.elapsed_s)}  steps {p.env_steps:,}  {p.updates_per_s:.1f} upd/s"
        f"  success {_rate(p.success_rate)}  eval {_rate(p.eval_success_rate)}"
        f"  interventions {interventions}" + (f"  faults {p.faults:,}" if p.faults else "")
    )


class ProgressLine:
    """Shows the newest progress line on `stream` (stdout by default)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        every_s: float = NOT_A_TTY_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self._clock = clock
        self._next_s = -math.inf
        self._shown = 0  # width of the line on screen, to blank what a shorter one leaves
        self._pending: str | None = None  # not a TTY: the newest line not yet written

    def show(self, line: str) -> None:
        if self.tty:
            # a line wider than the terminal wraps, and \r then rewrites only its last part
            line = line[: max(shutil.get_terminal_size().columns - 1, 1)]
            self.stream.write("\r" + line + " " * max(self._shown - len(line), 0))
            self._shown = len(line)
        elif self._clock() >= self._next_s:
            self.stream.write(line + "\n")
            self._next_s = self._clock() + self.every_s
            self._pending = None
        else:
            self._pending = line
        self.stream.flush()

    def close(self, line: str | None = None) -> None:
        """Show the final state (or the last one held back) and end the line."""
        if self.tty:
            if line is not None:
                self.show(line)
            if self._shown:
                self.stream.write("\n")
                self._shown = 0
        else:
            last = line if line is not None else self._pending
            if last is not None:
                self.stream.write(last + "\n")
            self._pending = None
        self.stream.flush()
