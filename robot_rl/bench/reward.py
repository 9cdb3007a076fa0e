"""Reward classifier: inference latency and a train/held-out run on the twin's pick_cube frames.

Frames come from the MuJoCo twin with lighting and camera jitter on, the scripted expert driving
(with action noise; every `drop_every`-th episode lets the cube fall again after the lift, for hard
negatives: gripper up, cube down). Each frame is labelled with the twin's ground truth (cube lifted
>= 10 cm), written as the per-frame `success_label` marks an operator would make. The classifier
trains on at most `max_positives` positive frames (episode split, threshold for the target
precision and recall on validation) and is then scored against ground truth on episodes of other
seeds. Beside it, in the same run: the precision-only threshold rule on the same validation scores
(the alternative to the default rule), how far from the success height each held-out error frame's
cube was, and whether the classifier fires on scripted lifts of an empty hand (a reward a policy
could take without grasping). Training runs on the CPU; the trained classifier is then scored and
timed on `--device` (auto: CUDA when present), where the reward node would run it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

# Lighting and camera jitter of the closed-loop measurement (sim.config.RandomizationConfig keys).
RANDOMIZATION = {
    "light_scale": (0.5, 1.5),
    "light_pos_jitter": 0.2,
    "camera_pos_jitter": 0.01,
    "camera_rot_jitter": 0.02,
}
# --proprio names -> (observation key, the components read; None: all)
STATE_INPUTS = {
    "tcp_height": ("tcp_pose", (2,)),
    "tcp_pose": ("tcp_pose", None),
    "gripper_width": ("gripper_width", None),
}
LIFT_MARGIN = "lift_margin_m"  # ground truth only the twin has; the classifier never reads it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--train-episodes", type=int, default=96, help="twin episodes for training + validation"
    )
    parser.add_argument(
        "--test-episodes",
        type=int,
        default=150,
        help="held-out twin episodes (other seeds); 30 give a precision verdict that is mostly "
        "noise",
    )
    parser.add_argument(
        "--max-positives", type=int, default=200, help="positive training frames kept"
    )
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps")
    parser.add_argument(
        "--hold", type=int, default=6, help="steps recorded after the lift succeeds"
    )
    parser.add_argument("--target-precision", type=float, default=0.98)
    parser.add_argument(
        "--target-recall",
        type=float,
        default=0.9,
        help="of the thresholds that reach the target precision, the one farthest inside "
        "both targets; 0: the lowest whose Wilson bound reaches it (precision only)",
    )
    parser.add_argument(
        "--threshold-confidence",
        type=float,
        default=0.8,
        help="one-sided confidence with which validation must show the targets (target_met; with "
        "--target-recall 0 also the precision bound the threshold must reach)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.5,
        help="share of the training episodes held out to choose the threshold",
    )
    parser.add_argument(
        "--ensemble", type=int, default=1, help="classifier members averaged (classifier.ensemble)"
    )
    parser.add_argument(
        "--empty-hand-episodes",
        type=int,
        default=20,
        help="scripted failed grasps per gripper state (open, closed on nothing): how often the "
        "classifier fires on a reward a policy could take without grasping",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device",
        default="auto",
        help="where inference runs: auto (CUDA when present, else CPU), cpu, cuda, cuda:N",
    )
    parser.add_argument(
        "--infer-frames", type=int, default=200, help="single-frame inferences timed"
    )
    parser.add_argument(
        "--image-size", type=int, default=128, help="square size the front camera renders at"
    )
    parser.add_argument(
        "--crop",
        type=int,
        nargs=4,
        metavar=("TOP", "LEFT", "H", "W"),
        help="classify this crop of the first camera's frame instead of the whole frame",
    )
    parser.add_argument(
        "--cameras",
        nargs="+",
        default=["front_level", "side_level"],
        choices=["front", "wrist", "front_level", "side_level"],
        help="views the classifier sees (default: the two cameras level with the success height); "
        "latency is for one frame of each",
    )
    parser.add_argument(
        "--proprio",
        nargs="*",
        default=["tcp_height"],
        choices=sorted(STATE_INPUTS),
        help="robot state the classifier reads beside the images (classifier.proprio); none: "
        "images only. tcp_height: the TCP's z alone. tcp_pose, the whole pose, was paid in "
        "closed loop for a tilted gripper (docs/reward.md). gripper_width lets the state alone "
        "reject the drop episodes, so the images never learn an empty hand: it then fires on "
        "one (empty_hand_fired)",
    )
    parser.add_argument("--out", help="also save the trained classifier and its report here")


def twin_episodes(
    count: int,
    seed: int,
    cameras: tuple[str, ...] = ("front",),
    hold: int = 6,
    drop_every: int = 4,
    noise: float = 0.2,
    image_size: int = 128,
    state_keys: tuple[str, ...] = (),
) -> list[dict[str, np.ndarray]]:
    """Expert episodes of pick_cube with ground-truth per-frame success marks (`success_label`).

    Each holds the frames of `cameras`, the `state_keys` and `LIFT_MARGIN` (the cube's height above
    the success height, m).
    """
    import sim
    from robot_rl.reward.labels import LABEL_KEY
    from sim.experts import make_expert
    from sim.tasks.pick_cube import CUBE_HALF, LIFT

    env = sim.make_env(
        "pick_cube",
        cameras=cameras,
        randomization=RANDOMIZATION,
        image_size=(image_size, image_size),
    )
    expert = make_expert(env)
    rng = np.random.default_rng(seed)
    limit = env.unwrapped.config.max_episode_steps
    episodes = []
    for i in range(count):
        obs, info = env.reset(seed=seed + i)
        expert.reset()
        rows, success = [obs], [info["success"]]
        after = None  # steps since the first success
        drop = drop_every > 0 and i % drop_every == drop_every - 1
        while len(rows) <= limit and (after is None or after < hold):
            action = np.asarray(expert.act(obs), dtype=np.float64)
            action[:3] += noise * rng.standard_normal(3)
            if drop and after is not None:
                action[6] = -1.0  # open: the cube falls back
            obs, _, _, _, info = env.step(np.clip(action, -1, 1))
            rows.append(obs)
            success.append(info["success"])
            if after is not None or info["success"]:
                after = 0 if after is None else after + 1
        n = len(rows)
        ep = {
            k: np.stack([r[k] for r in rows])
            for k in [f"image_{c}" for c in cameras] + list(state_keys)
        }
        margin = np.array([r["object_pose"][2] for r in rows], np.float64) - (CUBE_HALF + LIFT)
        ep.update(
            is_terminal=np.zeros(n, bool),
            reward=np.zeros(n, np.float32),
            **{LABEL_KEY: np.array(success), LIFT_MARGIN: margin},
        )
        episodes.append(ep)
    env.close()
    return episodes


def empty_hand_lifts(
    model,
    cameras: tuple[str, ...],
    seed: int,
    count: int,
    image_size: int = 128,
) -> dict[str, int]:
    """Per gripper state (open, closed), in how many of `count` scripted failed grasps it fires.

    The hand goes down beside the cube, opens or closes on nothing, and rises through the success
    height and past it. None of these frames is a success and a policy can reach every one of them;
    a classifier that fires here hands the policy a reward for not grasping.
    """
    import sim

    env = sim.make_env(
        "pick_cube",
        cameras=cameras,
        randomization=RANDOMIZATION,
        image_size=(image_size, image_size),
    )
    scale = env.unwrapped.config.pos_scale
    fired = {}
    for name, gripper in (("open", -1.0), ("closed", 1.0)):
        fired[name] = 0
        for i in range(count):
            obs, _ = env.reset(seed=seed + i)
            cube = obs["object_pose"][:3].astype(np.float64)
            away = obs["tcp_pose"][:2] - cube[:2]
            away = (
                away / np.linalg.norm(away) if np.linalg.norm(away) > 1e-3 else np.array([0.0, 1.0])
            )
            beside = np.r_[
                cube[:2] + 0.08 * away, 0.03
            ]  # 8 cm from the cube's centre, at grasp height
            plan = (
                [(beside, -1.0)] * 30
                + [(beside, gripper)] * 4
                + [(np.r_[beside[:2], 0.3], gripper)] * 30
            )
            for goal, grip in plan:
                move = np.clip((goal - obs["tcp_pose"][:3]) / scale, -1.0, 1.0)
                obs, _, _, _, info = env.step(np.r_[move, 0.0, 0.0, 0.0, grip])
                if info["success"]:
                    raise RuntimeError(
                        "a scripted failed grasp lifted the cube: "
                        "the probe no longer tests what it says"
                    )
                if model.predict_proba(obs)[0] >= model.threshold:
                    fired[name] += 1
                    break
    env.close()
    return fired


def error_margins_mm(
    labels: np.ndarray, scores: np.ndarray, margins: np.ndarray, threshold: float
) -> dict:
    """Where the errors at `threshold` are: cube height relative to the success height, mm, sorted.

    One list for the false positives ("fp"), one for the misses ("fn").
    """
    pred = scores >= threshold
    return {
        "fp": sorted(round(1000 * float(m), 1) for m in margins[pred & ~labels]),
        "fn": sorted(round(1000 * float(m), 1) for m in margins[~pred & labels]),
    }


def episode_outcomes(truth: list[np.ndarray], scores: list[np.ndarray], threshold: float) -> dict:
    """Episodes ended by the classifier, as the actor sees them: early (false) fires and delays."""
    early, missed, delays = 0, 0, []
    for y, s in zip(truth, scores):
        fired = np.flatnonzero(s >= threshold)
        true = np.flatnonzero(y)
        if len(fired) and (not len(true) or fired[0] < true[0]):
            early += 1  # the episode would have ended as a success before the cube was lifted
        elif len(true) and not len(fired):
            missed += 1
        elif len(true):
            delays.append(int(fired[0] - true[0]))
    return {
        "test_episodes_fired_early": early,
        "test_episodes_missed": missed,
        "test_fire_delay_steps_median": float(np.median(delays)) if delays else None,
        "test_fire_delay_steps_max": int(max(delays)) if delays else None,
    }


def run(args: argparse.Namespace) -> dict:
    import torch

    from robot_rl.agents.device import describe, resolve_device
    from robot_rl.reward import metrics
    from robot_rl.reward.classifier import ClassifierConfig, ProprioConfig, ViewConfig
    from robot_rl.reward.labels import LABEL_KEY
    from robot_rl.reward.training import TrainConfig, train

    torch.set_num_threads(1)
    device = resolve_device(args.device, "--device")
    t0 = time.perf_counter()
    cameras = tuple(args.cameras)
    state_keys = tuple(dict.fromkeys(STATE_INPUTS[name][0] for name in args.proprio))
    common = dict(hold=args.hold, image_size=args.image_size, state_keys=state_keys)
    train_eps = twin_episodes(args.train_episodes, args.seed, cameras, **common)
    test_eps = twin_episodes(args.test_episodes, args.seed + 100_000, cameras, **common)
    generate_s = time.perf_counter() - t0

    views = tuple(
        ViewConfig(c, tuple(args.crop) if args.crop and i == 0 else None)
        for i, c in enumerate(cameras)
    )
    proprio = tuple(
        ProprioConfig(key, int(np.prod(train_eps[0][key].shape[1:])), components)
        for key, components in (STATE_INPUTS[name] for name in args.proprio)
    )
    classifier = ClassifierConfig(
        views=views,
        image_size=(args.image_size, args.image_size),
        ensemble=args.ensemble,
        proprio=proprio,
    )
    config = TrainConfig(
        classifier=classifier,
        target_precision=args.target_precision,
        target_recall=args.target_recall or None,
        threshold_confidence=args.threshold_confidence,
        val_fraction=args.val_fraction,
        max_positives=args.max_positives,
        steps=args.steps,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    result = train(train_eps, config)
    train_s = time.perf_counter() - t0
    model = result.model.to(device)
    keys = [f"image_{c}" for c in cameras] + list(state_keys)
    scores = [
        np.concatenate(
            [
                model.predict_proba({k: ep[k][s : s + 64] for k in keys})
                for s in range(0, len(ep[LABEL_KEY]), 64)
            ]
        )
        for ep in test_eps
    ]
    test_labels, test_scores = (
        np.concatenate([ep[LABEL_KEY] for ep in test_eps]),
        np.concatenate(scores),
    )
    test = metrics.report(test_labels, test_scores, model.threshold)
    # what the held-out scores allow: the best recall of any threshold, chosen in hindsight, at the
    # target precision
    hindsight, _ = metrics.threshold_for_precision(test_labels, test_scores, args.target_precision)
    curve = metrics.report(test_labels, test_scores, hindsight)
    peer_threshold, _ = metrics.threshold_for_precision(
        result.val_labels, result.val_scores, args.target_precision, args.threshold_confidence
    )
    peer = metrics.report(test_labels, test_scores, peer_threshold)
    margins = np.concatenate([ep[LIFT_MARGIN] for ep in test_eps])
    episodes = episode_outcomes([ep[LABEL_KEY] for ep in test_eps], scores, model.threshold)

    frames = {k: np.concatenate([ep[k] for ep in test_eps]) for k in keys}
    pick = np.random.default_rng(args.seed).integers(
        0, len(frames[keys[0]]), args.infer_frames + 10
    )
    times = []
    for i, j in enumerate(pick):
        t = time.perf_counter()
        model.predict_proba({k: frames[k][j] for k in keys})
        if i >= 10:  # warm-up
            times.append(1000.0 * (time.perf_counter() - t))
    empty_hand = empty_hand_lifts(
        model, cameras, args.seed + 200_000, args.empty_hand_episodes, image_size=args.image_size
    )
    if args.out:
        model.save(args.out, extra={"report": result.report.to_dict(), "test": test.to_dict()})

    val = result.report
    return {
        "infer_ms_p50": round(float(np.percentile(times, 50)), 3),
        "infer_ms_p99": round(float(np.percentile(times, 99)), 3),
        "train_s": round(train_s, 2),
        "featurize_s": round(result.featurize_s, 2),
        "fit_s": round(result.fit_s, 2),
        "train_positives": result.train_positives,
        "train_negatives": result.train_negatives,
        "threshold": round(val.threshold, 4),
        "val_precision": round(val.precision, 4),
        "val_recall": round(val.recall, 4),
        "val_roc_auc": round(val.roc_auc, 4),
        "test_precision": round(test.precision, 4),
        "test_recall": round(test.recall, 4),
        "test_roc_auc": round(test.roc_auc, 4),
        "test_confusion": {"tp": test.tp, "fp": test.fp, "tn": test.tn, "fn": test.fn},
        "test_error_margin_mm": error_margins_mm(
            test_labels, test_scores, margins, model.threshold
        ),
        "test_curve_recall_at_target_precision": round(curve.recall, 4),
        "test_curve_precision": round(curve.precision, 4),
        "peer_precision_rule_threshold": round(peer_threshold, 4),
        "peer_precision_rule_test_precision": round(peer.precision, 4),
        "peer_precision_rule_test_recall": round(peer.recall, 4),
        "peer_precision_rule_test_confusion": {
            "tp": peer.tp,
            "fp": peer.fp,
            "tn": peer.tn,
            "fn": peer.fn,
        },
        "test_episodes": args.test_episodes,
        **episodes,
        "empty_hand_episodes": args.empty_hand_episodes,
        "empty_hand_fired": empty_hand,
        "generate_s": round(generate_s, 1),
        "image_size": args.image_size,
        "crop": args.crop,
        "cameras": list(cameras),
        "proprio": list(args.proprio),
        "ensemble": args.ensemble,
        "val_fraction": args.val_fraction,
        "target_recall": args.target_recall or None,
        "threshold_confidence": args.threshold_confidence,
        "val_positives": val.positives,
        "threads": 1,
        "device": describe(device),
    }
