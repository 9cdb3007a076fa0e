"""A short seeded chaos run: learner and actors in the twin under kills, stops, a full journal
disk and poisoned messages lose and duplicate nothing acknowledged and keep poison out."""

from __future__ import annotations

import json

import pytest
from process_run import small_run

from robot_rl.loop.chaos import FAULT_KINDS, RESTARTING, ChaosConfig, fault_schedule, run_chaos


def test_fault_schedule_is_seeded_covers_every_kind_and_caps_learner_restarts():
    schedule = fault_schedule(24, seed=3)
    assert schedule == fault_schedule(24, seed=3) and schedule != fault_schedule(24, seed=4)
    assert len(schedule) == 24 and set(schedule) == set(FAULT_KINDS)
    assert sum(k in RESTARTING for k in schedule) <= 8


@pytest.mark.slow
def test_chaos_run_loses_and_duplicates_nothing_acknowledged(tmp_path):
    chaos = ChaosConfig(
        faults=20, seed=0, gap_s=1.5, settle_s=3.0, poison_messages=100, baseline=False
    )
    report = run_chaos(small_run(final_eval_episodes=0, journal_fsync="none"), chaos, tmp_path)
    print(json.dumps(report, indent=1))
    assert report["faults"] == 20 and set(report["faults_by_kind"]) == set(FAULT_KINDS)
    m, rows, poison = report["messages"], report["rows"], report["poison"]
    assert m["acknowledged"] > 100 and m["lost"] == 0 and m["duplicated"] == 0
    assert rows["duplicated"] == 0 and rows["missing"] == 0
    assert rows["steps_in_checkpoint"] == rows["steps_expected"]
    assert poison["sent"] >= 100 * report["faults_by_kind"]["poison"]
    assert poison["rows_in_buffers"] == 0 and poison["quarantined"] > 0
    assert len(report["learner_restarts"]) == sum(
        report["faults_by_kind"].get(k, 0) for k in RESTARTING
    )
    assert all(r["first_ack_s"] is not None for r in report["learner_restarts"])
    assert report["max_recovery_s"] <= 10.0
