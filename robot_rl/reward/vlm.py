"""CLIP-style VLM back ends: zero-shot goal-vs-baseline scoring (VLM-RM), a few-shot linear probe.

Weights come from a local directory holding a Hugging Face `transformers` CLIP checkpoint
(`config.json`, `model.safetensors`, tokenizer files, optionally `preprocessor_config.json`);
nothing is downloaded. Frames are preprocessed here with torch (bicubic resize to the model's input
size, the checkpoint's mean/std), so neither torchvision nor PIL is needed.

Zero-shot (Rocamonde et al., "Vision-Language Models are Zero-Shot Reward Models", 2023): with
unit embeddings s (frame), g (goal prompt), b (baseline prompt), d = g - b and the projection
P = alpha * d d^T / |d|^2 + (1 - alpha) * I, the reward is 1 - |P (s - g)|^2 / 2. alpha = 0 gives
the plain cosine similarity to the goal; alpha = 1 keeps only the goal-minus-baseline direction,
which removes what the two prompts share (the scene) from the score. The success probability is
CLIP's own two-way softmax over {goal, baseline}: sigmoid(logit_scale * (s.g - s.b)).

Linear probe: logistic regression on the frozen image embeddings of labelled frames, fitted with
L-BFGS and an L2 penalty; its threshold is chosen on held-out episodes, as the classifier's is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from controllers.config import ConfigError, from_dict, to_dict
from robot_rl.reward import metrics
from robot_rl.reward.classifier import image_key
from robot_rl.reward.labels import LabelConfig

CONFIG_FILE, PROBE_FILE = "vlm.yaml", "probe.safetensors"
# OpenAI CLIP preprocessing, used when the checkpoint has no preprocessor_config.json
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass
class VLMConfig:
    path: str  # local transformers CLIP checkpoint directory
    camera: str = "front"  # frames from the observation key image_<camera>
    goal_prompt: str = "a robot gripper holding a red cube in the air above the table"
    baseline_prompt: str = "a robot arm and a red cube on a table"
    alpha: float = 1.0  # VLM-RM projection strength, 0..1

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"vlm.alpha: must be in [0, 1], got {self.alpha}")
        if not self.goal_prompt.strip() or not self.baseline_prompt.strip():
            raise ConfigError("vlm.goal_prompt / vlm.baseline_prompt: must not be empty")


def _missing_weights_message(path: Path, problem: str) -> str:
    return (
        f"VLM weights: {problem} at {path}. "
        "Put a Hugging Face transformers CLIP checkpoint directory there "
        "(config.json, model.safetensors, tokenizer.json or vocab.json + merges.txt, optionally "
        "preprocessor_config.json), e.g. made on a machine with internet access by "
        "`CLIPModel.from_pretrained('openai/clip-vit-base-patch32').save_pretrained(DIR)` "
        "and the same with `CLIPTokenizer`; then copy DIR here. Nothing is downloaded at run time."
    )


class ClipEmbedder:
    """Unit CLIP embeddings of uint8 frames and prompts from a local transformers checkpoint."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(_missing_weights_message(path, "no such directory"))
        if not (path / "config.json").is_file():
            raise FileNotFoundError(_missing_weights_message(path, "no config.json"))
        from transformers import AutoTokenizer, CLIPModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            self.model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except OSError as exc:  # transformers' way of saying a file is missing
            raise FileNotFoundError(
                _missing_weights_message(path, str(exc).splitlines()[0])
            ) from exc
        self.size = int(self.model.config.vision_config.image_size)
        mean, std = CLIP_MEAN, CLIP_STD
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            cfg = json.loads(pre.read_text())
            mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.logit_scale = float(self.model.logit_scale.detach().exp())

    @torch.no_grad()
    def images(self, frames: np.ndarray, chunk: int = 64) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, D) unit embeddings."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 frames (B, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        out = []
        for s in range(0, len(frames), chunk):
            x = (
                torch.from_numpy(np.ascontiguousarray(frames[s : s + chunk]))
                .permute(0, 3, 1, 2)
                .float()
                / 255.0
            )
            x = torch.nn.functional.interpolate(
                x, size=(self.size, self.size), mode="bicubic", align_corners=False
            )
            x = (x.clamp(0.0, 1.0) - self.mean) / self.std
            pooled = self.model.vision_model(pixel_values=x).pooler_output
            out.append(torch.nn.functional.normalize(self.model.visual_projection(pooled), dim=-1))
        return torch.cat(out)

    @torch.no_grad()
    def texts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> (N, D) unit embeddings."""
        tokens = self.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt")
        pooled = self.model.text_model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output
        return torch.nn.functional.normalize(self.model.text_projection(pooled), dim=-1)


def vlm_rm_reward(
    images: torch.Tensor, goal: torch.Tensor, baseline: torch.Tensor, alpha: float
) -> torch.Tensor:
    """VLM-RM reward 1 - |P (s - g)|^2 / 2 per image embedding s (all embeddings unit norm)."""
    d = goal - baseline
    direction = d / d.norm()
    diff = images - goal
    along = (diff @ direction)[:, None] * direction  # the component of s - g along d
    projected = alpha * along + (1.0 - alpha) * diff
    return 1.0 - 0.5 * (projected**2).sum(-1)


def _frames(observation: Mapping[str, np.ndarray], camera: str) -> np.ndarray:
    key = image_key(camera)
    if key not in observation:
        raise KeyError(f"observation has no {key!r}; have {sorted(observation)}")
    frames = np.asarray(observation[key])
    return frames[None] if frames.ndim == 3 else frames


class ZeroShotReward:
    """Goal prompt vs baseline prompt, no training. `threshold` applies to `predict_proba`."""

    kind = "zero_shot"

    def __init__(
        self, config: VLMConfig, embedder: ClipEmbedder | None = None, threshold: float = 0.5
    ):
        self.config = config
        self.embedder = embedder or ClipEmbedder(config.path)
        self.threshold = float(threshold)
        self.goal, self.baseline = self.embedder.texts([config.goal_prompt, config.baseline_prompt])

    @property
    def cameras(self) -> tuple[str, ...]:
        return (self.config.camera,)

    state_keys: tuple[str, ...] = ()  # images only

    def reward(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """VLM-RM reward per frame (float32)."""
        s = self.embedder.images(_frames(observation, self.config.camera))
        return (
            vlm_rm_reward(s, self.goal, self.baseline, self.config.alpha).numpy().astype(np.float32)
        )

    def predict_proba(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """CLIP's two-way softmax P(goal | frame) against the baseline prompt (float32)."""
        s = self.embedder.images(_frames(observation, self.config.camera))
        logits = self.embedder.logit_scale * (s @ self.goal - s @ self.baseline)
        return torch.sigmoid(logits).numpy().astype(np.float32)

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        return _save_meta(directory, self.kind, self.config, self.threshold, extra)


class LinearProbe:
    """Logistic regression on frozen CLIP image embeddings (few-shot)."""

    kind = "linear_probe"

    def __init__(
        self, config: VLMConfig, embedder: ClipEmbedder | None = None, threshold: float = 0.5
    ):
        self.config = config
        self.embedder = embedder or ClipEmbedder(config.path)
        self.threshold = float(threshold)
        dim = int(self.embedder.model.config.projection_dim)
        self.weight, self.bias = torch.zeros(dim), torch.zeros(())

    def fit(
        self, embeddings: torch.Tensor, labels: np.ndarray, l2: float = 1e-3, iterations: int = 100
    ) -> None:
        """Balanced logistic regression (each class weighs half) with an L2 penalty, by L-BFGS."""
        y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        if y.min() == y.max():
            raise ValueError("the linear probe needs positive and negative frames")
        sample_w = torch.where(y > 0, 0.5 / y.sum(), 0.5 / (1 - y).sum())
        w = torch.zeros(embeddings.shape[1], requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = embeddings @ w + b
            loss = (
                sample_w
                * torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
            ).sum()
            loss = loss + l2 * (w**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.weight, self.bias = w.detach(), b.detach()

    @property
    def cameras(self) -> tuple[str, ...]:
        return (self.config.camera,)

    state_keys: tuple[str, ...] = ()  # images only

    def proba_from_embeddings(self, embeddings: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(embeddings @ self.weight + self.bias).numpy().astype(np.float32)

    def predict_proba(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.proba_from_embeddings(
            self.embedder.images(_frames(observation, self.config.camera))
        )

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        from safetensors.torch import save_file

        directory = _save_meta(directory, self.kind, self.config, self.threshold, extra)
        save_file(
            {"weight": self.weight.contiguous(), "bias": self.bias.reshape(1)},
            str(directory / PROBE_FILE),
        )
        return directory


def _save_meta(
    directory: str | Path, kind: str, config: VLMConfig, threshold: float, extra: dict | None
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"kind": kind, "vlm": to_dict(config), "threshold": float(threshold), **(extra or {})}
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False))
    return directory


def load(directory: str | Path) -> ZeroShotReward | LinearProbe:
    """A VLM reward saved by `save` (the CLIP weights are loaded from `vlm.path`)."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{directory}: no {CONFIG_FILE}")
    meta = yaml.safe_load((directory / CONFIG_FILE).read_text())
    config = from_dict(VLMConfig, meta.get("vlm"), "vlm")
    kinds = {ZeroShotReward.kind: ZeroShotReward, LinearProbe.kind: LinearProbe}
    if meta.get("kind") not in kinds:
        raise ConfigError(
            f"{directory / CONFIG_FILE}: kind: {meta.get('kind')!r} is not one of {list(kinds)}"
        )
    model = kinds[meta["kind"]](config, threshold=float(meta["threshold"]))
    if isinstance(model, LinearProbe):
        from safetensors.torch import load_file

        state = load_file(str(directory / PROBE_FILE))
        if state["weight"].shape != model.weight.shape:
            raise ValueError(
                f"{directory / PROBE_FILE}: weight {tuple(state['weight'].shape)} does not fit the "
                f"CLIP embedding size {tuple(model.weight.shape)}"
            )
        model.weight, model.bias = state["weight"], state["bias"].reshape(())
    return model


@dataclass
class ProbeResult:
    probe: LinearProbe
    report: metrics.Report  # validation, at the chosen threshold
    target_met: bool
    train_positives: int
    train_negatives: int


def train_probe(
    episodes: Iterable[dict[str, np.ndarray]],
    config: VLMConfig,
    labels: LabelConfig | None = None,
    outcomes: Sequence[bool | None] | None = None,
    target_precision: float = 0.98,
    threshold_confidence: float = 0.8,
    target_recall: float | None = 0.9,
    val_fraction: float = 0.25,
    max_positives: int | None = 200,
    seed: int = 0,
    embedder: ClipEmbedder | None = None,
) -> ProbeResult:
    """Fit a linear probe on labelled frames, split by episode, threshold chosen on validation.

    The threshold meets `target_precision` and `target_recall` (`metrics.threshold_for_targets`,
    as the classifier's).
    """
    from robot_rl.reward.training import collect_frames, split_by_episode

    probe = LinearProbe(config, embedder)
    frames = collect_frames(episodes, [config.camera], labels, outcomes)
    train_mask, val_mask = split_by_episode(frames, val_fraction, seed)
    pos = np.flatnonzero(train_mask & frames.labels)
    if max_positives is not None and len(pos) > max_positives:
        drop = np.random.default_rng(seed).choice(pos, len(pos) - max_positives, replace=False)
        train_mask[drop] = False
    y_train, y_val = frames.labels[train_mask], frames.labels[val_mask]
    if not y_val.any() or y_val.all():
        raise ValueError(
            "validation split needs positive and negative frames: record more episodes"
        )
    emb = probe.embedder.images(frames.images[config.camera])
    probe.fit(emb[torch.from_numpy(train_mask)], y_train)
    scores = probe.proba_from_embeddings(emb[torch.from_numpy(val_mask)])
    probe.threshold, met = metrics.threshold_for_targets(
        y_val, scores, target_precision, target_recall, threshold_confidence
    )
    return ProbeResult(
        probe,
        metrics.report(y_val, scores, probe.threshold),
        met,
        int(y_train.sum()),
        int((~y_train).sum()),
    )
