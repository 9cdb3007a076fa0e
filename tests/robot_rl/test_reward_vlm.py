"""VLM back ends on a tiny random CLIP saved to disk (no weights can be downloaded here)."""

import numpy as np
import pytest
import torch
from test_reward_classifier import synthetic_episode

from robot_rl.reward import vlm
from robot_rl.reward.labels import LABEL_KEY

torch.set_num_threads(1)


def test_missing_weights_say_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such directory.*config.json.*save_pretrained"):
        vlm.ClipEmbedder(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        vlm.ClipEmbedder(tmp_path / "empty")


def test_vlm_rm_projection_math():
    rng = np.random.default_rng(0)

    def unit(x):
        return torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)

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
    """Success frames tinted red, the others green: a difference a random CLIP's embedding keeps."""
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
