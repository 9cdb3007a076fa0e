"""`robot-rl reward train|probe|zero-shot|eval`: success rewards from pixels (classifier, CLIP)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "reward", help="train or evaluate the success classifier on an episode store"
    )
    actions = parser.add_subparsers(dest="reward_command", required=True, metavar="ACTION")

    p = actions.add_parser(
        "train",
        help="train a classifier; threshold chosen on held-out episodes",
        description="Labels come from episode outcomes and per-frame `success_label` marks; "
        "the split is by episode; of the thresholds whose validation precision reaches the target, "
        "the one farthest inside both the precision and the recall target (target_recall null: "
        "the lowest whose Wilson lower bound at threshold_confidence reaches the precision "
        "target). "
        "Writes classifier.yaml, head.safetensors and report.json into --out.",
    )
    p.add_argument("--store", required=True, type=Path, help="zarr episode store")
    p.add_argument(
        "--out", required=True, type=Path, help="directory for the classifier (created if missing)"
    )
    p.add_argument(
        "--config", type=Path, help="YAML with TrainConfig keys (classifier, labels, steps, ...)"
    )
    p.add_argument("--target-precision", type=float, help="override target_precision")
    p.add_argument("--target-recall", type=float, help="override target_recall")
    p.add_argument("--threshold-confidence", type=float, help="override threshold_confidence")
    p.add_argument("--seed", type=int, help="override seed")
    p.set_defaults(func=_guarded(run_train))

    p = actions.add_parser(
        "probe",
        help="few-shot linear probe on CLIP embeddings (local weights); "
        "threshold chosen on held-out episodes",
    )
    p.add_argument("--store", required=True, type=Path, help="zarr episode store")
    p.add_argument(
        "--clip", required=True, type=Path, help="local transformers CLIP checkpoint directory"
    )
    p.add_argument(
        "--out", required=True, type=Path, help="directory for vlm.yaml and probe.safetensors"
    )
    p.add_argument("--camera", default="front", help="camera whose frames are scored")
    p.add_argument("--target-precision", type=float, default=0.98)
    p.add_argument("--target-recall", type=float, default=0.9)
    p.add_argument(
        "--threshold-confidence",
        type=float,
        default=0.8,
        help="one-sided confidence with which validation must show the targets",
    )
    p.add_argument("--max-positives", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=_guarded(run_probe))

    p = actions.add_parser(
        "zero-shot", help="write a zero-shot CLIP reward (goal vs baseline prompt, VLM-RM)"
    )
    p.add_argument(
        "--clip", required=True, type=Path, help="local transformers CLIP checkpoint directory"
    )
    p.add_argument("--out", required=True, type=Path, help="directory for vlm.yaml")
    p.add_argument("--camera", default="front", help="camera whose frames are scored")
    p.add_argument("--goal", help="goal prompt (default in VLMConfig)")
    p.add_argument("--baseline", help="baseline prompt (default in VLMConfig)")
    p.add_argument("--alpha", type=float, default=1.0, help="VLM-RM projection strength, 0..1")
    p.add_argument("--threshold", type=float, default=0.5, help="success when P(goal) >= this")
    p.set_defaults(func=_guarded(run_zero_shot))

    p = actions.add_parser(
        "eval", help="precision, recall, ROC-AUC and confusion matrix on a store"
    )
    p.add_argument("--store", required=True, type=Path, help="zarr episode store")
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="directory written by `reward train|probe|zero-shot`",
    )
    p.add_argument(
        "--threshold", type=float, help="evaluate at this threshold instead of the saved one"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=_guarded(run_eval))


def _guarded(run):
    """Bad input (missing store, weights, keys; unusable data): one stderr line, exit status 2."""

    def guarded(args: argparse.Namespace) -> int:
        from robot_rl.store.episodes import StoreError

        try:
            return run(args)
        except (OSError, KeyError, ValueError, StoreError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"robot-rl reward {args.reward_command}: {message}", file=sys.stderr)
            return 2

    return guarded


def _print_report(title: str, report: dict) -> None:
    print(title)
    for key in ("threshold", "precision", "recall", "roc_auc"):
        print(f"  {key:<10} {report[key]:.4f}")
    print("  confusion  predicted+  predicted-")
    print(f"  actual+    {report['tp']:>10}  {report['fn']:>10}")
    print(f"  actual-    {report['fp']:>10}  {report['tn']:>10}")


def run_train(args: argparse.Namespace) -> int:
    import torch

    from controllers.config import from_dict, load_yaml, to_dict
    from robot_rl.reward.training import TrainConfig, load_store, train

    raw = load_yaml(args.config) if args.config else {}
    for key in ("target_precision", "target_recall", "threshold_confidence", "seed"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    config = from_dict(TrainConfig, raw)
    torch.set_num_threads(config.threads)
    episodes, outcomes = load_store(
        args.store,
        [v.camera for v in config.classifier.views],
        [p.key for p in config.classifier.proprio],
    )
    result = train(episodes, config, outcomes=outcomes)
    chosen_for = {
        "target_precision": config.target_precision,
        "target_recall": config.target_recall,
        "threshold_confidence": config.threshold_confidence,
    }
    summary = {"store": str(args.store), **chosen_for, **result.summary()}
    extra = {
        "labels": to_dict(config.labels),
        "trained_on": str(args.store),
        "report": summary["validation"],
    }
    result.model.save(args.out, extra=extra)
    (args.out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_report(f"validation ({result.val_episodes} held-out episodes)", summary["validation"])
    if not result.target_met:
        print(
            f"robot-rl reward train: target precision {config.target_precision} "
            f"(recall {config.target_recall}) "
            f"not shown on validation with confidence {config.threshold_confidence}; "
            "record more episodes or mark more success frames",
            file=sys.stderr,
        )
    print(f"classifier written to {args.out}")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    import torch

    from controllers.config import to_dict
    from robot_rl.reward.labels import LabelConfig
    from robot_rl.reward.training import load_store
    from robot_rl.reward.vlm import VLMConfig, train_probe

    torch.set_num_threads(args.threads)
    config = VLMConfig(path=str(args.clip), camera=args.camera)
    episodes, outcomes = load_store(args.store, [args.camera])
    labels = LabelConfig()
    result = train_probe(
        episodes,
        config,
        labels,
        outcomes,
        args.target_precision,
        args.threshold_confidence,
        target_recall=args.target_recall,
        max_positives=args.max_positives,
        seed=args.seed,
    )
    report = result.report.to_dict()
    result.probe.save(
        args.out, extra={"labels": to_dict(labels), "trained_on": str(args.store), "report": report}
    )
    (args.out / "report.json").write_text(
        json.dumps({"validation": report, "target_met": result.target_met}, indent=2)
    )
    _print_report("validation (linear probe)", report)
    print(f"linear probe written to {args.out}")
    return 0


def run_zero_shot(args: argparse.Namespace) -> int:
    from robot_rl.reward.vlm import VLMConfig, ZeroShotReward

    prompts = {
        k: v
        for k, v in (("goal_prompt", args.goal), ("baseline_prompt", args.baseline))
        if v is not None
    }
    config = VLMConfig(path=str(args.clip), camera=args.camera, alpha=args.alpha, **prompts)
    ZeroShotReward(config, threshold=args.threshold).save(
        args.out
    )  # loads the weights: a bad path fails here
    print(f"zero-shot reward written to {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch
    import yaml

    from controllers.config import from_dict
    from robot_rl.reward import classifier, load_model, vlm
    from robot_rl.reward.labels import LabelConfig
    from robot_rl.reward.training import evaluate, load_store

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    if args.threshold is not None:
        model.threshold = args.threshold
    meta_file = next(
        args.model / n
        for n in (classifier.CONFIG_FILE, vlm.CONFIG_FILE)
        if (args.model / n).is_file()
    )
    # label the frames the way the training run did
    labels = from_dict(LabelConfig, yaml.safe_load(meta_file.read_text()).get("labels"), "labels")
    episodes, outcomes = load_store(args.store, model.cameras, model.state_keys)
    report = evaluate(model, episodes, labels, outcomes).to_dict()
    _print_report(f"{args.store} ({len(episodes)} episodes)", report)
    print(json.dumps(report))
    return 0
