"""The trained success classifier on synthetic frames: a red block lifted (success) or resting."""

import numpy as np
import pytest
import torch

from controllers.config import ConfigError, from_dict
from robot_rl.reward.classifier import (
    ClassifierConfig,
    ProprioConfig,
    SuccessClassifier,
    ViewConfig,
)
from robot_rl.reward.labels import LABEL_KEY
from robot_rl.reward.training import TrainConfig, collect_frames, evaluate, split_by_episode, train

torch.set_num_threads(1)


def synthetic_episode(rng: np.random.Generator, n: int = 10, success: bool = True) -> dict:
    """A 24 px red block rises from the bottom; rows with the block in the top third are success."""
    frames = rng.integers(90, 140, (n, 128, 128, 3), dtype=np.uint8)
    x = int(rng.integers(10, 94))
    top = np.linspace(100, 8 if success else 60, n).astype(int)
    for i, y in enumerate(top):
        frames[i, y : y + 24, x : x + 24] = (200, 30, 30)
    lifted = top < 40
    ep = {
        "image_front": frames,
        "is_terminal": np.zeros(n, bool),
        "reward": np.zeros(n, np.float32),
        LABEL_KEY: lifted,
    }
    return ep


@pytest.fixture(scope="module")
def episodes():
    rng = np.random.default_rng(0)
    return [synthetic_episode(rng, success=i % 3 != 2) for i in range(16)]


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match=r"views\[0\].crop"):
        ClassifierConfig(views=(ViewConfig("front", crop=(100, 0, 64, 64)),))
    with pytest.raises(ConfigError, match="dropout"):
        ClassifierConfig(dropout=1.5)
    with pytest.raises(ConfigError, match="classifier.views"):
        from_dict(TrainConfig, {"classifier": {"views": [{"camera": "front", "zoom": 2}]}})
    with pytest.raises(ConfigError, match="target_precision"):
        TrainConfig(target_precision=0)
    with pytest.raises(ConfigError, match="threshold_confidence"):
        TrainConfig(threshold_confidence=0.3)
    with pytest.raises(ConfigError, match="target_recall"):
        TrainConfig(target_recall=1.0)
    with pytest.raises(ConfigError, match="proprio_lr"):
        TrainConfig(proprio_lr=0)
    with pytest.raises(ConfigError, match="classifier.proprio_hidden"):
        ClassifierConfig(proprio_hidden=0)
    for components in ([], [7], [2, 2]):
        with pytest.raises(ConfigError, match=r"proprio\[0\].components"):
            from_dict(
                ClassifierConfig,
                {"proprio": [{"key": "tcp_pose", "size": 7, "components": components}]},
            )
    cfg = from_dict(
        TrainConfig, {"classifier": {"views": [{"camera": "wrist", "crop": [0, 0, 64, 64]}]}}
    )
    assert cfg.classifier.views[0].crop == (0, 0, 64, 64)


def test_split_by_episode_keeps_episodes_whole(episodes):
    frames = collect_frames(episodes, ["front"])
    tr, va = split_by_episode(frames, 0.25, seed=1)
    assert tr.any() and va.any() and not (tr & va).any()
    assert not set(frames.episode[tr]) & set(frames.episode[va])
    assert frames.labels[va].any() and frames.labels[tr].any()


def test_train_reaches_precision_and_round_trips(episodes, tmp_path):
    # a dozen validation positives cannot show 0.95 with confidence: the point estimate (0.5) here
    cfg = TrainConfig(steps=150, shifts=2, target_precision=0.95, threshold_confidence=0.5, seed=0)
    result = train(episodes, cfg)
    r = result.report
    assert result.target_met and r.precision >= 0.95 and r.recall >= 0.8 and r.roc_auc >= 0.95
    assert r.positives > 0 and r.negatives > 0 and result.val_episodes >= 2

    model = result.model
    model.save(tmp_path / "clf", extra={"report": r.to_dict()})
    loaded = SuccessClassifier.load(tmp_path / "clf", backbone=model.backbone)
    assert loaded.threshold == pytest.approx(model.threshold)
    probe = {"image_front": np.concatenate([ep["image_front"] for ep in episodes[:2]])}
    np.testing.assert_allclose(loaded.predict_proba(probe), model.predict_proba(probe), atol=1e-6)
    single = model.predict_proba({"image_front": episodes[0]["image_front"][-1]})
    assert single.shape == (1,) and single[0] > model.threshold  # the lifted frame is success

    again = evaluate(loaded, episodes)
    assert again.threshold == loaded.threshold and again.positives == sum(
        int(e[LABEL_KEY].sum()) for e in episodes
    )


def test_max_positives_caps_training_positives(episodes):
    result = train(episodes, TrainConfig(steps=5, shifts=1, max_positives=3))
    assert result.train_positives == 3


def test_bad_input_is_named(episodes, tmp_path):
    model = SuccessClassifier(ClassifierConfig())
    with pytest.raises(KeyError, match="image_front"):
        model.predict_proba({"image_wrist": episodes[0]["image_front"]})
    with pytest.raises(ValueError, match="uint8"):
        model.predict_proba({"image_front": np.zeros((64, 64, 3), np.uint8)})
    with pytest.raises(FileNotFoundError, match="classifier.yaml"):
        SuccessClassifier.load(tmp_path)
    no_positives = [{**ep, LABEL_KEY: np.zeros(10, bool)} for ep in episodes]
    with pytest.raises(ValueError, match="positive"):
        train(no_positives, TrainConfig(steps=1, shifts=1))


def test_ensemble_averages_its_members_and_round_trips(episodes, tmp_path):
    with pytest.raises(ConfigError, match="classifier.ensemble"):
        ClassifierConfig(ensemble=0)
    cfg = TrainConfig(
        classifier=ClassifierConfig(ensemble=3),
        steps=150,
        shifts=2,
        target_precision=0.95,
        threshold_confidence=0.5,
        seed=0,
    )
    result = train(episodes, cfg)
    assert result.target_met and result.report.recall >= 0.8
    model = result.model
    probe = {"image_front": np.concatenate([ep["image_front"] for ep in episodes[:2]])}
    with torch.no_grad():
        maps = [model.backbone(torch.from_numpy(probe["image_front"]))]
        logits = torch.stack([m(maps, torch.zeros(len(maps[0]), 0)) for m in model.members])
    # trained apart (own initialisation, own batches), the members differ; the model is their mean
    assert (logits[0] - logits[1]).abs().max() > 0.05
    np.testing.assert_allclose(
        model.predict_proba(probe), torch.sigmoid(logits).mean(0).numpy(), atol=1e-6
    )

    model.save(tmp_path / "ens")
    loaded = SuccessClassifier.load(tmp_path / "ens", backbone=model.backbone)
    assert len(loaded.members) == 3
    np.testing.assert_allclose(loaded.predict_proba(probe), model.predict_proba(probe), atol=1e-6)
    single = SuccessClassifier(ClassifierConfig(), backbone=model.backbone)
    single.save(tmp_path / "single")
    (tmp_path / "single" / "classifier.yaml").write_text(
        (tmp_path / "single" / "classifier.yaml").read_text().replace("ensemble: 1", "ensemble: 2")
    )
    with pytest.raises(ValueError, match=r"does not fit .*classifier.yaml.*missing \['members.1"):
        SuccessClassifier.load(tmp_path / "single", backbone=model.backbone)
    # same parameter names, other shapes (e.g. saved by another version): named, not torch's
    # size-mismatch error
    (tmp_path / "single" / "classifier.yaml").write_text(
        (tmp_path / "single" / "classifier.yaml")
        .read_text()
        .replace("ensemble: 2", "ensemble: 1")
        .replace("hidden_dim: 256", "hidden_dim: 128")
    )
    with pytest.raises(
        ValueError, match=r"other shape \['members.0.*retrain it with `robot-rl reward train`"
    ):
        SuccessClassifier.load(tmp_path / "single", backbone=model.backbone)


def test_proprio_decides_what_the_image_cannot(tmp_path):
    """The same frame everywhere, success given only by a state key: the proprio input carries it.

    It is standardised with the training frames' statistics, which travel with the saved model.
    """
    frame = np.random.default_rng(1).integers(90, 140, (128, 128, 3), dtype=np.uint8)
    episodes = []
    for i in range(12):
        n = 10
        height = np.linspace(0.02, 0.2 if i % 3 != 2 else 0.08, n)  # metres, success above 0.12
        episodes.append(
            {
                "image_front": np.repeat(frame[None], n, axis=0),
                "tcp_pose": np.c_[np.zeros((n, 2)), height, np.tile([1.0, 0, 0, 0], (n, 1))].astype(
                    np.float32
                ),
                "is_terminal": np.zeros(n, bool),
                "reward": np.zeros(n, np.float32),
                LABEL_KEY: height > 0.12,
            }
        )
    classifier = ClassifierConfig(proprio=(ProprioConfig("tcp_pose", 7),))
    result = train(
        episodes,
        TrainConfig(
            classifier=classifier,
            steps=200,
            shifts=1,
            target_precision=0.95,
            threshold_confidence=0.5,
            seed=0,
        ),
    )
    assert result.target_met and result.report.recall >= 0.8
    model = result.model
    assert model.state_keys == ("tcp_pose",)
    assert model.proprio_mean[2] == pytest.approx(
        np.concatenate([e["tcp_pose"][:, 2] for e in episodes]).mean(), abs=0.03
    )
    assert model.proprio_std[3] == pytest.approx(
        0.01
    )  # the constant quaternion gets the floor, not 0

    model.save(tmp_path / "p")
    loaded = SuccessClassifier.load(tmp_path / "p", backbone=model.backbone)
    obs = {"image_front": episodes[0]["image_front"], "tcp_pose": episodes[0]["tcp_pose"]}
    np.testing.assert_allclose(loaded.predict_proba(obs), model.predict_proba(obs), atol=1e-6)
    assert (loaded.predict_proba(obs) >= loaded.threshold).tolist() == episodes[0][
        LABEL_KEY
    ].tolist()
    assert evaluate(loaded, episodes).precision >= 0.9

    with pytest.raises(KeyError, match="tcp_pose"):
        model.predict_proba({"image_front": obs["image_front"]})
    with pytest.raises(ValueError, match="tcp_pose: expected 10 x 7"):
        model.predict_proba({"image_front": obs["image_front"], "tcp_pose": obs["tcp_pose"][:, :3]})
    with pytest.raises(ValueError, match="non-finite"):
        model.predict_proba({"image_front": obs["image_front"][0], "tcp_pose": np.full(7, np.nan)})
    with pytest.raises(KeyError, match="tcp_pose"):
        train(
            [{k: v for k, v in e.items() if k != "tcp_pose"} for e in episodes],
            TrainConfig(classifier=classifier),
        )
    with pytest.raises(ConfigError, match=r"classifier.proprio\[0\]"):
        ClassifierConfig(proprio=(ProprioConfig("image_front", 3),))


def test_proprio_term_resolves_a_success_line_millimetres_wide():
    """Success at a TCP height of 12 cm, heights spread over 18 cm: the proprio term is sharp.

    With heights of std ~5 cm it learns a boundary steep enough to be confident 3 mm either side of
    it, so it can outvote an image that is unsure there (at the image head's learning rate it stays
    near 0.5 on both sides).
    """
    rng = np.random.default_rng(0)
    frame = rng.integers(90, 140, (128, 128, 3), dtype=np.uint8)

    def observation(height: np.ndarray) -> dict:
        n = len(height)
        pose = np.c_[np.zeros((n, 2)), height, np.tile([1.0, 0, 0, 0], (n, 1))].astype(np.float32)
        return {"image_front": np.repeat(frame[None], n, axis=0), "tcp_pose": pose}

    episodes = [
        {
            **observation(h),
            "is_terminal": np.zeros(len(h), bool),
            "reward": np.zeros(len(h), np.float32),
            LABEL_KEY: h >= 0.12,
        }
        for h in (np.sort(rng.uniform(0.02, 0.2, 20)) for _ in range(24))
    ]
    classifier = ClassifierConfig(proprio=(ProprioConfig("tcp_pose", 7),))
    model = train(episodes, TrainConfig(classifier=classifier, shifts=1, seed=0)).model
    below, above = model.predict_proba(observation(np.array([0.117, 0.123])))
    assert below < 0.2 and above > 0.8
    assert below < model.threshold <= above


def test_proprio_reads_its_components_and_never_extrapolates(tmp_path):
    """Where no training frame went (gripper tilted a few degrees) the state term holds its edge.

    A policy drives the arm there; the state term must say what it said at the edge of the training
    range, not extrapolate (docs/reward.md).
    """
    rng = np.random.default_rng(0)
    frame = rng.integers(90, 140, (1, 128, 128, 3), dtype=np.uint8)
    seen = np.c_[
        rng.uniform(0.4, 0.6, (50, 2)),
        rng.uniform(0.02, 0.2, 50),
        rng.normal(0, 0.01, (50, 3)),
        np.ones(50),
    ].astype(np.float32)

    def proba(model, pose) -> float:
        return float(
            model.predict_proba(
                {"image_front": frame, "tcp_pose": np.asarray(pose, np.float32)[None]}
            )[0]
        )

    torch.manual_seed(0)
    full = SuccessClassifier(ClassifierConfig(proprio=(ProprioConfig("tcp_pose", 7),)))
    full.fit_proprio(full.proprio_values({"tcp_pose": seen}, len(seen)))
    edge = seen[0].copy()
    edge[3] = seen[:, 3].max()
    tilted = edge.copy()
    tilted[3] = 0.3  # far past any training frame's quaternion w
    assert proba(full, tilted) == pytest.approx(proba(full, edge), abs=1e-6)
    assert proba(full, seen[0]) != pytest.approx(
        proba(full, edge), abs=1e-4
    )  # inside the range the term is live

    height = SuccessClassifier(ClassifierConfig(proprio=(ProprioConfig("tcp_pose", 7, (2,)),)))
    height.fit_proprio(height.proprio_values({"tcp_pose": seen}, len(seen)))
    assert height.config.proprio_dim == 1
    assert proba(height, tilted) == pytest.approx(proba(height, seen[0]), abs=1e-6)  # reads z only
    top = seen[0].copy()
    top[2] = seen[:, 2].max()
    raised = top.copy()
    raised[2] = 0.45
    assert proba(height, raised) == pytest.approx(proba(height, top), abs=1e-6)
    height.save(tmp_path / "height")
    loaded = SuccessClassifier.load(tmp_path / "height", backbone=height.backbone)
    assert loaded.config.proprio[0].components == (2,)
    assert proba(loaded, raised) == pytest.approx(proba(height, top), abs=1e-6)
