"""Metrics and labels of the reward classifier, checked against hand-computed values."""

import numpy as np
import pytest

from controllers.config import ConfigError, from_dict
from robot_rl.reward import metrics
from robot_rl.reward.labels import (
    LABEL_KEY,
    NEGATIVE,
    POSITIVE,
    UNLABELLED,
    LabelConfig,
    episode_succeeded,
    frame_labels,
)


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    scores = np.round(rng.random(200) + 0.3 * labels, 1)  # rounding makes ties
    pos, neg = scores[labels], scores[~labels]
    pairwise = np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None]))
    assert metrics.roc_auc(labels, scores) == pytest.approx(pairwise)
    assert metrics.roc_auc([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0
    assert metrics.roc_auc([0, 0, 1], [0.9, 0.8, 0.1]) == 0.0
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_report_confusion_and_rates():
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.05])
    r = metrics.report(labels, scores, 0.5)
    assert (r.tp, r.fp, r.tn, r.fn) == (2, 1, 3, 1)
    assert r.precision == pytest.approx(2 / 3) and r.recall == pytest.approx(2 / 3)
    assert (r.positives, r.negatives) == (3, 4)
    nothing = metrics.report(labels, scores, 2.0)
    assert nothing.precision == 1.0 and nothing.recall == 0.0


def test_threshold_for_precision_takes_most_recall_at_target():
    labels = np.array([1, 1, 0, 1, 1, 0, 0, 0])
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4])
    t, met = metrics.threshold_for_precision(labels, scores, 1.0)
    assert met and t == pytest.approx(
        0.9 - 1e-6, abs=1e-12
    )  # just below 0.9: under 0.85 the negative gets in
    t, met = metrics.threshold_for_precision(labels, scores, 0.8)
    assert met and t == pytest.approx(0.7 - 1e-6, abs=1e-12)  # 4 tp / 1 fp = 0.8; recall 1.0
    r = metrics.report(labels, scores, t)
    assert r.precision >= 0.8 and r.recall == 1.0


def test_threshold_confidence_asks_more_of_thin_evidence():
    # from the top: 200 positives, 1 negative, 20 positives, 3 negatives, then 200 negatives
    labels = np.r_[np.ones(200), 0, np.ones(20), np.zeros(3), np.zeros(200)].astype(bool)
    scores = np.linspace(1.0, 0.0, len(labels))
    point, met = metrics.threshold_for_precision(labels, scores, 0.98)
    assert met and metrics.confusion(labels, scores, point) == {
        "tp": 220,
        "fp": 4,
        "tn": 200,
        "fn": 0,
    }
    # 220 / 224 = 0.982 is the lucky edge: its 80 % lower bound is 0.973; with 2 negatives in, 0.990
    sure, met = metrics.threshold_for_precision(labels, scores, 0.98, confidence=0.8)
    assert met and metrics.confusion(labels, scores, sure) == {
        "tp": 220,
        "fp": 2,
        "tn": 202,
        "fn": 0,
    }
    assert metrics.precision_lower_bound(np.array([220]), np.array([4]), 0.8)[0] == pytest.approx(
        0.973, abs=1e-3
    )
    assert metrics.precision_lower_bound(np.array([220]), np.array([4]), 0.5)[0] == pytest.approx(
        220 / 224
    )
    # five clean positives are not enough to be 80 % sure of 0.98: not met, best bound kept
    few, ranked = np.r_[np.ones(5), np.zeros(5)].astype(bool), np.linspace(1, 0, 10)
    t, met = metrics.threshold_for_precision(few, ranked, 0.98, 0.8)
    assert not met and metrics.confusion(few, ranked, t) == {"tp": 5, "fp": 0, "tn": 5, "fn": 0}
    with pytest.raises(ValueError, match="confidence"):
        metrics.threshold_for_precision(labels, scores, 0.98, confidence=1.0)


def test_threshold_for_precision_unreachable_and_ties():
    # the top score is a tie between a positive and a negative: precision 1.0 is unreachable
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.9, 0.5, 0.1])
    t, met = metrics.threshold_for_precision(labels, scores, 1.0)
    assert not met and t == pytest.approx(0.5 - 1e-6, abs=1e-12)  # best precision 2/3 at recall 1
    # the margin below the chosen score is at most half the gap to the next lower score
    t, met = metrics.threshold_for_precision(np.array([1, 0]), np.array([0.5, 0.5 - 1e-7]), 1.0)
    assert met and t == pytest.approx(0.5 - 0.5e-7, abs=1e-12)
    assert metrics.report(np.array([1, 0]), np.array([0.5, 0.5 - 1e-7]), t).precision == 1.0
    t, met = metrics.threshold_for_precision(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.9)
    assert not met and t > 0.3
    with pytest.raises(ValueError, match="target precision"):
        metrics.threshold_for_precision(labels, scores, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        metrics.report(labels, np.array([0.1, np.nan, 0.2, 0.3]), 0.5)


def _episode(n: int, success: bool, marks: list[int] | None = None) -> dict:
    ep = {"is_terminal": np.zeros(n, bool), "reward": np.zeros(n, np.float32)}
    if success:
        ep["is_terminal"][-1] = True
        ep["reward"][-2] = 1.0
    if marks is not None:
        ep[LABEL_KEY] = np.isin(np.arange(n), marks)
    return ep


def test_labels_from_outcomes_and_marks():
    assert episode_succeeded(_episode(5, True)) and not episode_succeeded(_episode(5, False))
    cfg = LabelConfig(outcome_tail=2, ignore_margin=2)
    lab = frame_labels(_episode(8, True), cfg)
    assert lab.tolist() == [NEGATIVE] * 4 + [UNLABELLED] * 2 + [POSITIVE] * 2
    assert (frame_labels(_episode(8, False), cfg) == NEGATIVE).all()
    # the store's recorded outcome wins over what the rows say
    assert (frame_labels(_episode(8, False), cfg, success=True)[-2:] == POSITIVE).all()
    marked = frame_labels(_episode(6, False, marks=[1, 2]), cfg)
    assert marked.tolist() == [NEGATIVE, POSITIVE, POSITIVE, NEGATIVE, NEGATIVE, NEGATIVE]
    with pytest.raises(ValueError, match=LABEL_KEY):
        frame_labels({**_episode(6, False), LABEL_KEY: np.zeros(5, bool)})


def test_label_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="labels.outcome_tail"):
        LabelConfig(outcome_tail=-1)
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(LabelConfig, {"tail": 3})


def test_threshold_for_targets_keeps_the_precision_margin_a_perfect_detector_has():
    # 300 positives on top, then 205 negatives: with up to 6 of them in, precision still hits 0.98
    labels = np.r_[np.ones(300), np.zeros(205)].astype(bool)
    scores = np.linspace(1.0, 0.0, len(labels))
    spend, met = metrics.threshold_for_precision(labels, scores, 0.98)
    assert (
        met and metrics.confusion(labels, scores, spend)["fp"] == 6
    )  # 300 / 306 = 0.980: the whole margin
    both, met = metrics.threshold_for_targets(labels, scores, 0.98, 0.9)
    assert met and metrics.confusion(labels, scores, both) == {
        "tp": 300,
        "fp": 0,
        "tn": 205,
        "fn": 0,
    }


def test_threshold_for_targets_takes_the_point_farthest_inside_both():
    # 200 positives, five blocks of (1 negative, 10 positives), 300 negatives: 250 positives in all
    labels = np.r_[np.ones(200), np.tile(np.r_[0, np.ones(10)], 5), np.zeros(300)].astype(bool)
    scores = np.linspace(1.0, 0.0, len(labels))
    # point estimates: after 3 blocks precision 230/233 = 0.987 (z 0.78), recall 0.92 (z 1.05);
    # after 4 blocks 0.984 (z 0.40) / 0.96 (z 3.2); the precision-only rule goes on to all five
    # negatives (250/255 = 0.980)
    t, met = metrics.threshold_for_targets(labels, scores, 0.98, 0.9, confidence=0.5)
    assert met and metrics.confusion(labels, scores, t) == {"tp": 230, "fp": 3, "tn": 302, "fn": 20}
    z = min(
        metrics.score_z(np.array(230), np.array(233), 0.98),
        metrics.score_z(np.array(230), np.array(250), 0.9),
    )
    assert z == pytest.approx(0.776, abs=1e-3)
    assert (
        metrics.confusion(labels, scores, metrics.threshold_for_precision(labels, scores, 0.98)[0])[
            "fp"
        ]
        == 5
    )
    # confidence does not move the point, it decides `met`: z 0.776 is short of 0.84 (80 %). A
    # Wilson bound at 80 % would have let only 2 blocks qualify (220/222) and taken recall 0.88,
    # below its target
    t80, met = metrics.threshold_for_targets(labels, scores, 0.98, 0.9, confidence=0.8)
    assert not met and t80 == t
    assert (
        metrics.confusion(
            labels, scores, metrics.threshold_for_precision(labels, scores, 0.98, 0.8)[0]
        )["fn"]
        == 30
    )
    # five clean positives reach 0.98 but cannot show it at 80 % confidence: all five taken, not met
    few, ranked = np.r_[np.ones(5), np.zeros(5)].astype(bool), np.linspace(1, 0, 10)
    t, met = metrics.threshold_for_targets(few, ranked, 0.98, 0.9)
    assert not met and metrics.confusion(few, ranked, t) == {"tp": 5, "fp": 0, "tn": 5, "fn": 0}
    # no threshold reaches the target precision: the precision rule's best, not met
    mixed = np.tile([False, True], 5)  # precision never above 0.5
    t, met = metrics.threshold_for_targets(mixed, ranked, 0.98, 0.9)
    assert not met and t == metrics.threshold_for_precision(mixed, ranked, 0.98, 0.8)[0]
    assert metrics.threshold_for_targets(
        labels, scores, 0.98, None, 0.8
    ) == metrics.threshold_for_precision(labels, scores, 0.98, 0.8)
    t, met = metrics.threshold_for_targets(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.98, 0.9)
    assert not met and t > 0.3
    with pytest.raises(ValueError, match="target recall"):
        metrics.threshold_for_targets(labels, scores, 0.98, 1.0)
