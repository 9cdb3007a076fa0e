"""The rehearsal's scoring: stored episodes joined with the twin operator's ground truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from controllers.config import ConfigError
from robot_rl.loop.rehearsal import (
    Episode,
    RehearsalConfig,
    first_autonomous_success_s,
    join_episodes,
    over_time,
    phase_summary,
    trailing_mean,
)


def _info(start: float, success: bool) -> SimpleNamespace:
    return SimpleNamespace(start_time=start, success=success)


def _outcome(start: float, success: bool, end: float) -> dict:
    return {"start_time": start, "end_time": end, "success": success, "driven_ticks": 0}


def test_episodes_join_the_nearest_outcome_within_the_tolerance():
    infos = [_info(100.0, True), _info(130.0, False), _info(500.0, True)]
    # the final observation row is not a step: 4 rows = 3 steps
    flags = [np.array([1, 0, 0, 0], bool), np.array([0, 0, 0]), np.array([1, 1])]
    outcomes = [_outcome(130.4, True, 140.0), _outcome(99.7, False, 110.0)]
    first, second, third = join_episodes(infos, flags, outcomes)
    assert (first.ground_truth, first.end_time, first.steps, first.intervened_steps) == (
        False,
        110.0,
        3,
        1,
    )
    assert (second.ground_truth, second.classifier_success, second.steps) == (True, False, 2)
    assert third.ground_truth is None  # no outcome within 2 s: not counted either way
    assert third.intervened_steps == 1


def test_phase_summary_counts_what_the_classifier_got_wrong():
    episodes = [
        Episode(0, 10, 50, 10, classifier_success=True, ground_truth=True),
        Episode(10, 20, 30, 0, classifier_success=True, ground_truth=False),  # fooled
        Episode(20, 30, 100, 0, classifier_success=False, ground_truth=True),  # missed
        Episode(30, 40, 100, 20, classifier_success=False, ground_truth=False),
        Episode(40, 50, 20, 0, classifier_success=True, ground_truth=None),
    ]
    s = phase_summary(episodes)
    assert s["episodes"] == 5 and s["unmatched_episodes"] == 1
    assert s["ground_truth_success"] == 0.5 and s["ground_truth_successes"] == 2
    assert s["classifier_success"] == 0.6
    assert s["classifier_false_positives"] == 1 and s["classifier_misses"] == 1
    assert s["env_steps"] == 300 and s["intervened_steps"] == 30
    assert s["intervention_rate"] == 0.1


def test_over_time_and_the_first_autonomous_success():
    t0 = 1000.0
    episodes = [
        Episode(t0, t0 + 50, 10, 10, False, True),  # a success, but the person drove it
        Episode(t0, t0 + 90, 10, 0, False, False),
        Episode(t0, t0 + 130, 10, 5, False, False),
        Episode(t0, t0 + 170, 10, 0, True, True),
    ]
    rows = over_time(episodes, t0, 100.0)
    assert [r["until_s"] for r in rows] == [100, 200]
    assert rows[0] == {
        "until_s": 100,
        "episodes": 2,
        "ground_truth_success": 0.5,
        "intervention_rate": 0.5,
    }
    assert rows[1]["intervention_rate"] == 0.25
    assert first_autonomous_success_s(episodes, t0) == 170.0
    assert first_autonomous_success_s(episodes[:3], t0) is None


def test_trailing_mean():
    np.testing.assert_allclose(
        trailing_mean(np.array([1.0, 0.0, 1.0, 1.0]), 2), [1.0, 0.5, 0.5, 1.0]
    )


def test_config_is_checked_at_the_edge(tmp_path):
    with pytest.raises(ConfigError, match="demos: must be >= 1"):
        RehearsalConfig(demos=0)
    with pytest.raises(ConfigError, match="unknown node"):
        RehearsalConfig(nodes={"camera": {}})
    with pytest.raises(ConfigError, match="run_config: file not found"):
        RehearsalConfig(run_config=str(tmp_path / "missing.yaml"))
