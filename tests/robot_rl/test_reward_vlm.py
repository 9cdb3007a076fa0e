"""VLM back ends with a tiny randomly initialised CLIP saved to disk (no weights can be downloaded here)."""

import json

import numpy as np
import pytest
import torch
from test_reward_classifier import synthetic_episode

from robot_rl.reward import vlm
from robot_rl.reward.labels import LABEL_KEY

torch.set_num_threads(1)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
# character-level BPE: every letter, alone and word-final, and no merges
VOCAB = (
    list(LETTERS) + [c + "</w>" for c in LETTERS] + ["<unk>", "<|startoftext|>", "<|endoftext|>"]
)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny CLIP checkpoint directory as `save_pretrained` writes it, tokenizer included."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("clip")
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    text = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        bos_token_id=len(VOCAB) - 2,
        eos_token_id=len(VOCAB) - 1,
        pad_token_id=len(VOCAB) - 1,
    )
    vision = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32))
    out = d / "tiny-clip"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_missing_weights_say_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such directory.*config.json.*save_pretrained"):
        vlm.ClipEmbedder(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        vlm.ClipEmbedder(tmp_path / "empty")


def test_vlm_rm_projection_math():
    rng = np.random.default_rng(0)
    unit = lambda x: torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)  # noqa: E731
    s, g, b = unit(rng.normal(size=(5, 8))), unit(rng.normal(size=8)), unit(rng.normal(size=8))
    # alpha 0: plain cosine similarity to the goal (unit vectors: 1 - |s - g|^2 / 2 = s.g)
    torch.testing.assert_close(vlm.vlm_rm_reward(s, g, b, 0.0), s @ g)
    # alpha 1: only the goal-baseline direction counts; a move orthogonal to it changes nothing
    d = (g - b) / (g - b).norm()
    full = vlm.vlm_rm_reward(s, g, b, 1.0)
    torch.testing.assert_close(full, 1 - 0.5 * ((s - g) @ d) ** 2)
    ortho = unit(rng.normal(size=8))
    ortho = ortho - (ortho @ d) * d
    torch.testing.assert_close(vlm.vlm_rm_reward(s + 0.3 * ortho, g, b, 1.0), full)
    assert vlm.vlm_rm_reward(g[None], g, b, 1.0).item() == pytest.approx(1.0)


def test_zero_shot_scores_frames_and_round_trips(clip_dir, tmp_path):
    cfg = vlm.VLMConfig(
        path=str(clip_dir), goal_prompt="a red cube lifted", baseline_prompt="a red cube on a table"
    )
    zs = vlm.ZeroShotReward(cfg)
    frames = np.random.default_rng(0).integers(0, 255, (4, 128, 128, 3), dtype=np.uint8)
    p, r = zs.predict_proba({"image_front": frames}), zs.reward({"image_front": frames})
    assert (
        p.shape == (4,) and r.shape == (4,) and np.all((p > 0) & (p < 1)) and np.all(np.isfinite(r))
    )
    # the two-way softmax, computed independently from the embeddings
    s = zs.embedder.images(frames)
    logits = zs.embedder.logit_scale * (s @ zs.goal - s @ zs.baseline)
    np.testing.assert_allclose(p, torch.sigmoid(logits).numpy(), rtol=1e-5)
    loaded = vlm.load(zs.save(tmp_path / "zs"))
    assert isinstance(loaded, vlm.ZeroShotReward) and loaded.config == cfg
    np.testing.assert_allclose(loaded.predict_proba({"image_front": frames}), p, rtol=1e-5)
    with pytest.raises(KeyError, match="image_front"):
        zs.predict_proba({"image_wrist": frames})


def tinted_episode(rng: np.random.Generator, success: bool, n: int = 8) -> dict:
    """Success frames are tinted red, the others green: a difference a random CLIP's embeddings keep."""
    ep = synthetic_episode(rng, n=n, success=success)
    lifted = ep[LABEL_KEY]
    ep["image_front"][lifted, ..., 0] = np.minimum(
        ep["image_front"][lifted, ..., 0].astype(int) + 80, 255
    )
    ep["image_front"][~lifted, ..., 1] = np.minimum(
        ep["image_front"][~lifted, ..., 1].astype(int) + 80, 255
    )
    return ep


def test_linear_probe_learns_and_round_trips(clip_dir, tmp_path):
    rng = np.random.default_rng(1)
    episodes = [tinted_episode(rng, success=i % 3 != 2) for i in range(16)]
    cfg = vlm.VLMConfig(path=str(clip_dir))
    result = vlm.train_probe(episodes, cfg, target_precision=0.9, threshold_confidence=0.5)
    assert result.train_positives > 0 and result.report.positives > 0
    assert result.target_met and result.report.roc_auc > 0.95 and result.report.recall > 0.8, (
        result.report
    )
    probe = result.probe
    loaded = vlm.load(probe.save(tmp_path / "probe"))
    assert isinstance(loaded, vlm.LinearProbe) and loaded.threshold == probe.threshold
    frames = {"image_front": episodes[0]["image_front"]}
    np.testing.assert_allclose(loaded.predict_proba(frames), probe.predict_proba(frames), rtol=1e-5)
    with pytest.raises(ValueError, match="positive and negative"):
        vlm.train_probe(
            [{**ep, LABEL_KEY: np.zeros_like(ep[LABEL_KEY])} for ep in episodes],
            cfg,
            embedder=probe.embedder,
        )
