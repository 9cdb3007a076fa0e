"""Train the success classifier from labelled episodes, choose its threshold on held-out episodes.

Steps, top to bottom:
1. label every row (`labels.frame_labels`), drop unlabelled rows;
2. split by episode (validation never sees a frame of a training episode), stratified so both
   splits get successful episodes; cap the training positives (HIL-SERL uses ~200);
3. run the frozen backbone once per frame and cache the maps; training frames get `shifts - 1`
   extra DrQ-shifted copies (the augmentation), validation frames only the plain one;
4. train pooling + heads with balanced batches (half positive, half negative) and BCE; the proprio
   term (if any) at `proprio_lr`;
5. on validation, of the thresholds whose precision reaches the target, pick the one farthest
   inside both the precision and the recall target (`metrics.threshold_for_targets`); `target_met`
   says whether both are shown there with `threshold_confidence` (`target_recall: null`: the lowest
   threshold whose Wilson lower bound reaches the precision target), and report precision, recall,
   ROC-AUC and the confusion matrix at it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from controllers.config import ConfigError
from robot_rl.reward import metrics
from robot_rl.reward.classifier import ClassifierConfig, SuccessClassifier, crop, image_key
from robot_rl.reward.labels import LABEL_KEY, POSITIVE, UNLABELLED, LabelConfig, frame_labels


@dataclass
class TrainConfig:
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    val_fraction: float = 0.25  # of episodes, per stratum (with / without positives)
    target_precision: float = 0.98
    # of the thresholds whose validation precision reaches target_precision, the one farthest inside
    # both targets; null: the lowest threshold whose Wilson bound at threshold_confidence reaches it
    # (docs/reward.md)
    target_recall: float | None = 0.9
    threshold_confidence: float = 0.8  # one-sided: target_met needs both targets shown with it
    max_positives: int | None = 200  # positive training frames kept (None: all)
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-4
    proprio_lr: float = (
        0.1  # the proprio term's: a success line mm wide in a standardised input is steep
    )
    weight_decay: float = 1e-4
    shifts: int = 4  # cached copies per training frame: the plain one + DrQ shifts
    pad: int = 4  # DrQ shift padding, pixels
    seed: int = 0
    threads: int = 1  # torch CPU threads

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction: must be in (0, 1), got {self.val_fraction}")
        if not 0.0 < self.target_precision <= 1.0:
            raise ConfigError(f"target_precision: must be in (0, 1], got {self.target_precision}")
        if self.target_recall is not None and not 0.0 < self.target_recall < 1.0:
            raise ConfigError(f"target_recall: must be in (0, 1) or null, got {self.target_recall}")
        if not 0.5 <= self.threshold_confidence < 1.0:
            raise ConfigError(
                f"threshold_confidence: must be in [0.5, 1), got {self.threshold_confidence}"
            )
        if self.max_positives is not None and self.max_positives < 1:
            raise ConfigError(f"max_positives: must be >= 1 or null, got {self.max_positives}")
        for key in ("steps", "batch_size", "shifts", "threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.pad < 0:
            raise ConfigError(f"pad: must be >= 0, got {self.pad}")
        for key in ("lr", "proprio_lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")


@dataclass
class Frames:
    """Labelled frames: `images[camera]` (N, H, W, 3) uint8, `labels` (N,) bool, `episode` (N,) int,
    `state[key]` (N, ...) the robot-state keys asked for."""

    images: dict[str, np.ndarray]
    labels: np.ndarray
    episode: np.ndarray
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> Frames:
        return Frames(
            {k: v[mask] for k, v in self.images.items()},
            self.labels[mask],
            self.episode[mask],
            {k: v[mask] for k, v in self.state.items()},
        )


def collect_frames(
    episodes: Iterable[dict[str, np.ndarray]],
    cameras: Iterable[str],
    config: LabelConfig | None = None,
    outcomes: Sequence[bool | None] | None = None,
    state_keys: Iterable[str] = (),
) -> Frames:
    """Labelled rows of every episode, the frames of `cameras` and the `state_keys` only;
    `outcomes[i]`: episode i succeeded."""
    cameras = sorted(set(cameras))
    state_keys = sorted(set(state_keys))
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    state: dict[str, list[np.ndarray]] = {k: [] for k in state_keys}
    labels, episode_ids = [], []
    for i, ep in enumerate(episodes):
        lab = frame_labels(ep, config, outcomes[i] if outcomes is not None else None)
        keep = lab != UNLABELLED
        for cam in cameras:
            key = image_key(cam)
            if key not in ep:
                raise KeyError(f"episode {i} has no {key!r}; have {sorted(ep)}")
            images[cam].append(np.asarray(ep[key])[keep])
        for key in state_keys:
            if key not in ep:
                raise KeyError(
                    f"episode {i} has no {key!r} (classifier.proprio); have {sorted(ep)}"
                )
            state[key].append(np.asarray(ep[key])[keep])
        labels.append(lab[keep] == POSITIVE)
        episode_ids.append(np.full(int(keep.sum()), i, dtype=np.int64))
    if not labels:
        raise ValueError("no episodes to train on")
    return Frames(
        {c: np.concatenate(v) for c, v in images.items()},
        np.concatenate(labels),
        np.concatenate(episode_ids),
        {k: np.concatenate(v) for k, v in state.items()},
    )


def split_by_episode(
    frames: Frames, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (train, val) row masks; whole episodes go to one side, stratified by positives."""
    rng = np.random.default_rng(seed)
    ids = np.unique(frames.episode)
    has_pos = np.array([frames.labels[frames.episode == i].any() for i in ids])
    val_ids = []
    for stratum in (ids[has_pos], ids[~has_pos]):
        if len(stratum) < 2:
            continue
        n_val = min(max(1, round(val_fraction * len(stratum))), len(stratum) - 1)
        val_ids.extend(rng.permutation(stratum)[:n_val])
    val = np.isin(frames.episode, val_ids)
    return ~val, val


def featurize(
    model: SuccessClassifier, frames: Frames, shifts: int, pad: int
) -> list[torch.Tensor]:
    """Per view, cached backbone maps (N, shifts, C, h, w) float16; copy 0 unshifted."""
    return [
        torch.from_numpy(model.backbone.featurize(crop(frames.images[v.camera], v), shifts, pad))
        for v in model.config.views
    ]


@torch.no_grad()
def score_cached(
    model: SuccessClassifier, cache: list[torch.Tensor], proprio: torch.Tensor, chunk: int = 512
) -> np.ndarray:
    """Probabilities from the unshifted cached maps and standardised proprio, in eval mode."""
    model.eval()
    n = len(cache[0])
    out = [
        model.proba_from_features([c[s : s + chunk, 0] for c in cache], proprio[s : s + chunk])
        for s in range(0, n, chunk)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


@dataclass
class TrainResult:
    model: SuccessClassifier
    report: metrics.Report  # validation, at the chosen threshold
    target_met: bool  # validation shows the target precision (and recall) with threshold_confidence
    train_positives: int
    train_negatives: int
    val_episodes: int
    train_episodes: int
    featurize_s: float
    fit_s: float
    val_labels: np.ndarray  # the validation frames' labels and scores the threshold was chosen on
    val_scores: np.ndarray

    def summary(self) -> dict:
        return {
            "validation": self.report.to_dict(),
            "target_met": self.target_met,
            "train_positives": self.train_positives,
            "train_negatives": self.train_negatives,
            "train_episodes": self.train_episodes,
            "val_episodes": self.val_episodes,
            "featurize_s": round(self.featurize_s, 3),
            "fit_s": round(self.fit_s, 3),
        }


def load_store(
    path: str | Path, cameras: Iterable[str], state_keys: Iterable[str] = ()
) -> tuple[list[dict[str, np.ndarray]], list[bool]]:
    """Episodes of a zarr episode store (only the keys the classifier and labelling need) and their
    recorded outcomes."""
    from robot_rl.store.episodes import EpisodeStore

    with EpisodeStore.open(path, "r") as store:
        if len(store) == 0:
            raise ValueError(f"{path}: the episode store holds no episodes")
        wanted = (
            [image_key(c) for c in sorted(set(cameras))]
            + sorted(set(state_keys))
            + ["is_terminal", "reward"]
        )
        missing = [k for k in wanted if k not in store.keys]
        if missing:
            raise KeyError(f"{path}: the store has no {missing}; its keys are {list(store.keys)}")
        keys = tuple(wanted + ([LABEL_KEY] if LABEL_KEY in store.keys else []))
        episodes = [
            {k: np.asarray(v) for k, v in store.episode(i, keys).items()} for i in range(len(store))
        ]
        return episodes, [info.success for info in store.infos()]


def train(
    episodes: Iterable[dict[str, np.ndarray]],
    config: TrainConfig,
    model: SuccessClassifier | None = None,
    outcomes: Sequence[bool | None] | None = None,
) -> TrainResult:
    """Train a classifier on labelled `episodes`; see the module docstring for the recipe."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = model or SuccessClassifier(config.classifier)
    cameras = [v.camera for v in model.config.views]
    frames = collect_frames(episodes, cameras, config.labels, outcomes, model.state_keys)

    train_mask, val_mask = split_by_episode(frames, config.val_fraction, config.seed)
    train_set, val_set = frames.subset(train_mask), frames.subset(val_mask)
    pos, neg = np.flatnonzero(train_set.labels), np.flatnonzero(~train_set.labels)
    if config.max_positives is not None and len(pos) > config.max_positives:
        pos = np.sort(rng.choice(pos, config.max_positives, replace=False))
        train_set = train_set.subset(np.isin(np.arange(len(train_set)), np.r_[pos, neg]))
        pos, neg = np.flatnonzero(train_set.labels), np.flatnonzero(~train_set.labels)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(
            f"training split needs positive and negative frames; got {len(pos)} and {len(neg)}"
        )
    if not val_set.labels.any() or val_set.labels.all():
        raise ValueError(
            "validation split needs positive and negative frames: record more episodes "
            f"(have {len(np.unique(frames.episode))} episodes, "
            f"{int(frames.labels.sum())} positive frames)"
        )

    t0 = time.perf_counter()
    train_cache = featurize(model, train_set, config.shifts, config.pad)
    val_cache = featurize(model, val_set, 1, 0)
    featurize_s = time.perf_counter() - t0
    train_proprio = model.proprio_values(train_set.state, len(train_set))
    model.fit_proprio(train_proprio)
    train_proprio = model.standardize(train_proprio)
    val_proprio = model.standardize(model.proprio_values(val_set.state, len(val_set)))

    t0 = time.perf_counter()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if ".proprio_head." not in n]},
        {"params": [p for n, p in trainable if ".proprio_head." in n], "lr": config.proprio_lr},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    half = config.batch_size // 2
    members = len(model.members)
    targets = torch.cat([torch.ones(half), torch.zeros(config.batch_size - half)]).expand(
        members, -1
    )
    for _ in range(config.steps):
        model.train()
        batches = []
        for _ in range(
            members
        ):  # each member its own balanced batch and DrQ copies: they differ in data too
            idx = np.r_[rng.choice(pos, half), rng.choice(neg, config.batch_size - half)]
            copy = rng.integers(
                0, config.shifts, size=len(idx)
            )  # which cached DrQ shift each sample uses
            batches.append(([c[idx, copy] for c in train_cache], train_proprio[idx]))
        loss = F.binary_cross_entropy_with_logits(model.member_logits(batches), targets) * members
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    fit_s = time.perf_counter() - t0

    scores = score_cached(model, val_cache, val_proprio)
    threshold, met = metrics.threshold_for_targets(
        val_set.labels,
        scores,
        config.target_precision,
        config.target_recall,
        config.threshold_confidence,
    )
    model.threshold = threshold
    return TrainResult(
        model=model.eval(),
        report=metrics.report(val_set.labels, scores, threshold),
        target_met=met,
        train_positives=len(pos),
        train_negatives=len(neg),
        train_episodes=len(np.unique(train_set.episode)),
        val_episodes=len(np.unique(val_set.episode)),
        featurize_s=featurize_s,
        fit_s=fit_s,
        val_labels=val_set.labels,
        val_scores=scores,
    )


def evaluate(
    model: Any,
    episodes: Iterable[dict[str, np.ndarray]],
    config: LabelConfig | None = None,
    outcomes: Sequence[bool | None] | None = None,
    chunk: int = 64,
) -> metrics.Report:
    """Precision/recall/ROC-AUC/confusion of a reward model (`robot_rl.reward`) at its threshold."""
    frames = collect_frames(episodes, model.cameras, config, outcomes, model.state_keys)
    scores = [
        model.predict_proba(
            {
                **{image_key(c): v[s : s + chunk] for c, v in frames.images.items()},
                **{k: v[s : s + chunk] for k, v in frames.state.items()},
            }
        )
        for s in range(0, len(frames), chunk)
    ]
    return metrics.report(frames.labels, np.concatenate(scores), model.threshold)
