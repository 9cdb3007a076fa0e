"""`robot-rl eval` on the checkpoint a learner (= the train/demo job) writes; bad checkpoints are
refused with one message each."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.agents.sac import SACConfig
from robot_rl.cli import main
from robot_rl.store import EpisodeStore

ENV = {"max_episode_steps": 6}


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def learner_run(tmp_path_factory):
    """A learner fed one twin episode, trained a few updates, checkpointed by its own run()."""
    from robot_rl.loop.learner import Learner
    from robot_rl.loop.run_config import LearnerConfig, RunConfig
    from robot_rl.loop.train_job import free_endpoint, make_env, obs_spec
    from robot_rl.store.recorder import run_episode
    from robot_rl.transport.protocol import Message

    torch.manual_seed(0)
    cfg = RunConfig(
        env=ENV,
        total_env_steps=1,
        sac=SACConfig(hidden=(32, 32)),
        learner=LearnerConfig(batch_size=4, learning_starts=1, replay_capacity=100),
    )
    env = make_env(cfg)
    spec = obs_spec(env)
    rng = np.random.default_rng(0)
    episode, _ = run_episode(env, lambda obs: rng.uniform(-1, 1, 7), seed=1)
    env.close()
    run_dir = tmp_path_factory.mktemp("learner") / "run"
    learner = Learner(cfg, spec, run_dir, endpoint=free_endpoint())
    try:
        learner.ingest(
            Message("transitions", "a0", cfg.data_hash(), arrays=episode, meta={"mode": "train"})
        )
        for _ in range(3):
            learner.agent.update(learner.online.sample(4, learner.rng, 1, 0.97))
        learner.run()
    finally:
        learner.close()
    return run_dir / "checkpoint", learner.agent


def _eval(capsys, *args: str) -> dict:
    capsys.readouterr()  # drop what the fixtures printed (the learner's progress line)
    assert main(["eval", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_runs_the_checkpoints_policy_in_its_twin(learner_run, tmp_path, capsys):
    checkpoint, agent = learner_run
    before = _digest(checkpoint)
    store_path = tmp_path / "eval.zarr"
    result = _eval(capsys, str(checkpoint), "--episodes", "2", "--record", str(store_path))
    assert result["task"] == "pick_cube" and result["episodes"] == 2
    assert result["policy_version"] == agent.critic_steps > 0
    with EpisodeStore.open(store_path) as store:
        ep = store.episode(1)
        assert store.info(1).seed == result["seeds"][1]
    assert len(ep["is_first"]) == ENV["max_episode_steps"] + 1  # the run's env config
    # the trained weights act, deterministically: the recorded actions are the agent's own
    for t in range(3):
        obs = {k: ep[k][t] for k in agent.policy.obs_spec}
        np.testing.assert_allclose(ep["action"][t], agent.act(obs, deterministic=True), atol=1e-5)
    assert _digest(checkpoint) == before  # eval changes nothing stored
    assert _eval(capsys, str(checkpoint), "--task", "pick_cube", "--episodes", "1")["episodes"]


def test_train_jobs_final_evaluation_uses_the_same_evaluator(learner_run, capsys):
    from robot_rl.loop.run_config import RunConfig
    from robot_rl.loop.train_job import EVAL_SEED, evaluate_checkpoint

    checkpoint, _ = learner_run
    results = evaluate_checkpoint(RunConfig(env=ENV), checkpoint, 2, 1)
    cli = _eval(capsys, str(checkpoint), "--episodes", "2", "--seed", str(EVAL_SEED))
    assert len(results) == 2 and sum(results) == cli["successes"]


def test_bad_checkpoints_are_named(learner_run, tmp_path):
    checkpoint, _ = learner_run
    with pytest.raises(SystemExit, match="not a checkpoint directory .*runs/<name>/checkpoint"):
        main(["eval", str(tmp_path), "--episodes", "1"])
    with pytest.raises(SystemExit, match="not a checkpoint directory"):
        main(["eval", str(checkpoint / "config.json"), "--episodes", "1"])
    with pytest.raises(SystemExit, match="trained on task 'pick_cube', not 'peg_insert'"):
        main(["eval", str(checkpoint), "--task", "peg_insert", "--episodes", "1"])
    with pytest.raises(SystemExit, match="episodes: 0 must be >= 1"):
        main(["eval", str(checkpoint), "--episodes", "0"])
    foreign = shutil.copytree(checkpoint, tmp_path / "foreign")
    (foreign / "config.json").write_text(json.dumps({"sac": {}}))
    with pytest.raises(SystemExit, match="no 'run' section"):
        main(["eval", str(foreign), "--episodes", "1"])


def test_checkpoint_whose_layout_the_twin_no_longer_gives_is_refused(learner_run, tmp_path):
    checkpoint, _ = learner_run
    edited = shutil.copytree(checkpoint, tmp_path / "edited")
    config = json.loads((edited / "config.json").read_text())
    config["run"]["env"]["privileged_state"] = False  # the twin then hides object_pose
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match=r"object_pose: checkpoint \(7,\) float32, env has no"):
        main(["eval", str(edited), "--episodes", "1"])
