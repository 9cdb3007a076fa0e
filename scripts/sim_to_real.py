"""Sim-to-real study in the twin: does pretraining in the privileged twin halve the time to learn
pick_cube on a shifted cell observed through the marker tracker?

1. pretrained: the main job's checkpoint (config/sim_pick_cube.yaml, privileged state), given
   with --pretrained or trained here first (OUT/pretrain);
2. zero-shot: that policy, unchanged, for --zero-shot-episodes on the shifted cell
   (config/sim_pick_cube_shifted.yaml: physics and looks at an edge of the randomisation ranges,
   cameras off their calibration, object_pose from the tracker only), ground-truth success;
3. per seed, the same budget on the shifted cell: `finetune` starts from the pretrained checkpoint
   (learner.init_checkpoint), `scratch` from nothing; time to success = learner wall time at which
   the last 20 periodic evaluation episodes first succeed at >= --threshold
   (robot_rl.loop.curves.time_to_success on each run's metrics.csv).

Every step is a `robot-rl` subprocess (train, eval) with this interpreter; one at a time (on a
2-core machine two runs would slow each other). A run folder with a summary.json is done and
skipped; one with a checkpoint but no summary is continued (--resume). OUT/summary.json holds
zero-shot success, per-run time to success and final success, medians over seeds and the ratio.
    MUJOCO_GL=egl nohup .venv/bin/python scripts/sim_to_real.py run \
        --pretrained runs/main/checkpoint --seeds 0 1 2 --out runs/sim2real &
    .venv/bin/python scripts/sim_to_real.py summary --out runs/sim2real   # at any time
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
MAIN_CONFIG = ROOT / "config" / "sim_pick_cube.yaml"
SHIFTED_CONFIG = ROOT / "config" / "sim_pick_cube_shifted.yaml"
ARMS = ("finetune", "scratch")
EVAL_SEED = 70_000_000  # zero-shot episodes: seeds no training run or final evaluation uses


@dataclass(frozen=True)
class Step:
    """One subprocess of the study: `argv` after `python -m robot_rl.cli`, writing `out`."""

    name: str
    argv: list[str]
    out: Path


def run_config(
    base: dict[str, Any],
    seed: int,
    init_checkpoint: str = "",
    budget_s: float | None = None,
    stop_at_success: float | None = None,
) -> dict[str, Any]:
    """`base` (a run config's YAML content) for one run of the study."""
    data = {**base, "seed": seed, "learner": dict(base.get("learner") or {})}
    if init_checkpoint:
        data["learner"]["init_checkpoint"] = init_checkpoint
    if budget_s is not None:
        data["max_wall_s"] = budget_s
    if stop_at_success is not None:
        data["learner"]["stop_at_eval_success"] = stop_at_success
    return data


def plan(args: argparse.Namespace) -> list[Step]:
    """The study's steps in order; writes the per-run config files under OUT/configs."""
    from controllers.config import from_dict
    from robot_rl.loop.run_config import RunConfig

    out = Path(args.out)
    steps = []
    pretrained = str(Path(args.pretrained).resolve()) if args.pretrained else None
    if pretrained is None:
        steps.append(_train_step("pretrain", MAIN_CONFIG, out))
        pretrained = str((out / "pretrain" / "checkpoint").resolve())
    zero_shot = [
        "eval",
        pretrained,
        "--config",
        str(SHIFTED_CONFIG),
        "--episodes",
        str(args.zero_shot_episodes),
        "--seed",
        str(EVAL_SEED),
    ]
    steps.append(Step("zero_shot", zero_shot, out / "zero_shot.json"))
    base = yaml.safe_load(SHIFTED_CONFIG.read_text())
    (out / "configs").mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for arm in ARMS:
            name = f"{arm}-s{seed}"
            data = run_config(
                base,
                seed,
                pretrained if arm == "finetune" else "",
                args.budget_s,
                args.stop_at_success,
            )
            from_dict(RunConfig, data)  # a bad override fails now, not hours later
            path = out / "configs" / f"{name}.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            steps.append(_train_step(name, path, out))
    return steps


def _train_step(name: str, config: Path, out: Path) -> Step:
    run_dir = out / name
    argv = ["train", "--config", str(config), "--out", str(run_dir)]
    if (run_dir / "checkpoint").exists() and not (run_dir / "summary.json").exists():
        argv.append("--resume")
    return Step(name, argv, run_dir / "summary.json")


def median_time(times: list[float | None]) -> float | None:
    """Median over seeds of times to success, a run that never got there counting as longer
    than any that did; None when that is the median."""
    ordered = sorted(times, key=lambda t: float("inf") if t is None else t)
    if not ordered:
        return None
    mid = len(ordered) // 2
    middle = ordered[mid - 1 : mid + 1] if len(ordered) % 2 == 0 else [ordered[mid]]
    return None if None in middle else statistics.mean(middle)


def run_summary(run_dir: Path, threshold: float, window: int) -> dict[str, Any]:
    """One training run: its time to success and final evaluation (None until it is done)."""
    from robot_rl.loop.curves import time_to_success

    metrics = run_dir / "metrics.csv"
    reached = time_to_success(metrics, threshold, window)
    with open(metrics, newline="") as fh:
        rows = list(csv.DictReader(fh))
    done = run_dir / "summary.json"
    final = json.loads(done.read_text()) if done.exists() else {}
    return {
        "run": run_dir.name,
        "done": done.exists(),
        "time_to_success": asdict(reached) if reached else None,
        "learner_wall_s": float(rows[-1]["wall_s"]) if rows else 0.0,
        "final_success": final.get("eval_success_rate"),
        "final_eval_episodes": final.get("eval_episodes"),
        "env_steps": final.get("env_steps"),
        "job_wall_s": final.get("wall_s"),
    }


def study_summary(out: Path, threshold: float, window: int) -> dict[str, Any]:
    """What the study's folder holds so far (OUT/summary.json)."""
    zero_shot = out / "zero_shot.json"
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": _cpu(),
        "commit": _commit(),
        "threshold": threshold,
        "window": window,
        "zero_shot": json.loads(zero_shot.read_text()) if zero_shot.exists() else None,
    }
    medians = {}
    for arm in ARMS:
        runs = [
            run_summary(d, threshold, window)
            for d in sorted(out.glob(f"{arm}-s*"))
            if (d / "metrics.csv").exists()
        ]
        result[arm] = runs
        times = [r["time_to_success"]["wall_s"] if r["time_to_success"] else None for r in runs]
        medians[arm] = median_time(times)
        finals = [r["final_success"] for r in runs if r["final_success"] is not None]
        result[f"{arm}_median_final_success"] = statistics.median(finals) if finals else None
    result["median_time_to_success_s"] = medians
    ft, scratch = medians["finetune"], medians["scratch"]
    result["ratio"] = ft / scratch if ft is not None and scratch else None
    # where the scratch median is a run that never got there, it lies beyond the median with each
    # such run's training time in its place: the ratio is below finetune's median over that
    lower = median_time(
        [
            r["time_to_success"]["wall_s"] if r["time_to_success"] else r["learner_wall_s"]
            for r in result["scratch"]
        ]
    )
    result["ratio_at_most"] = ft / lower if ft is not None and scratch is None and lower else None
    bound = result["ratio"] if result["ratio"] is not None else result["ratio_at_most"]
    result["pretraining_halves_the_time"] = None if bound is None else bound <= 0.5
    return result


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    for step in plan(args):
        if step.out.exists():
            print(f"{step.name}: done ({step.out})", flush=True)
            continue
        print(f"{step.name}: robot-rl {' '.join(step.argv)}", flush=True)
        cmd = [sys.executable, "-m", "robot_rl.cli", *step.argv]
        if step.name == "zero_shot":
            done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            step.out.write_text(done.stdout.strip().splitlines()[-1] + "\n")
        else:
            subprocess.run(cmd, check=True)
        summary = study_summary(out, args.threshold, args.window)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(study_summary(out, args.threshold, args.window), indent=1))


def summary(args: argparse.Namespace) -> None:
    print(json.dumps(study_summary(Path(args.out), args.threshold, args.window), indent=1))


def main(argv: list[str] | None = None) -> None:
    from robot_rl.loop.learner import EVAL_WINDOW

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, func in (("run", run), ("summary", summary)):
        p = sub.add_parser(name)
        p.add_argument("--out", default="runs/sim2real")
        p.add_argument("--threshold", type=float, default=0.9)
        p.add_argument(
            "--window",
            type=int,
            default=EVAL_WINDOW,
            help=f"evaluation episodes per success rate (<= {EVAL_WINDOW}, default)",
        )
        p.set_defaults(func=func)
        if name == "run":
            p.add_argument(
                "--pretrained",
                metavar="CHECKPOINT",
                default=None,
                help="the twin's checkpoint (default: train the main job into OUT/pretrain)",
            )
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
            p.add_argument(
                "--budget-s",
                type=float,
                default=None,
                help="max_wall_s of every shifted-cell run (default: the config's, 540)",
            )
            p.add_argument(
                "--stop-at-success",
                type=float,
                default=None,
                help="stop a run once its last 20 evaluation episodes reach this success rate "
                "(learner.stop_at_eval_success; final success is then measured there)",
            )
            p.add_argument("--zero-shot-episodes", type=int, default=50)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
