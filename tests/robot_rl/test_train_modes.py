"""The run config's training modes in the learner: WSRL's pre-training and online-only phase,
RLIF's intervention-only reward, and the configs and errors that select them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from controllers.config import ConfigError
from robot_rl.agents.sac import SACConfig
from robot_rl.loop.run_config import LearnerConfig, RunConfig, load_run_config
from robot_rl.transport.protocol import Message

ENV = {"max_episode_steps": 6}
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def _episodes(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """`n` twin episodes of 6 steps under random actions."""
    from robot_rl.loop.train_job import make_env
    from robot_rl.store.recorder import run_episode

    env = make_env(RunConfig(env=ENV))
    rng = np.random.default_rng(seed)
    episodes = [
        run_episode(env, lambda obs: rng.uniform(-1, 1, 7), seed=seed + i)[0] for i in range(n)
    ]
    env.close()
    return episodes


def _learner(tmp_path: Path, **learner):
    from robot_rl.loop.learner import Learner
    from robot_rl.loop.train_job import free_endpoint

    torch.manual_seed(0)
    cfg = RunConfig(
        env=ENV,
        demos=2,
        sac=SACConfig(hidden=(32, 32)),
        learner=LearnerConfig(
            batch_size=4, publish_every=1000, checkpoint_every=1000, replay_capacity=500, **learner
        ),
    )
    return Learner(cfg, cfg.obs_spec(), tmp_path / "run", endpoint=free_endpoint())


def _send(learner, episode: dict[str, np.ndarray], mode: str, session: int) -> None:
    learner.ingest(
        Message(
            "transitions",
            "a0",
            learner.cfg.data_hash(),
            session=session,
            arrays=episode,
            meta={"mode": mode},
        )
    )


def _record_batches(learner) -> list[bool]:
    """Per update from now on: whether its whole batch was marked offline (else none of it)."""
    update, marks = learner.agent.update, []

    def recording(batch):
        offline = np.asarray(batch.get("offline", np.zeros(1, bool)))
        assert offline.all() or not offline.any(), "a batch mixes offline and online data"
        marks.append(bool(offline.all()))
        return update(batch)

    learner.agent.update = recording
    return marks


def test_wsrl_pretrains_on_offline_data_then_trains_on_online_data_only(tmp_path):
    learner = _learner(tmp_path, offline="wsrl", wsrl_pretrain_updates=5, learning_starts=10)
    marks = _record_batches(learner)
    episodes = _episodes(6, seed=0)
    try:
        for i, ep in enumerate(episodes[:2]):
            ep["intervened"][:] = True  # the operator drives a demonstration
            _send(learner, ep, "demo", session=i)
        for i, ep in enumerate(episodes[2:5]):
            _send(learner, ep, "train", session=10 + i)
        learner.run(total_env_steps=10**6, max_wall_s=3.0)
        # 5 pre-training updates on the demonstrations alone; then, counted from the end of the
        # 10-step warm-up, one update per online env step: 18 steps arrived, so 8
        assert marks == [True] * 5 + [False] * 8
        assert learner.offline.size == 0  # no offline data is kept after pre-training
        late = episodes[5]
        late["intervened"][2:4] = True
        _send(learner, late, "train", session=20)
        assert learner.offline.size == 0 and learner.online.size == 4 * 6
    finally:
        learner.close()


def test_wsrl_pretrains_only_once_every_demonstration_is_in(tmp_path):
    learner = _learner(tmp_path, offline="wsrl", wsrl_pretrain_updates=5, learning_starts=1)
    episodes = _episodes(3, seed=1)
    try:
        _send(learner, episodes[0], "demo", session=0)  # one of the run's two
        _send(learner, episodes[1], "train", session=1)
        learner.run(total_env_steps=10**6, max_wall_s=1.0)
        assert learner.agent.critic_steps == 0 and learner.offline.size == 6
    finally:
        learner.close()


def test_rlif_learner_rewards_only_takeovers(tmp_path):
    learner = _learner(tmp_path, reward_mode="rlif", learning_starts=1)
    (ep,) = _episodes(1, seed=2)
    ep["reward"][:] = 1.0  # whatever the twin's task reward says, RLIF does not use it
    ep["intervened"][3:5] = True
    try:
        _send(learner, ep, "train", session=0)
        for buffer in (learner.online, learner.offline):
            rewards = buffer.gather(np.flatnonzero(buffer.valid))["reward"]
            assert set(rewards.tolist()) <= {0.0, -1.0}
        online = learner.online.gather(np.flatnonzero(learner.online.valid))["reward"]
        assert sorted(online.tolist()) == [-1.0] + [0.0] * 5  # the step before the take-over
    finally:
        learner.close()


def test_mode_configs_load_and_mode_errors_say_what_to_set():
    wsrl = load_run_config(CONFIG_DIR / "sim_pick_cube_wsrl.yaml")
    assert wsrl.learner.offline == "wsrl" and wsrl.learner.wsrl_pretrain_updates > 0
    rlif = load_run_config(CONFIG_DIR / "sim_pick_cube_rlif.yaml")
    assert rlif.learner.reward_mode == "rlif" and rlif.operator.enabled
    with pytest.raises(ConfigError, match="'wsrl' pre-trains on demonstrations, so it needs"):
        load_run_config(None, {"demos": 0, "learner": {"offline": "wsrl"}})
    with pytest.raises(ConfigError, match="wsrl_pretrain_updates: .* must be >= 1, got 0"):
        load_run_config(None, {"learner": {"offline": "wsrl", "wsrl_pretrain_updates": 0}})
    with pytest.raises(ConfigError, match="set operator.enabled: true or reward_mode: task"):
        load_run_config(None, {"learner": {"reward_mode": "rlif"}, "operator": {"enabled": False}})
