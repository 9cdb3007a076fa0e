"""Binary-classifier metrics in numpy: precision/recall, ROC-AUC, confusion, threshold choice.

False positives are what break RL (the policy learns to fool the classifier), so the decision
threshold is chosen on validation data for a target precision, and recall is what is left.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    return labels, scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, mid-ranks for ties); NaN if one class is absent."""
    labels, scores = _check(labels, scores)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # mid-ranks: every member of a run of equal scores gets the run's mean rank
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = 0.5 * (s + e - 1) + 1.0
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def confusion(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    """Counts of tp/fp/tn/fn when predicting positive for score >= threshold."""
    labels, scores = _check(labels, scores)
    pred = scores >= threshold
    return {
        "tp": int(np.sum(pred & labels)),
        "fp": int(np.sum(pred & ~labels)),
        "tn": int(np.sum(~pred & ~labels)),
        "fn": int(np.sum(~pred & labels)),
    }


@dataclass
class Report:
    """What `robot-rl reward train/eval` prints and stores as report.json."""

    threshold: float
    precision: float
    recall: float
    roc_auc: float
    tp: int
    fp: int
    tn: int
    fn: int
    positives: int
    negatives: int

    def to_dict(self) -> dict:
        return asdict(self)


def report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Report:
    """Precision, recall, ROC-AUC and the confusion matrix at `threshold`.

    Precision with no predicted positives is 1.0 (no false positive was made); recall with no
    actual positives is NaN.
    """
    c = confusion(labels, scores, threshold)
    predicted, actual = c["tp"] + c["fp"], c["tp"] + c["fn"]
    return Report(
        threshold=float(threshold),
        precision=c["tp"] / predicted if predicted else 1.0,
        recall=c["tp"] / actual if actual else float("nan"),
        roc_auc=roc_auc(labels, scores),
        positives=actual,
        negatives=c["tn"] + c["fp"],
        **c,
    )


def precision_lower_bound(tp: np.ndarray, fp: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson lower bound on precision tp / (tp + fp) at `confidence` (0.5: estimate).

    Precision measured on a finite validation set is noisy, and the lowest threshold that reaches
    the target there is picked for being lucky: on new episodes it lands below the target about half
    the time.
    """
    z = NormalDist().inv_cdf(confidence)
    n = np.maximum(tp + fp, 1)
    p = tp / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def _operating_points(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds and the tp, fp counts of predicting positive at score >= each.

    The candidates are the observed scores, descending; a run of tied scores is one candidate.
    """
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    tp, fp = np.cumsum(y), np.cumsum(~y)
    last_of_run = np.r_[s[1:] != s[:-1], True]
    return s[last_of_run], tp[last_of_run], fp[last_of_run]


def _just_below(thresholds: np.ndarray, i: int) -> float:
    """A threshold just below candidate i (by 1e-6, or halfway to the next lower one if closer).

    Model scores are float32 and move by ~1e-7 with the batch they are computed in, so a frame
    scoring what the chosen validation frame scored (the same image) must not be decided by
    rounding.
    """
    below = thresholds[i + 1] if i + 1 < len(thresholds) else -np.inf
    return float(max(thresholds[i] - 1e-6, (thresholds[i] + below) / 2))


def _check_targets(target: float, confidence: float) -> None:
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")


def threshold_for_precision(
    labels: np.ndarray, scores: np.ndarray, target: float, confidence: float = 0.5
) -> tuple[float, bool]:
    """The lowest threshold with precision >= target on (labels, scores): the most recall there.

    With `confidence` > 0.5 the precision compared with the target is its one-sided Wilson lower
    bound at that confidence (`precision_lower_bound`), which asks more of thresholds that rest on
    few frames. The threshold returned sits just below its candidate score (`_just_below`). Returns
    (threshold, met). If no threshold reaches the target, returns the threshold of highest (bounded)
    precision (ties: highest recall) and met=False. With no positives at all, returns a threshold
    above every score (predict nothing), met=False.
    """
    _check_targets(target, confidence)
    labels, scores = _check(labels, scores)
    if not labels.any():
        return float(np.nextafter(scores.max(), np.inf)) if len(scores) else 0.5, False
    thresholds, tp, fp = _operating_points(labels, scores)
    precision = precision_lower_bound(tp, fp, confidence)
    ok = np.flatnonzero(precision >= target)
    i, met = (
        (ok[-1], True) if len(ok) else (np.flatnonzero(precision == precision.max())[-1], False)
    )
    # thresholds descend, so the last one meeting the target has the most recall
    return _just_below(thresholds, i), met


def score_z(successes: np.ndarray, trials: np.ndarray, target: float) -> np.ndarray:
    """How many standard errors the rate successes / trials lies above `target` (the score test).

    A Wilson lower bound at one-sided confidence c reaches the target exactly when this is >= the
    normal quantile of c.
    """
    rate = successes / np.maximum(trials, 1)
    if target >= 1.0:
        return np.where(rate >= 1.0, np.inf, -np.inf)
    return (rate - target) * np.sqrt(np.maximum(trials, 1) / (target * (1.0 - target)))


def threshold_for_targets(
    labels: np.ndarray,
    scores: np.ndarray,
    precision: float,
    recall: float | None,
    confidence: float = 0.8,
) -> tuple[float, bool]:
    """Of the thresholds whose precision reaches its target, the one farthest inside both targets.

    The targets are precision and recall; met: both are shown there with one-sided `confidence`.

    `threshold_for_precision` takes the lowest qualifying threshold: it spends the whole precision
    margin on recall even when recall needs none of it, so a detector that separates the classes
    perfectly is still given false positives up to the target (on new episodes: precision on the
    target's edge, either side). Here each threshold whose precision point estimate reaches
    `precision` gets the smaller of its two score-test z values (`score_z`: precision against
    `precision`, recall against `recall`) and the largest wins (ties: the lowest threshold): the
    point where missing either target is least likely. `confidence` does not move that point, it
    only decides `met`: a further lower bound on precision would tilt the choice toward precision
    and, where recall binds, cost the recall target (docs/reward.md). If no threshold qualifies:
    `threshold_for_precision`'s threshold, met=False. `recall=None` is `threshold_for_precision` at
    `confidence`: with no recall target, the bound is what keeps a margin.
    """
    _check_targets(precision, confidence)
    if recall is None:
        return threshold_for_precision(labels, scores, precision, confidence)
    if not 0.0 < recall < 1.0:
        raise ValueError(f"target recall must be in (0, 1), got {recall}")
    labels, scores = _check(labels, scores)
    thresholds, tp, fp = _operating_points(labels, scores)
    ok = np.flatnonzero(tp / np.maximum(tp + fp, 1) >= precision)
    if not len(ok) or not labels.any():
        return threshold_for_precision(labels, scores, precision, confidence)[0], False
    z = np.minimum(
        score_z(tp[ok], tp[ok] + fp[ok], precision),
        score_z(tp[ok], np.full(len(ok), labels.sum()), recall),
    )
    best = np.flatnonzero(z == z.max())[-1]
    return _just_below(thresholds, ok[best]), bool(z[best] >= NormalDist().inv_cdf(confidence))
