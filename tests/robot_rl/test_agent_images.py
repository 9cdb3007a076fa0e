"""Images: pretrained EfficientNet-Lite0 backbone, DrQ shift, feature cache, image agent update."""

import numpy as np
import pytest
import torch

from controllers.config import from_dict
from robot_rl.agents.encoders import (
    Backbone,
    EfficientNetLite0Trunk,
    load_efficientnet_lite0,
    random_shift,
)
from robot_rl.agents.replay_buffer import ReplayBuffer
from robot_rl.agents.sac import Policy, SACAgent, SACConfig, native_bf16

torch.set_num_threads(1)
SIZE = 64
SPEC = {
    "tcp_pose": ((7,), np.float32),
    "image_front": ((SIZE, SIZE, 3), np.uint8),
    "image_wrist": ((SIZE, SIZE, 3), np.uint8),
}


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return Backbone(load_efficientnet_lite0())


def test_pretrained_weights_load_and_match_their_batchnorm_statistics(backbone):
    """The first BatchNorm's running mean is what the stem produces on natural-ish images when the
    input scaling is right; random weights or a wrong scaling would not reproduce it."""
    rng = np.random.default_rng(0)
    # smooth random colour fields with a natural mean colour
    coarse = rng.uniform(40, 210, (16, 8, 8, 3)).astype(np.float32)
    imgs = torch.nn.functional.interpolate(
        torch.from_numpy(coarse).permute(0, 3, 1, 2), size=128, mode="bilinear"
    )
    trunk = load_efficientnet_lite0()  # as loaded: BatchNorms not yet folded into the convs
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    corr = {}
    for name, x in (("lite", (imgs - 127.0) / 128.0), ("torchvision", (imgs / 255 - mean) / std)):
        with torch.no_grad():
            stem = trunk._conv_stem(x)
        corr[name] = np.corrcoef(stem.mean((0, 2, 3)).numpy(), trunk._bn0.running_mean.numpy())[
            0, 1
        ]
    assert corr["lite"] > 0.8 and corr["torchvision"] < 0.5, corr
    fresh = EfficientNetLite0Trunk()
    assert not torch.allclose(fresh._conv_stem.weight, trunk._conv_stem.weight)
    # the Backbone folds the frozen BatchNorms into the convs: the same function
    frames = torch.from_numpy(rng.integers(0, 255, (4, 128, 128, 3), dtype=np.uint8))
    with torch.no_grad():
        reference = trunk.eval()(frames.permute(0, 3, 1, 2).float())
    assert isinstance(backbone.trunk._bn0, torch.nn.Identity)
    torch.testing.assert_close(backbone(frames), reference, atol=1e-3, rtol=1e-4)
    assert backbone.feature_shape(128, 128) == (320, 4, 4)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.trunk.training  # BatchNorm statistics stay frozen


@pytest.mark.parametrize("kernel,stride,size", [(3, 1, 16), (5, 1, 15), (3, 2, 16), (5, 2, 15)])
def test_same_conv_pads_as_tensorflow_same(kernel, stride, size):
    """TF 'SAME': output ceil(size / stride), padding total (out - 1) * stride + k - size, the odd
    pixel after; the stride-1 shortcut (the conv's own symmetric padding) must give the same."""
    from robot_rl.agents.encoders import _SameConv

    conv = _SameConv(4, 4, kernel, stride, groups=4, bias=True)
    x = torch.randn(2, 4, size, size)
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    padded = torch.nn.functional.pad(x, [total // 2, total - total // 2] * 2)
    expected = torch.nn.functional.conv2d(padded, conv.weight, conv.bias, stride, 0, 1, 4)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), expected)
    assert expected.shape[-2:] == (out, out)


def test_pointwise_conv_is_conv2d_in_either_memory_layout():
    from robot_rl.agents.encoders import _PointwiseConv

    conv = _PointwiseConv(8, 5, 1, bias=True)
    x = torch.randn(3, 8, 6, 7)
    with torch.no_grad():
        expected = torch.nn.functional.conv2d(x, conv.weight, conv.bias)
        last = conv(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(conv(x), expected)
        torch.testing.assert_close(last, expected)
    assert last.is_contiguous(memory_format=torch.channels_last)  # the next layer gets NHWC again


@pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="CPU without native bfloat16"
)
def test_bfloat16_backbone_stays_within_camera_noise_of_float32(backbone):
    """bf16 features differ from float32 by about what 2 grey levels of pixel noise change in the
    float32 features; a policy must not see a different backbone than it was trained with."""
    from robot_rl.agents.encoders import load_efficientnet_lite0
    from robot_rl.agents.sac import build_backbone

    rng = np.random.default_rng(1)
    frames = torch.from_numpy(rng.integers(0, 255, (2, 128, 128, 3), dtype=np.uint8))
    noisy = (frames.float() + 2.0 * torch.randn(frames.shape)).clamp(0, 255).to(torch.uint8)
    bf16 = Backbone(load_efficientnet_lite0(), torch.bfloat16)
    ref = backbone(frames)
    out = bf16(frames)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    err = float((out - ref).norm() / ref.norm())
    noise = float((backbone(noisy) - ref).norm() / ref.norm())
    assert 0 < err < 1.5 * noise, (err, noise)
    cfg = from_dict(SACConfig, {"image": {"dtype": "bfloat16"}})
    assert build_backbone(cfg.image).dtype == torch.bfloat16
    from controllers.config import ConfigError

    with pytest.raises(
        ConfigError,
        match="sac.image.dtype is bfloat16 but the backbone given runs in torch.float32",
    ):
        Policy(SPEC, cfg, backbone=backbone)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_efficientnet_lite0(tmp_path / "nope.pth")


def test_random_shift_is_a_replicate_padded_crop():
    imgs = torch.arange(2 * 8 * 8 * 3, dtype=torch.int64).reshape(2, 8, 8, 3).to(torch.uint8)
    g = torch.Generator().manual_seed(0)
    out = random_shift(imgs, 2, g)
    assert out.shape == imgs.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(
        imgs.permute(0, 3, 1, 2).float(), (2, 2, 2, 2), mode="replicate"
    ).permute(0, 2, 3, 1)
    for i in range(2):  # each output is one of the 25 crops of its padded image
        crops = [padded[i, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i].float(), c) for c in crops)
    assert torch.equal(random_shift(imgs, 0), imgs)


def test_featurize_caches_unshifted_plus_shifted_copies(backbone):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (3, SIZE, SIZE, 3), dtype=np.uint8)
    feats = backbone.featurize(imgs, shifts=3, pad=4)
    assert feats.shape == (3, 3, 320, 2, 2) and feats.dtype == np.float16
    direct = backbone(torch.from_numpy(imgs)).numpy()
    np.testing.assert_allclose(feats[:, 0], direct, rtol=1e-2, atol=1e-2)
    assert not np.allclose(feats[:, 1], feats[:, 0], atol=1e-2)


def _episode(rng, T=6, spec=SPEC):
    ep = {
        k: (
            rng.integers(0, 255, (T + 1, *s)) if d == np.uint8 else rng.standard_normal((T + 1, *s))
        ).astype(d)
        for k, (s, d) in spec.items()
    }
    ep.update(
        action=rng.uniform(-1, 1, (T + 1, 7)).astype(np.float32),
        reward=np.zeros(T + 1, np.float32),
        intervened=np.zeros(T + 1, bool),
        is_first=np.arange(T + 1) == 0,
        is_last=np.arange(T + 1) == T,
        is_terminal=np.arange(T + 1) == T,
    )
    return ep


@pytest.mark.parametrize(
    "cache_shifts, matmul_dtype", [(0, "float32"), (2, "float32"), (2, "bfloat16")]
)
def test_image_agent_updates_and_exports_no_backbone(backbone, cache_shifts, matmul_dtype):
    if matmul_dtype == "bfloat16" and not native_bf16():
        pytest.skip("CPU without native bf16")
    rng = np.random.default_rng(0)
    cfg = from_dict(
        SACConfig,
        {
            "hidden": [32],
            "image": {"cache_shifts": cache_shifts, "embed_dim": 16},
            "matmul_dtype": matmul_dtype,
        },
    )
    agent = SACAgent(SPEC, cfg, backbone=backbone)
    spec = agent.storage_spec() if cache_shifts else SPEC
    buf = ReplayBuffer(100, spec)
    for _ in range(2):
        buf.add_episode(agent.to_storage(_episode(rng)))
    if cache_shifts:
        assert buf.obs["image_front"].shape[1:] == (cache_shifts, 320, 2, 2)
    before = agent.policy.encoder.pools["image_front"].kernel.detach().clone()
    for _ in range(2):
        m = agent.update(buf.sample(8, rng))
    assert "critic_loss" in m and agent.skipped_updates == 0
    assert not torch.equal(
        before, agent.policy.encoder.pools["image_front"].kernel
    )  # critic loss trains pooling
    params = agent.actor_parameters()
    assert not any("_blocks" in k or "_conv_stem" in k for k in params)
    assert (
        sum(v.size for v in params.values()) < 2_000_000
    )  # the 3.4M-parameter backbone stays home
    policy = Policy(SPEC, cfg, backbone=backbone)
    policy.load_actor_parameters(params)
    obs = {k: v[0] for k, v in _episode(rng).items() if k in SPEC}
    np.testing.assert_allclose(policy.act(obs, True), agent.act(obs, True), atol=1e-5)


def test_cached_maps_reach_the_encoder_unchanged_in_channel_major_memory(backbone):
    rng = np.random.default_rng(3)
    cfg = from_dict(SACConfig, {"hidden": [32], "image": {"cache_shifts": 2, "embed_dim": 16}})
    agent = SACAgent(SPEC, cfg, backbone=backbone)
    stored = agent.to_storage(_episode(rng))
    obs = agent.policy.obs_to_tensors({k: stored[k][:4] for k in SPEC}, batched=True)
    maps = agent.policy.image_features(obs, augment=False)["image_front"]
    torch.testing.assert_close(
        maps, torch.from_numpy(stored["image_front"][:4, 0]).float(), rtol=0, atol=0
    )
    assert maps.transpose(0, 1).is_contiguous()  # (C, B, h, w) in memory: no copy per encoder pass
    shifted = agent.policy.image_features(obs, augment=True)["image_front"]
    copies = torch.from_numpy(stored["image_front"][:4]).float()
    assert all(any(torch.equal(shifted[i], copies[i, j]) for j in range(2)) for i in range(4))


def test_replay_stores_only_the_cameras_the_policy_reads(backbone):
    """A reward camera in the observation that the policy does not read takes no replay memory."""
    rng = np.random.default_rng(4)
    cfg = from_dict(
        SACConfig,
        {
            "hidden": [32],
            "image_keys": ["image_front"],
            "image": {"cache_shifts": 1, "embed_dim": 16},
        },
    )
    agent = SACAgent(SPEC, cfg, backbone=backbone)
    assert set(agent.storage_spec()) == {"tcp_pose", "image_front"}
    buf = ReplayBuffer(100, agent.storage_spec())
    buf.add_episode(agent.to_storage(_episode(rng)))  # rows still carry image_wrist: ignored
    assert "image_wrist" not in buf.obs
    assert "critic_loss" in agent.update(buf.sample(8, rng))
