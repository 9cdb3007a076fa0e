"""Per-frame success labels from recorded episodes (RLDS-style step rows, docs/contracts.md).

Two sources, combined:
- per-frame marks: the recorder writes a bool step key `success_label` (LABEL_KEY), True on the rows
  where the operator held the "success" key; marked rows are positive;
- episode outcomes: an episode that ended in success (the store's `EpisodeInfo.success`; without
  it, `is_terminal` on the last row and a positive reward for the last action) has its last
  `outcome_tail` rows positive, the final observation o_T included.
Every other row is negative, except the `ignore_margin` rows just before an outcome-positive tail,
which are left out: they are often visually indistinguishable from success and would teach the
classifier to hedge exactly where precision matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controllers.config import ConfigError

LABEL_KEY = "success_label"
UNLABELLED, NEGATIVE, POSITIVE = -1, 0, 1


@dataclass
class LabelConfig:
    outcome_tail: int = 1  # rows at the end of a successful episode labelled positive
    ignore_margin: int = 0  # rows before that tail left out of training and validation

    def __post_init__(self):
        if self.outcome_tail < 0:
            raise ConfigError(f"labels.outcome_tail: must be >= 0, got {self.outcome_tail}")
        if self.ignore_margin < 0:
            raise ConfigError(f"labels.ignore_margin: must be >= 0, got {self.ignore_margin}")


def episode_succeeded(episode: dict[str, np.ndarray]) -> bool:
    """True if the episode ended on a terminal row reached by a positively rewarded action."""
    for key in ("is_terminal", "reward"):
        if key not in episode:
            raise KeyError(f"episode has no {key!r} step key; have {sorted(episode)}")
    terminal, reward = np.asarray(episode["is_terminal"]), np.asarray(episode["reward"])
    return len(terminal) >= 2 and bool(terminal[-1]) and float(reward[-2]) > 0.0


def frame_labels(
    episode: dict[str, np.ndarray], config: LabelConfig | None = None, success: bool | None = None
) -> np.ndarray:
    """int8 label per row: POSITIVE, NEGATIVE or UNLABELLED (left out).

    `success` is the episode's recorded outcome; None derives it from the rows
    (`episode_succeeded`).
    """
    config = config or LabelConfig()
    n = len(episode["is_terminal"])
    labels = np.full(n, NEGATIVE, dtype=np.int8)
    if success is None:
        success = episode_succeeded(episode)
    if success and config.outcome_tail > 0:
        start = max(n - config.outcome_tail, 0)
        labels[max(start - config.ignore_margin, 0) : start] = UNLABELLED
        labels[start:] = POSITIVE
    if LABEL_KEY in episode:
        marks = np.asarray(episode[LABEL_KEY]).astype(bool).ravel()
        if len(marks) != n:
            raise ValueError(f"{LABEL_KEY}: {len(marks)} rows, but the episode has {n}")
        labels[marks] = POSITIVE
    return labels
