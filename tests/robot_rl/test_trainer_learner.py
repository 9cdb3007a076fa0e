"""Synchronous trainer: learns a small grasp task from demos, resumes a run, runs on the twin."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from learner_toy_env import ToyExpert, ToyGraspEnv

from controllers.config import ConfigError, from_dict
from robot_rl.agents.sac import SACConfig
from robot_rl.loop.trainer import Trainer, TrainerConfig, collect_demos, evaluate

torch.set_num_threads(1)


def toy_config(**kw) -> TrainerConfig:
    base = dict(
        total_env_steps=1500,
        demos=10,
        learning_starts=100,
        batch_size=64,
        eval_every=0,
        eval_episodes=0,
        final_eval_episodes=40,
        sac=SACConfig(hidden=(64, 64)),
    )
    base.update(kw)
    return TrainerConfig(**base)


def test_demos_are_rlds_episodes():
    env = ToyGraspEnv()
    eps = collect_demos(env, ToyExpert(env), 3, seed=0)
    for ep in eps:
        T = len(ep["reward"]) - 1
        assert (
            ep["is_first"][0]
            and ep["is_last"][T]
            and ep["is_terminal"][T]
            and not ep["is_last"][:T].any()
        )
        assert ep["reward"][T - 1] == 1.0 and np.all(ep["action"][T] == 0)


@pytest.mark.slow
def test_learns_toy_grasp_from_demos_with_symmetric_sampling():
    trainer = Trainer(toy_config(seed=0), ToyGraspEnv, ToyExpert)
    history = trainer.run()
    random_agent = Trainer(toy_config(seed=0, demos=0, offline="none"), ToyGraspEnv).agent
    random_success = evaluate(ToyGraspEnv(), random_agent, 40, seed=123)
    assert history[-1][1] >= 0.5 and history[-1][1] >= random_success + 0.3, (
        history,
        random_success,
    )
    assert trainer.agent.skipped_updates == 0


def test_resume_continues_the_run(tmp_path):
    cfg = toy_config(
        total_env_steps=200,
        checkpoint_every=100,
        final_eval_episodes=2,
        demos=2,
        learning_starts=50,
    )
    first = Trainer(cfg, ToyGraspEnv, ToyExpert, run_dir=tmp_path)
    first.run()
    assert first.env_steps == 200
    longer = dataclasses.replace(cfg, total_env_steps=300)
    with pytest.raises(Exception, match="total_env_steps: checkpoint has 200, this run has 300"):
        Trainer(longer, ToyGraspEnv, ToyExpert, run_dir=tmp_path, resume=True)
    again = Trainer(cfg, ToyGraspEnv, ToyExpert, run_dir=tmp_path, resume=True)
    assert again.env_steps == 200 and again.online.size == first.online.size
    assert again.agent.critic_steps == first.agent.critic_steps
    assert again.offline.size == first.offline.size and again.history == [
        list(h) for h in first.history
    ]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["env_steps"] == 200
    assert np.isfinite(
        json.loads(lines[-1])["last_update"]["critic_loss"]
    )  # the losses are logged with it


def test_wsrl_pretrains_then_drops_offline_data():
    cfg = toy_config(
        total_env_steps=60,
        offline="wsrl",
        wsrl_pretrain_updates=5,
        wsrl_warmup_steps=40,
        learning_starts=0,
        final_eval_episodes=0,
        demos=2,
    )
    trainer = Trainer(cfg, ToyGraspEnv, ToyExpert)
    trainer.run()
    # 5 pre-training updates, none in the 40 warm-up steps, then one per env step (online data only)
    assert trainer.agent.critic_steps == 5 + (60 - 40 + 1)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="trainer.batch_size"):
        from_dict(TrainerConfig, {"batch_size": 0})
    with pytest.raises(ConfigError, match="offline"):
        from_dict(TrainerConfig, {"demos": 0})
    with pytest.raises(ConfigError, match="num_critics=0"):
        from_dict(TrainerConfig, {"sac": {"num_critics": 0}})


@pytest.mark.slow
def test_trains_on_the_mujoco_pick_cube_twin():
    import sim
    from sim.experts import make_expert

    cfg = from_dict(
        TrainerConfig,
        {
            "total_env_steps": 150,
            "demos": 2,
            "learning_starts": 50,
            "batch_size": 32,
            "final_eval_episodes": 0,
            "eval_every": 0,
            "sac": {
                "hidden": [64, 64],
                "proprio_keys": ["tcp_pose", "gripper_width", "object_pose"],
            },
        },
    )
    trainer = Trainer(cfg, lambda: sim.make_env("pick_cube"), make_expert)
    trainer.run()
    assert trainer.offline.size >= 2 * 20  # two successful scripted episodes
    assert (
        trainer.online.size >= 140
        and trainer.agent.critic_steps == 101
        and trainer.agent.skipped_updates == 0
    )
    b = trainer.offline.sample(64, trainer.rng)
    assert b["reward"].max() == 1.0 and b["done"].max() == 1.0
