"""What a run's metrics.csv says about its learning curve: when its periodic evaluation first
reached a success rate.

The learner writes a row every `progress_every_s`; `eval_episodes` counts the operator-free
evaluation episodes received so far and `eval_success_rate` is the success rate of the last
EVAL_WINDOW of them (fewer before EVAL_WINDOW have run, NaN before the first): a trailing window,
not a cumulative rate. A window of EVAL_WINDOW is read straight from the rows; a shorter one needs
each episode's outcome, which the rows give exactly as long as the episodes that arrive between
two rows all succeeded or all failed (always so when one arrives at a time: evaluation episodes
are several seconds apart, rows two).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from robot_rl.loop.learner import EVAL_WINDOW


@dataclass(frozen=True)
class SuccessTime:
    """The first metrics.csv row at which the trailing evaluation window reached the threshold."""

    wall_s: float  # the learner's wall time (start-up and demonstrations included)
    env_steps: int  # online env steps (demonstrations and evaluation episodes not counted)
    eval_episodes: int  # evaluation episodes run by then
    success_rate: float  # of the last `window` of them


def time_to_success(
    metrics_csv: str | Path, threshold: float = 0.9, window: int = EVAL_WINDOW
) -> SuccessTime | None:
    """When `window` consecutive evaluation episodes (the most recent at that row) first
    succeeded at a rate >= `threshold`; None if they never did. A window is full or not counted:
    one lucky first episode is not a success rate of 1.0.

    ValueError if `window` exceeds EVAL_WINDOW (the rows cannot tell), or if for a shorter window
    the outcomes cannot be told apart (see the module doc)."""
    if not 1 <= window <= EVAL_WINDOW:
        raise ValueError(
            f"window: {window} must be in 1..{EVAL_WINDOW}, the evaluation episodes behind "
            "metrics.csv's eval_success_rate"
        )
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold: {threshold} must be in (0, 1]")
    with open(metrics_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    outcomes: list[bool] = []  # every evaluation episode's, in order (window < EVAL_WINDOW)
    for line, row in enumerate(rows, start=2):
        n, rate = int(row["eval_episodes"]), float(row["eval_success_rate"])
        if n == 0:
            continue
        if window < EVAL_WINDOW:
            _extend(outcomes, n, rate, f"{metrics_csv}:{line}")
            rate = sum(outcomes[-window:]) / window
        else:  # undo the rounding to 3 decimals
            rate = round(rate * min(n, EVAL_WINDOW)) / min(n, EVAL_WINDOW)
        if n >= window and rate >= threshold:
            return SuccessTime(float(row["wall_s"]), int(row["env_steps"]), n, rate)
    return None


def _extend(outcomes: list[bool], n: int, rate: float, where: str) -> None:
    """Append the outcomes of the evaluation episodes a row reports beyond `outcomes`."""
    new = n - len(outcomes)
    if new < 0:
        raise ValueError(f"{where}: eval_episodes went down to {n}; one run's metrics.csv only")
    if new == 0:
        return
    full = min(n, EVAL_WINDOW)
    if new > full or math.isnan(rate):
        raise ValueError(f"{where}: {new} evaluation episodes at once, more than a window")
    # the window's successes, less those of the episodes already known in it
    successes = round(rate * full) - sum(outcomes[n - full :])
    if not 0 <= successes <= new:
        raise ValueError(f"{where}: eval_success_rate {rate} does not follow the rows before it")
    if 0 < successes < new:
        raise ValueError(
            f"{where}: {new} evaluation episodes arrived together, {successes} of them "
            f"successes in an unknown order; a window of {EVAL_WINDOW} reads this file"
        )
    outcomes += [successes == new] * new
