"""`robot-rl reward train|eval`: the success classifier from an episode store."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("reward", help="train or evaluate the success classifier on an episode store")
    actions = parser.add_subparsers(dest="reward_command", required=True, metavar="ACTION")

    p = actions.add_parser(
        "train",
        help="train a classifier; threshold chosen on held-out episodes",
        description="Labels come from episode outcomes and per-frame `success_label` marks; the split is by "
        "episode; the threshold is the lowest one reaching the target precision on validation. Writes "
        "classifier.yaml, head.safetensors and report.json into --out.",
    )
    p.add_argument("--store", required=True, type=Path, help="zarr episode store")
    p.add_argument("--out", required=True, type=Path, help="directory for the classifier (created if missing)")
    p.add_argument("--config", type=Path, help="YAML with TrainConfig keys (classifier, labels, steps, ...)")
    p.add_argument("--target-precision", type=float, help="override target_precision")
    p.add_argument("--seed", type=int, help="override seed")
    p.set_defaults(func=run_train)

    p = actions.add_parser("eval", help="precision, recall, ROC-AUC and confusion matrix on a store")
    p.add_argument("--store", required=True, type=Path, help="zarr episode store")
    p.add_argument("--model", required=True, type=Path, help="directory written by `reward train`")
    p.add_argument("--threshold", type=float, help="evaluate at this threshold instead of the saved one")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=run_eval)


def _print_report(title: str, report: dict) -> None:
    print(title)
    for key in ("threshold", "precision", "recall", "roc_auc"):
        print(f"  {key:<10} {report[key]:.4f}")
    print("  confusion  predicted+  predicted-")
    print(f"  actual+    {report['tp']:>10}  {report['fn']:>10}")
    print(f"  actual-    {report['fp']:>10}  {report['tn']:>10}")


def run_train(args: argparse.Namespace) -> int:
    import torch

    from controllers.config import ConfigError, from_dict, load_yaml, to_dict
    from robot_rl.reward.training import TrainConfig, load_store, train

    try:
        raw = load_yaml(args.config) if args.config else {}
        for key in ("target_precision", "seed"):
            if getattr(args, key) is not None:
                raw[key] = getattr(args, key)
        config = from_dict(TrainConfig, raw)
    except ConfigError as exc:
        print(f"robot-rl reward train: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(config.threads)
    episodes, outcomes = load_store(args.store, [v.camera for v in config.classifier.views])
    result = train(episodes, config, outcomes=outcomes)
    summary = {"store": str(args.store), **result.summary()}
    extra = {"labels": to_dict(config.labels), "trained_on": str(args.store), "report": summary["validation"]}
    result.model.save(args.out, extra=extra)
    (args.out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_report(f"validation ({result.val_episodes} held-out episodes)", summary["validation"])
    if not result.target_met:
        print(
            f"robot-rl reward train: target precision {config.target_precision} not reached on validation; "
            "record more episodes or mark more success frames",
            file=sys.stderr,
        )
    print(f"classifier written to {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch
    import yaml

    from controllers.config import from_dict
    from robot_rl.reward.classifier import CONFIG_FILE, SuccessClassifier
    from robot_rl.reward.labels import LabelConfig
    from robot_rl.reward.training import evaluate, load_store

    torch.set_num_threads(args.threads)
    model = SuccessClassifier.load(args.model)
    # label the frames the way the training run did
    labels = from_dict(LabelConfig, yaml.safe_load((args.model / CONFIG_FILE).read_text()).get("labels"), "labels")
    if args.threshold is not None:
        model.threshold = args.threshold
    episodes, outcomes = load_store(args.store, [v.camera for v in model.config.views])
    report = evaluate(model, episodes, labels, outcomes).to_dict()
    _print_report(f"{args.store} ({len(episodes)} episodes)", report)
    print(json.dumps(report))
    return 0
