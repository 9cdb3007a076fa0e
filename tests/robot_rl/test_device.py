"""Device selection and device-correct tensor paths: agent, replay batches, checkpoints, reward.

The placement tests run on every device present (`DEVICES`); the CUDA comparisons against the CPU
run only where a CUDA GPU is present and are skipped, saying so, elsewhere.
"""

import numpy as np
import pytest
import torch

from controllers.config import ConfigError
from robot_rl.agents import device as device_module
from robot_rl.agents.checkpoint import CheckpointMismatch, load_checkpoint, save_checkpoint
from robot_rl.agents.device import resolve_device, to_device
from robot_rl.agents.encoders import Backbone, EfficientNetLite0Trunk
from robot_rl.agents.replay_buffer import ReplayBuffer, sample_symmetric
from robot_rl.agents.sac import ImageConfig, SACAgent, SACConfig
from robot_rl.loop.actor import best_device
from robot_rl.reward.classifier import ClassifierConfig, SuccessClassifier, ViewConfig

torch.set_num_threads(1)
CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device")
SPEC = {"tcp_pose": ((7,), np.float32), "gripper_width": ((1,), np.float32)}
IMG_SPEC = {**SPEC, "image_front": ((32, 32, 3), np.uint8)}


def episode(spec, rng, steps=12):
    ep = {
        k: (
            rng.integers(0, 255, (steps + 1, *s), dtype=np.uint8)
            if np.dtype(d) == np.uint8
            else rng.standard_normal((steps + 1, *s)).astype(d)
        )
        for k, (s, d) in spec.items()
    }
    ep.update(
        action=rng.uniform(-1, 1, (steps + 1, 7)).astype(np.float32),
        reward=rng.standard_normal(steps + 1).astype(np.float32),
        intervened=np.zeros(steps + 1, bool),
        is_first=np.arange(steps + 1) == 0,
        is_last=np.arange(steps + 1) == steps,
        is_terminal=np.arange(steps + 1) == steps,
    )
    return ep


@pytest.fixture(scope="module")
def backbone():
    """An untrained EfficientNet-Lite0 trunk: placement does not need the ImageNet weights."""
    torch.manual_seed(0)
    return Backbone(EfficientNetLite0Trunk())


def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


# ---- resolution ---------------------------------------------------------------------------------
def test_auto_is_cpu_without_a_gpu(monkeypatch):
    no_gpu(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert best_device("auto") == "cpu"


def test_auto_is_cuda_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert best_device() == "cuda"


def test_cuda_index_is_checked_against_the_gpus_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"sac.device: 'cuda:2' .* 2 CUDA GPU\(s\)"):
        resolve_device("cuda:2", "sac.device")


def test_cuda_asked_for_without_one_names_the_option(monkeypatch):
    no_gpu(monkeypatch)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=f"sac.device: '{name}' asked for.*no CUDA GPU"):
            resolve_device(name, "sac.device")
    with pytest.raises(ConfigError, match="actor_device: 'cuda'"):
        best_device("cuda")
    with pytest.raises(ConfigError, match="sac.device: 'cuda'"):
        SACAgent(SPEC, SACConfig(device="cuda", hidden=(8,)))
    with pytest.raises(ConfigError, match="'mps' asked for"):
        resolve_device("mps")


def test_unknown_device_names_are_config_errors():
    for name in ("gpu", "cuda:", "CUDA", "cuda:x", ""):
        with pytest.raises(ConfigError, match="is not a device"):
            resolve_device(name)
    with pytest.raises(ConfigError, match="sac.device: 'gpu' is not a device"):
        SACConfig(device="gpu")
    assert SACConfig().device == "auto"


# ---- placement on every device present ----------------------------------------------------------
def tensors_of(agent: SACAgent) -> dict[str, torch.Tensor]:
    """Every tensor the agent owns: weights, buffers, temperature, optimiser moments, backbone."""
    out = {
        f"{name}.{k}": v
        for name, mod in agent.modules().items()
        for k, v in mod.state_dict().items()
    }
    out["log_alpha"] = agent.log_alpha
    for name, opt in agent.optimizers().items():
        for i, state in opt.state_dict()["state"].items():
            out.update({f"{name}.{i}.{k}": v for k, v in state.items() if k != "step"})
    if agent.policy.backbone is not None:
        out.update({f"backbone.{k}": v for k, v in agent.policy.backbone.state_dict().items()})
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cache_shifts", [0, 2])
def test_agent_and_batches_live_on_the_configured_device(device, cache_shifts, backbone):
    torch.manual_seed(0)
    cfg = SACConfig(
        hidden=(16,), device=device, image=ImageConfig(cache_shifts=cache_shifts, embed_dim=8)
    )
    agent = SACAgent(IMG_SPEC, cfg, backbone=backbone)
    dev = torch.device(device)
    rng = np.random.default_rng(0)
    online = ReplayBuffer(64, agent.storage_spec())
    offline = ReplayBuffer(64, agent.storage_spec())
    for buf in (online, offline):
        buf.add_episode(agent.to_storage(episode(IMG_SPEC, rng)))
    batch = sample_symmetric(online, offline, 8, rng)
    t = agent._to_tensors(batch)
    obs, next_obs = t.pop("obs"), t.pop("next_obs")
    flat = {**t, **{f"obs.{k}": v for k, v in obs.items()}}
    flat.update({f"next_obs.{k}": v for k, v in next_obs.items()})
    assert {k: v.device.type for k, v in flat.items()} == {k: dev.type for k in flat}
    proprio, maps = agent.policy.inputs(obs, augment=True)
    assert proprio.device.type == dev.type and all(m.device.type == dev.type for m in maps.values())
    metrics = agent.update(batch)
    assert "skipped" not in metrics and np.isfinite(metrics["critic_loss"])
    assert agent.actor_steps == 1  # the optimiser moments exist now
    misplaced = {
        k: str(v.device) for k, v in tensors_of(agent).items() if v.device.type != dev.type
    }
    assert misplaced == {}
    params = agent.actor_parameters()  # what the learner publishes: host arrays whatever the device
    assert all(isinstance(v, np.ndarray) for v in params.values())
    obs = {k: v[0] for k, v in episode(IMG_SPEC, rng).items() if k in IMG_SPEC}
    assert agent.act(obs, deterministic=True).shape == (7,)


@pytest.mark.parametrize("device", DEVICES)
def test_device_resident_replay_keys(device, backbone, tmp_path):
    """Cached features held as tensors on the agent's device: sampled there, saved to host arrays,
    the same transitions as a host buffer gives."""
    dev = torch.device(device)
    cfg = SACConfig(hidden=(16,), device=device, image=ImageConfig(cache_shifts=2, embed_dim=8))
    agent = SACAgent(IMG_SPEC, cfg, backbone=backbone)
    spec = agent.storage_spec()
    rows = agent.to_storage(episode(IMG_SPEC, np.random.default_rng(1)))
    host, resident = ReplayBuffer(32, spec), ReplayBuffer(32, spec, devices={"image_front": dev})
    for buf in (host, resident):
        buf.add_episode(rows)
    idx = host.sample_indices(6, np.random.default_rng(2))
    a, b = host.gather(idx), resident.gather(idx)
    assert isinstance(b["obs"]["image_front"], torch.Tensor)
    assert b["obs"]["image_front"].device.type == dev.type
    np.testing.assert_array_equal(
        b["next_obs"]["image_front"].cpu().numpy(), a["next_obs"]["image_front"]
    )
    np.testing.assert_array_equal(b["obs"]["tcp_pose"], a["obs"]["tcp_pose"])
    resident.save(tmp_path / "buf.npz")
    loaded = ReplayBuffer.load(tmp_path / "buf.npz", devices={"image_front": dev})
    np.testing.assert_array_equal(loaded.obs["image_front"].cpu().numpy(), host.obs["image_front"])
    mixed = sample_symmetric(host, resident, 8, np.random.default_rng(3))
    assert mixed["obs"]["image_front"].shape[0] == 8
    assert "skipped" not in agent.update(mixed)
    with pytest.raises(ConfigError, match="not observation keys"):
        ReplayBuffer(8, spec, devices={"image_wrist": dev})


def test_feature_cache_goes_to_the_gpu_only_when_it_fits(backbone, monkeypatch):
    cfg = SACConfig(hidden=(16,), device="cpu", image=ImageConfig(cache_shifts=2, embed_dim=8))
    agent = SACAgent(IMG_SPEC, cfg, backbone=backbone)
    assert agent.storage_devices(1000) == {}  # host memory is where a CPU agent reads anyway
    # the same agent as if it ran on a GPU (placement is decided from sizes alone)
    monkeypatch.setattr(agent, "device", torch.device("cuda"))
    shape, dtype = agent.storage_spec()["image_front"]
    row_bytes = int(np.prod(shape)) * dtype.itemsize
    agent.cfg.image.cache_device_bytes = 100 * row_bytes
    assert agent.storage_devices(100) == {"image_front": torch.device("cuda")}
    assert agent.storage_devices(101) == {}


def test_to_device_keeps_a_tensor_already_there():
    x = torch.arange(4)
    assert to_device(x, torch.device("cpu")) is x
    y = to_device(np.arange(3, dtype=np.float32), torch.device("cpu"))
    assert y.dtype == torch.float32 and y.device.type == "cpu"


# ---- checkpoints ---------------------------------------------------------------------------------
@pytest.mark.parametrize("saved_on", DEVICES)
def test_checkpoint_from_any_device_loads_onto_cpu(saved_on, tmp_path):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    a = SACAgent(SPEC, SACConfig(hidden=(16,), device=saved_on))
    buf = ReplayBuffer(64, SPEC)
    buf.add_episode(episode(SPEC, rng))
    for _ in range(2):
        a.update(buf.sample(8, rng))
    to_cfg = lambda device: {"run": {"sac": {"device": device, "hidden": [16]}}}  # noqa: E731
    save_checkpoint(tmp_path / "ckpt", a, to_cfg("cuda:0"))  # as a GPU learner's config says
    b = SACAgent(SPEC, SACConfig(hidden=(16,), device="cpu"))
    load_checkpoint(tmp_path / "ckpt", b, to_cfg("cpu"))
    assert {v.device.type for v in tensors_of(b).values()} == {"cpu"}
    for k, v in tensors_of(a).items():
        torch.testing.assert_close(tensors_of(b)[k], v.cpu(), msg=k)
    obs = {k: v[0] for k, v in episode(SPEC, rng).items() if k in SPEC}
    np.testing.assert_allclose(b.act(obs, True), a.act(obs, True), atol=1e-5)
    # the device is the only key a resume may change
    with pytest.raises(CheckpointMismatch, match="run.sac.hidden"):
        load_checkpoint(tmp_path / "ckpt", b, {"run": {"sac": {"device": "cpu", "hidden": [8]}}})


# ---- CUDA against the CPU ------------------------------------------------------------------------
def twins(spec, cfg: dict) -> tuple[SACAgent, SACAgent]:
    """The same agent on the CPU and on CUDA, with identical weights (each builds its own copy
    of the pretrained backbone: a backbone passed in moves to the agent's device)."""
    torch.manual_seed(0)
    cpu = SACAgent(spec, SACConfig(device="cpu", **cfg))
    gpu = SACAgent(spec, SACConfig(device="cuda", **cfg))
    for name, mod in gpu.modules().items():
        mod.load_state_dict(cpu.modules()[name].state_dict())
    with torch.no_grad():
        gpu.log_alpha.copy_(cpu.log_alpha)
    return cpu, gpu


@pytest.fixture
def exact_fp32():
    """CUDA float32 convolutions and matmuls without TF32, so CPU and GPU agree to ~1e-5."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@needs_cuda
def test_cuda_learner_update_matches_cpu(exact_fp32, monkeypatch):
    # the policy's sampling noise comes from each device's own generator: zero it on both
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    cpu, gpu = twins(SPEC, dict(hidden=(32, 32)))
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(128, SPEC)
    buf.add_episode(episode(SPEC, rng, 60))
    for _ in range(3):
        batch = buf.sample(32, rng)
        m_cpu, m_gpu = cpu.update(batch), gpu.update(batch)
        for k in ("critic_loss", "actor_loss", "grasp_loss"):
            assert m_gpu[k] == pytest.approx(m_cpu[k], rel=1e-4, abs=1e-5), k
    for k, v in tensors_of(cpu).items():
        torch.testing.assert_close(tensors_of(gpu)[k].cpu(), v, rtol=1e-4, atol=1e-5, msg=k)
    published = gpu.actor_parameters()
    assert all(isinstance(v, np.ndarray) for v in published.values())


@needs_cuda
def test_cuda_actor_inference_matches_cpu(exact_fp32):
    cpu, gpu = twins(IMG_SPEC, dict(hidden=(32,), image=ImageConfig(embed_dim=8)))
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs = {k: v[0] for k, v in episode(IMG_SPEC, rng).items() if k in IMG_SPEC}
        np.testing.assert_allclose(gpu.act(obs, True), cpu.act(obs, True), atol=1e-4)


@needs_cuda
def test_cuda_reward_inference_matches_cpu(exact_fp32, tmp_path):
    torch.manual_seed(0)
    config = ClassifierConfig(views=(ViewConfig("front"),), image_size=(64, 64))
    model = SuccessClassifier(config, backbone=Backbone(EfficientNetLite0Trunk()))
    model.save(tmp_path / "model")
    frames = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    kept = Backbone(EfficientNetLite0Trunk())
    kept.load_state_dict(model.backbone.state_dict())
    on_cpu = SuccessClassifier.load(tmp_path / "model", backbone=model.backbone, device="cpu")
    expected = on_cpu.predict_proba({"image_front": frames})
    on_gpu = SuccessClassifier.load(tmp_path / "model", backbone=kept, device="cuda")
    assert {p.device.type for p in on_gpu.parameters()} == {"cuda"}
    np.testing.assert_allclose(on_gpu.predict_proba({"image_front": frames}), expected, atol=1e-5)


def test_bench_on_a_missing_gpu_says_so(monkeypatch, capsys):
    import argparse

    from robot_rl.bench import learner
    from robot_rl.cli.bench import _runner

    no_gpu(monkeypatch)
    parser = argparse.ArgumentParser()
    learner.add_arguments(parser)
    args = parser.parse_args(["--device", "cuda"])
    args.bench, args.json = "learner", True
    assert _runner(learner)(args) == 2
    assert "--device: 'cuda' asked for" in capsys.readouterr().err
