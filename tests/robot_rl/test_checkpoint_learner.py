"""Checkpoints: exact round trip of weights and optimiser state; mismatches refused and named."""

import json

import numpy as np
import pytest
import torch

from robot_rl.agents.checkpoint import CheckpointMismatch, load_checkpoint, save_checkpoint
from robot_rl.agents.sac import SACAgent, SACConfig

torch.set_num_threads(1)
SPEC = {"tcp_pose": ((7,), np.float32), "gripper_width": ((1,), np.float32)}
CFG = dict(hidden=(32, 32))


def batch(rng, n=16):
    def obs():
        return {k: rng.standard_normal((n, *s)).astype(d) for k, (s, d) in SPEC.items()}

    return {
        "obs": obs(),
        "next_obs": obs(),
        "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32),
        "reward": rng.standard_normal(n).astype(np.float32),
        "done": np.zeros(n, np.float32),
        "prev_gripper": np.full(n, -1, np.int8),
    }


def config_of(cfg: SACConfig) -> dict:
    from controllers.config import to_dict

    return {"sac": to_dict(cfg)}


def test_resume_continues_exactly(tmp_path):
    cfg = SACConfig(**CFG)
    torch.manual_seed(0)
    a = SACAgent(SPEC, cfg)
    rng = np.random.default_rng(0)
    for _ in range(3):
        a.update(batch(rng))
    save_checkpoint(tmp_path / "ckpt", a, config_of(cfg), {"env_steps": 123})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "optim.json",
        "optim.safetensors",
        "state.json",
        "weights.safetensors",
    ]
    b = SACAgent(SPEC, cfg)
    assert load_checkpoint(tmp_path / "ckpt", b, config_of(cfg)) == {"env_steps": 123}
    assert (b.critic_steps, b.actor_steps) == (3, 3)
    # the next update from the same batch and RNG state gives identical weights: optimiser moments
    # restored
    nxt = batch(rng)
    for agent in (a, b):
        torch.manual_seed(1)
        agent.update(nxt)
    for (k, va), (_, vb) in zip(a.critic.state_dict().items(), b.critic.state_dict().items()):
        torch.testing.assert_close(va, vb, msg=k)
    torch.testing.assert_close(a.log_alpha, b.log_alpha)
    for (k, va), (_, vb) in zip(a.policy.state_dict().items(), b.policy.state_dict().items()):
        torch.testing.assert_close(va, vb, msg=k)


def test_overwrite_leaves_one_complete_checkpoint(tmp_path):
    cfg = SACConfig(**CFG)
    a = SACAgent(SPEC, cfg)
    save_checkpoint(tmp_path / "ckpt", a, config_of(cfg), {"n": 1})
    save_checkpoint(tmp_path / "ckpt", a, config_of(cfg), {"n": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert json.loads((tmp_path / "ckpt" / "state.json").read_text())["run"] == {"n": 2}


def test_config_mismatch_names_the_keys(tmp_path):
    cfg = SACConfig(**CFG)
    save_checkpoint(tmp_path / "ckpt", SACAgent(SPEC, cfg), config_of(cfg))
    other = SACConfig(hidden=(32, 32), discount=0.9)
    with pytest.raises(
        CheckpointMismatch, match=r"sac\.discount: checkpoint has 0\.97, this run has 0\.9"
    ):
        load_checkpoint(tmp_path / "ckpt", SACAgent(SPEC, other), config_of(other))


def test_shape_mismatch_names_the_tensors(tmp_path):
    cfg = SACConfig(**CFG)
    save_checkpoint(tmp_path / "ckpt", SACAgent(SPEC, cfg), {"same": 1})
    wider = SACAgent(SPEC, SACConfig(hidden=(32, 48)))
    with pytest.raises(
        CheckpointMismatch, match=r"critic\.net\.\d\.weight: checkpoint shape \(2, 32, 32\)"
    ):
        load_checkpoint(tmp_path / "ckpt", wider, {"same": 1})
    ten = SACAgent(SPEC, SACConfig(hidden=(32, 32), num_critics=10))
    with pytest.raises(CheckpointMismatch, match="checkpoint shape"):
        load_checkpoint(tmp_path / "ckpt", ten, {"same": 1})


def test_missing_file_is_named(tmp_path):
    cfg = SACConfig(**CFG)
    save_checkpoint(tmp_path / "ckpt", SACAgent(SPEC, cfg), {})
    (tmp_path / "ckpt" / "optim.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="optim.safetensors"):
        load_checkpoint(tmp_path / "ckpt", SACAgent(SPEC, cfg), {})
