"""Learning curves of `robot-rl train` on the twin's pick_cube, and the ablations.

Each run is the train job (learner + actor processes, scripted operator) with the run config
config/sim_pick_cube.yaml changed by one variant; one (variant, seed) at a time on the 2-core box:
    MUJOCO_GL=egl nohup .venv/bin/python scripts/learning_curves.py run --variant main --seed 0 &
Each run writes its run folder runs/curves/<variant>-s<seed>/ (summary.json, metrics.csv,
learning_curve.png, checkpoint/); running the same (variant, seed) again continues it (--resume).
    .venv/bin/python scripts/learning_curves.py summary      # markdown table of the runs
Measured runs are recorded in docs/results/learner.jsonl.

Variants (what each ingredient buys):
    main         the config as it is: 20 demos, RLPD symmetric sampling, scripted operator
    no_demos     no demonstrations, online data only (the operator's steps stay in it)
    wsrl         WSRL: pre-train on the demos, warm-up rollouts, then online data only
    rlif         RLIF's reward: -1 on a take-over, no task reward
    ensemble10   10 critics, target = min over a random 2 (REDQ-style)
    no_layernorm MLPs without LayerNorm
    utd2         two updates per env step (the actors pace for it); main has one
    rel          the cube's position minus the TCP's in the state (sac.relative_positions), as
                 ManiSkill's tcp_to_obj_pos: the reaching error as an input
    n3           3-step returns (sac.n_step 3)
    rel_bf16     rel with the learner's matmuls in bfloat16 (sac.matmul_dtype)
    rel_xyzyaw   rel with the policy driving dx dy dz and yaw only (sac.arm_action_dims)
    redq_rel     ensemble10 + rel + utd2, matmuls in bfloat16
    redq_bc      redq_rel with Q-filtered behaviour cloning on demos and interventions
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
# the training modes' variants are their configs' learner sections
MODE_CONFIGS = {"wsrl": "sim_pick_cube_wsrl.yaml", "rlif": "sim_pick_cube_rlif.yaml"}
REL = {"relative_positions": [["object_pose", "tcp_pose"]]}
ENSEMBLE = {"num_critics": 10, "num_target_critics": 2}


def _utd(updates_per_step: int) -> dict[str, Any]:
    """Run-config keys for `updates_per_step` critic updates per env step: the learner's cap, and
    actors that wait for new weights often enough to let the learner reach it."""
    return {
        "learner": {"max_update_to_data": float(updates_per_step)},
        "actor_steps_per_weights": 50 // updates_per_step,
    }


VARIANTS: dict[str, dict[str, Any]] = {
    "main": {},
    "no_demos": {"demos": 0, "learner": {"offline": "none"}},
    "ensemble10": {"sac": ENSEMBLE},
    "no_layernorm": {"sac": {"layer_norm": False}},
    "utd2": _utd(2),
    "rel": {"sac": REL},
    "n3": {"sac": {"n_step": 3}},
    "rel_bf16": {"sac": {**REL, "matmul_dtype": "bfloat16"}},
    "rel_xyzyaw": {"sac": {**REL, "arm_action_dims": [0, 1, 2, 5]}},
    "redq_rel": {**_utd(2), "sac": {**ENSEMBLE, **REL, "matmul_dtype": "bfloat16"}},
}
VARIANTS["redq_bc"] = {
    **VARIANTS["redq_rel"],
    "sac": {**VARIANTS["redq_rel"]["sac"], "bc_weight": 1.0},
}


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`base` with `change` applied section by section (nested dicts merged, values replaced)."""
    out = dict(base)
    for key, value in change.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def run_config(variant: str, seed: int, steps: int | None, wall_s: float | None):
    """config/sim_pick_cube.yaml changed by the variant, the seed and the budgets."""
    from controllers.config import from_dict, load_yaml
    from robot_rl.loop.run_config import RunConfig

    if variant in MODE_CONFIGS:
        change = {"learner": load_yaml(CONFIG_DIR / MODE_CONFIGS[variant])["learner"]}
    else:
        change = VARIANTS[variant]
    data = _merge(load_yaml(CONFIG_DIR / "sim_pick_cube.yaml"), change)
    data["seed"] = seed
    if steps:
        data["total_env_steps"] = steps
    if wall_s:
        data["max_wall_s"] = wall_s
    return from_dict(RunConfig, data)


def run(args: argparse.Namespace) -> None:
    from robot_rl.loop.train_job import run_train

    cfg = run_config(args.variant, args.seed, args.steps, args.wall_s)
    out = Path(args.out) / f"{args.variant}-s{args.seed}"
    summary = run_train(cfg, out, resume=(out / "checkpoint").exists())
    print(json.dumps({"variant": args.variant, "seed": args.seed, **summary}))


def summary(args: argparse.Namespace) -> None:
    rows = []
    for path in sorted(Path(args.out).glob("*/metrics.csv")):
        with open(path) as fh:
            records = list(csv.DictReader(fh))
        done = path.parent / "summary.json"
        final = json.loads(done.read_text())["eval_success_rate"] if done.exists() else None
        last = records[-1] if records else {}
        rows.append(
            f"| {path.parent.name} | {'done' if done.exists() else 'running/partial'} | "
            f"{last.get('env_steps', '-')} | {last.get('wall_s', '-')} | "
            f"{last.get('eval_success_rate', '-')} | {'-' if final is None else f'{final:.2f}'} |"
        )
    print(
        "| run | state | env steps | learner wall s | eval success (last 20) | final eval |\n"
        "|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--variant", choices=sorted([*VARIANTS, *MODE_CONFIGS]), default="main")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="override total_env_steps")
    p.add_argument("--wall-s", type=float, default=None, help="override max_wall_s")
    p.add_argument("--out", default="runs/curves")
    p.set_defaults(func=run)
    s = sub.add_parser("summary")
    s.add_argument("--out", default="runs/curves")
    s.set_defaults(func=summary)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
