"""A real cell's first training run, rehearsed against the twin: its configuration and its scoring.

The run itself (`robot-rl rehearse`, robot_rl/cli/rehearse.py) starts the ROS nodes and the learner
as separate processes. This module holds what needs no process: the rehearsal's config, and the
summary that joins what the stack recorded (episode stores: steps, interventions, the classifier's
verdict) with what the twin's scripted person saw (its `outcomes` file: ground-truth success), which
nothing in the stack reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controllers.config import ConfigError, from_dict, load_yaml

# an episode's first observation (the store) and the actor's `running` state (the twin operator)
# are a control tick or two apart; further apart they are not the same episode
MATCH_TOLERANCE_S = 2.0


@dataclass
class RehearsalConfig:
    run_config: str = "config/real_pick_cube.yaml"  # the learner and actor's run YAML
    ros_params: str = "config/ros_sim.yaml"  # the twin's node set: sim_robot, twin_operator, ...
    seed: int = 0
    demos: int = 20  # teleop demonstrations recorded before anything is trained
    reward: dict[str, Any] = field(default_factory=dict)  # `robot-rl reward train` config keys
    train_wall_s: float = 2100.0  # the learner's budget for online training
    eval_episodes: int = 50
    # merged into the run config / each node's ROS parameters (the short test shrinks the images)
    run: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    startup_timeout_s: float = 180.0  # the slowest node's start (torch import, first frames)
    curve_window: int = 20  # episodes per point of the learning curve's moving average

    def __post_init__(self) -> None:
        for key in ("demos", "eval_episodes", "curve_window"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("train_wall_s", "startup_timeout_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        unknown = set(self.nodes) - {"sim_robot", "twin_operator", "reward", "actor"}
        if unknown:
            raise ConfigError(
                f"nodes: unknown node(s) {sorted(unknown)}; expected some of "
                "['actor', 'reward', 'sim_robot', 'twin_operator']"
            )
        for path_key in ("run_config", "ros_params"):
            if not Path(getattr(self, path_key)).is_file():
                raise ConfigError(f"{path_key}: file not found: {getattr(self, path_key)}")


def load_rehearsal_config(path: str | Path) -> RehearsalConfig:
    return from_dict(RehearsalConfig, load_yaml(path), where=str(path))


def read_outcomes(path: Path) -> list[dict[str, Any]]:
    """The twin operator's per-episode lines; [] when it wrote none."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Episode:
    """One episode as both sides saw it."""

    start_time: float  # unix seconds
    end_time: float
    steps: int
    intervened_steps: int
    classifier_success: bool  # the stack's verdict: the reward node's probability ended it
    ground_truth: bool | None  # the twin's; None when the twin operator has no matching line


def join_episodes(
    infos: list[Any], intervened: list[np.ndarray], outcomes: list[dict[str, Any]]
) -> list[Episode]:
    """Each stored episode with the ground-truth outcome whose start is nearest (within
    MATCH_TOLERANCE_S)."""
    starts = np.array([o["start_time"] for o in outcomes], np.float64)
    episodes = []
    for info, flags in zip(infos, intervened, strict=True):
        truth, end = None, info.start_time
        if len(starts):
            nearest = int(np.argmin(np.abs(starts - info.start_time)))
            if abs(starts[nearest] - info.start_time) <= MATCH_TOLERANCE_S:
                truth, end = bool(outcomes[nearest]["success"]), outcomes[nearest]["end_time"]
        # the last row is the final observation, not a step
        steps = max(len(flags) - 1, 0)
        episodes.append(
            Episode(
                start_time=info.start_time,
                end_time=end,
                steps=steps,
                intervened_steps=int(np.asarray(flags[:steps]).sum()),
                classifier_success=bool(info.success),
                ground_truth=truth,
            )
        )
    return episodes


def _rate(values: list[bool]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def phase_summary(episodes: list[Episode]) -> dict[str, Any]:
    """Success by both judges, the classifier's false positives and misses, interventions."""
    judged = [e for e in episodes if e.ground_truth is not None]
    steps = sum(e.steps for e in episodes)
    intervened = sum(e.intervened_steps for e in episodes)
    return {
        "episodes": len(episodes),
        "ground_truth_success": _rate([e.ground_truth for e in judged]),
        "ground_truth_successes": sum(e.ground_truth for e in judged),
        "unmatched_episodes": len(episodes) - len(judged),
        "classifier_success": _rate([e.classifier_success for e in episodes]),
        # episodes the classifier ended as a success that the twin did not count
        "classifier_false_positives": sum(
            e.classifier_success and not e.ground_truth for e in judged
        ),
        "classifier_misses": sum(e.ground_truth and not e.classifier_success for e in judged),
        "env_steps": steps,
        "intervened_steps": intervened,
        "intervention_rate": round(intervened / steps, 3) if steps else None,
    }


def over_time(episodes: list[Episode], t0: float, bin_s: float) -> list[dict[str, Any]]:
    """Per `bin_s` of wall time since `t0`: episodes, ground-truth success, intervention rate."""
    if not episodes:
        return []
    bins: dict[int, list[Episode]] = {}
    for e in episodes:
        bins.setdefault(int((e.end_time - t0) // bin_s), []).append(e)
    rows = []
    for b in sorted(bins):
        group = bins[b]
        steps = sum(e.steps for e in group)
        rows.append(
            {
                "until_s": round((b + 1) * bin_s),
                "episodes": len(group),
                "ground_truth_success": _rate(
                    [e.ground_truth for e in group if e.ground_truth is not None]
                ),
                "intervention_rate": (
                    round(sum(e.intervened_steps for e in group) / steps, 3) if steps else None
                ),
            }
        )
    return rows


def first_autonomous_success_s(episodes: list[Episode], t0: float) -> float | None:
    """Seconds from `t0` to the end of the first episode the twin counted as a success with no
    intervened step."""
    for e in sorted(episodes, key=lambda e: e.end_time):
        if e.ground_truth and e.intervened_steps == 0:
            return round(e.end_time - t0, 1)
    return None


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and the up to `window - 1` before it."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def plot_curve(train: list[Episode], t0: float, window: int, eval_rate: float | None, out: Path):
    """Learning curve: moving-average ground-truth success and intervention rate over wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = sorted(train, key=lambda e: e.end_time)
    t = np.array([(e.end_time - t0) / 60.0 for e in train])
    truth = np.array([bool(e.ground_truth) for e in train], np.float64)
    share = np.array([e.intervened_steps / max(e.steps, 1) for e in train])
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(train):
        ax.plot(t, trailing_mean(truth, window), label=f"success (twin, last {window} episodes)")
        ax.plot(t, trailing_mean(share, window), label="share of steps intervened")
    if eval_rate is not None and len(train):
        ax.axhline(eval_rate, color="k", linestyle="--", label=f"final policy: {eval_rate:.2f}")
    ax.set_xlabel("online training wall time (min)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="center right")
    ax.set_title("rehearsal: pick_cube through ROS, from pixels")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
