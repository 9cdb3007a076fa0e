"""`robot-rl reward train|eval` on a real zarr episode store."""

import argparse
import json

import numpy as np
import pytest
import yaml
from test_reward_classifier import synthetic_episode

from robot_rl.cli import reward as reward_cli
from robot_rl.reward.classifier import SuccessClassifier
from robot_rl.store.episodes import EpisodeInfo, EpisodeStore


def _parse(argv):
    parser = argparse.ArgumentParser()
    reward_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _contract_episode(ep: dict) -> dict:
    """Add the step keys of docs/contracts.md around a synthetic episode."""
    n = len(ep["is_terminal"])
    return {
        **ep,
        "action": np.zeros((n, 7), np.float32),
        "policy_action": np.zeros((n, 7), np.float32),
        "intervened": np.zeros(n, bool),
        "success_prob": np.full(n, np.nan, np.float32),
        "policy_version": np.zeros(n, np.int64),
        "timestamp": np.arange(n, dtype=np.float64),
        "is_first": np.arange(n) == 0,
        "is_last": np.arange(n) == n - 1,
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("reward") / "store"
    rng = np.random.default_rng(3)
    with EpisodeStore.open(path, "a") as s:
        for i in range(14):
            ep = synthetic_episode(rng, success=i % 3 != 2)
            ep["success_label"][:] = False  # labels come from the recorded outcome here
            s.append(
                _contract_episode(ep), EpisodeInfo(task="blocks", source="sim", success=i % 3 != 2)
            )
    return path


def test_train_then_eval(store, tmp_path, capsys):
    cfg = tmp_path / "reward.yaml"
    cfg.write_text(yaml.safe_dump({"steps": 150, "shifts": 2, "labels": {"outcome_tail": 3}}))
    out = tmp_path / "clf"
    args = _parse(
        [
            "reward",
            "train",
            "--store",
            str(store),
            "--out",
            str(out),
            "--config",
            str(cfg),
            "--target-precision",
            "0.95",
            "--target-recall",
            "0.8",
            "--threshold-confidence",
            "0.5",
        ]
    )
    assert args.func(args) == 0
    report = json.loads((out / "report.json").read_text())
    val = report["validation"]
    assert report["target_met"] and val["precision"] >= 0.95 and val["recall"] >= 0.8
    chosen_for = (
        report["target_precision"],
        report["target_recall"],
        report["threshold_confidence"],
    )
    assert chosen_for == (0.95, 0.8, 0.5)  # how the threshold was chosen
    assert (
        val["positives"] > 0 and val["positives"] % 3 == 0
    )  # outcome_tail rows per successful episode
    assert "confusion" in capsys.readouterr().out

    args = _parse(["reward", "eval", "--store", str(store), "--model", str(out)])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the saved label config (outcome_tail 3) is used: 3 positives per successful episode
    assert printed["positives"] == 3 * sum(1 for i in range(14) if i % 3 != 2)
    assert printed["threshold"] == pytest.approx(SuccessClassifier.load(out).threshold)


def test_train_reports_bad_config(store, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"labels": {"tail": 3}}))
    args = _parse(
        [
            "reward",
            "train",
            "--store",
            str(store),
            "--out",
            str(tmp_path / "x"),
            "--config",
            str(cfg),
        ]
    )
    assert args.func(args) == 2
    assert "labels" in capsys.readouterr().err


def test_vlm_commands_probe_zero_shot_eval(store, clip_dir, tmp_path, capsys):
    out = tmp_path / "probe"
    args = _parse(
        [
            "reward",
            "probe",
            "--store",
            str(store),
            "--clip",
            str(clip_dir),
            "--out",
            str(out),
            "--target-precision",
            "0.5",
        ]
    )
    assert args.func(args) == 0
    assert (out / "vlm.yaml").is_file() and (out / "probe.safetensors").is_file()
    zs = tmp_path / "zs"
    args = _parse(
        [
            "reward",
            "zero-shot",
            "--clip",
            str(clip_dir),
            "--out",
            str(zs),
            "--goal",
            "a lifted block",
            "--alpha",
            "0.5",
        ]
    )
    assert args.func(args) == 0
    capsys.readouterr()
    for model in (out, zs):
        args = _parse(["reward", "eval", "--store", str(store), "--model", str(model)])
        assert args.func(args) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed["positives"] == sum(
            1 for i in range(14) if i % 3 != 2
        )  # default outcome_tail 1
        assert printed["tp"] + printed["fp"] + printed["tn"] + printed["fn"] == 14 * 10


def test_missing_inputs_are_one_clear_line(store, tmp_path, capsys):
    args = _parse(
        ["reward", "zero-shot", "--clip", str(tmp_path / "no-clip"), "--out", str(tmp_path / "zs")]
    )
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "no-clip" in err and "config.json" in err and "Traceback" not in err
    args = _parse(
        ["reward", "eval", "--store", str(tmp_path / "no-store"), "--model", str(tmp_path)]
    )
    assert args.func(args) == 2
    assert "classifier.yaml" in capsys.readouterr().err
    args = _parse(
        ["reward", "train", "--store", str(tmp_path / "no-store"), "--out", str(tmp_path / "o")]
    )
    assert args.func(args) == 2
    assert "no-store" in capsys.readouterr().err
