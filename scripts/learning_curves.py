"""Learning curves of the state-based SAC learner on the twin's pick_cube, and the ablations.

Run one (variant, seed) per process, 1 torch thread each, at most two at a time on the 2-core box:
    MUJOCO_GL=egl nohup .venv/bin/python scripts/learning_curves.py run --variant main --seed 0 &
Each run writes runs/curves/<variant>-s<seed>/metrics.jsonl (success vs env steps) and result.json.
    .venv/bin/python scripts/learning_curves.py summary      # markdown table of the runs
Measured runs are recorded in docs/results/learner.jsonl.

Variants (what each ingredient buys):
    main         20 demos, symmetric sampling, 2 critics, LayerNorm (the HIL-SERL/RLPD recipe)
    no_demos     no demonstrations (online data only)
    ensemble10   10 critics, target = min over a random 2 (REDQ-style)
    no_layernorm MLPs without LayerNorm
    wsrl         WSRL: pre-train on the demos, warm-up rollouts, then online data only
    utd2         two SAC updates (critic + actor) per env step; main has one
    rel          main + the cube's position minus the TCP's in the state
                 (sac.relative_positions), as ManiSkill's tcp_to_obj_pos: the reaching error as an
                 input instead of a difference to learn
    ensemble10_rel  ensemble10 + rel
    n3           3-step returns (sac.n_step 3)
    rel_n3       rel + 3-step returns
    rel_bf16     rel with the learner's matmuls in bfloat16 (sac.matmul_dtype)
    rel_xyzyaw   rel with the policy driving dx dy dz and yaw only
                 (sac.arm_action_dims [0, 1, 2, 5]); the target orientation keeps the gripper
                 pointing down
    redq_rel     ensemble10 + rel + two updates per env step, matmuls in bfloat16 (what the 2x of
                 bf16 buys)
    redq3_rel    redq_rel with three updates per env step
    redq_xyzyaw  redq_rel with the policy driving dx dy dz and yaw only (the tilt seen in rel's
                 failures)
    redq_grip    redq_rel with a random gripper command on 10 % of the exploring steps
                 (sac.gripper_epsilon): without it the grasp critic sees commands other than its
                 own argmax only in the demonstrations
    redq_bc      redq_rel with Q-filtered behaviour cloning on the demonstrations (sac.bc_weight
                 1.0, about TD3+BC's alpha 2.5 on the offline half of the batch)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

VARIANTS = {
    "main": {},
    "no_demos": {"demos": 0, "offline": "none"},
    "ensemble10": {"sac": {"num_critics": 10, "num_target_critics": 2}},
    "no_layernorm": {"sac": {"layer_norm": False}},
    "wsrl": {"offline": "wsrl"},
    "utd2": {"updates_per_step": 2},
    "rel": {"sac": {"relative_positions": [["object_pose", "tcp_pose"]]}},
    "ensemble10_rel": {
        "sac": {
            "num_critics": 10,
            "num_target_critics": 2,
            "relative_positions": [["object_pose", "tcp_pose"]],
        }
    },
    "n3": {"sac": {"n_step": 3}},
    "rel_n3": {"sac": {"n_step": 3, "relative_positions": [["object_pose", "tcp_pose"]]}},
    "rel_bf16": {
        "sac": {"matmul_dtype": "bfloat16", "relative_positions": [["object_pose", "tcp_pose"]]}
    },
    "rel_xyzyaw": {
        "sac": {
            "arm_action_dims": [0, 1, 2, 5],
            "relative_positions": [["object_pose", "tcp_pose"]],
        }
    },
    "redq_rel": {
        "updates_per_step": 2,
        "sac": {
            "num_critics": 10,
            "num_target_critics": 2,
            "matmul_dtype": "bfloat16",
            "relative_positions": [["object_pose", "tcp_pose"]],
        },
    },
}
VARIANTS["redq3_rel"] = {**VARIANTS["redq_rel"], "updates_per_step": 3}
VARIANTS["redq_xyzyaw"] = {
    **VARIANTS["redq_rel"],
    "sac": {**VARIANTS["redq_rel"]["sac"], "arm_action_dims": [0, 1, 2, 5]},
}
VARIANTS["redq_grip"] = {
    **VARIANTS["redq_rel"],
    "sac": {**VARIANTS["redq_rel"]["sac"], "gripper_epsilon": 0.1},
}
VARIANTS["redq_bc"] = {
    **VARIANTS["redq_rel"],
    "sac": {**VARIANTS["redq_rel"]["sac"], "bc_weight": 1.0},
}
# The state the policy reads: TCP pose/velocity, gripper width and the (privileged) cube pose.
BASE = {
    "task": "pick_cube",
    "total_env_steps": 30_000,
    "eval_every": 2_500,
    "eval_episodes": 10,
    "final_eval_episodes": 100,
    "learning_starts": 500,
    "demos": 20,
    "sac": {"proprio_keys": ["tcp_pose", "tcp_vel", "gripper_width", "object_pose"]},
}


def trainer_config(variant: str, seed: int, steps: int | None):
    from controllers.config import from_dict
    from robot_rl.loop.trainer import TrainerConfig

    data = json.loads(json.dumps(BASE))
    for key, value in VARIANTS[variant].items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    data["seed"] = seed
    if steps:
        data["total_env_steps"] = steps
    return from_dict(TrainerConfig, data)


def run(args: argparse.Namespace) -> None:
    import sim
    from robot_rl.loop.trainer import Trainer
    from sim.experts import make_expert

    cfg = trainer_config(args.variant, args.seed, args.steps)
    out = Path(args.out) / f"{args.variant}-s{args.seed}"
    resume = (out / "checkpoint" / "config.json").exists()
    trainer = Trainer(
        cfg, lambda: sim.make_env(cfg.task, cfg.env), make_expert, run_dir=out, resume=resume
    )
    start = time.time()
    history = trainer.run()
    result = {
        "variant": args.variant,
        "seed": args.seed,
        "history": history,
        "final_success": history[-1][1],
        "skipped_updates": trainer.agent.skipped_updates,
        "wall_s": time.time() - start,
        "config": dataclasses.asdict(cfg),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("variant", "seed", "final_success", "wall_s")}))


def summary(args: argparse.Namespace) -> None:
    rows = []
    for path in sorted(Path(args.out).glob("*/metrics.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        done = (path.parent / "result.json").exists()
        curve = ", ".join(f"{r['env_steps'] // 1000}k:{r['success']:.2f}" for r in records)
        rows.append(f"| {path.parent.name} | {'done' if done else 'running/partial'} | {curve} |")
    print("| run | state | success (env steps: rate; last entry = final eval) |\n|---|---|---|")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--variant", choices=sorted(VARIANTS), default="main")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="override total env steps")
    p.add_argument("--out", default="runs/curves")
    p.set_defaults(func=run)
    s = sub.add_parser("summary")
    s.add_argument("--out", default="runs/curves")
    s.set_defaults(func=summary)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
