"""A run whose reward comes from a reward model: config, env, records, cached-feature learner.

Covers the config, the twin actor's env, what the actor records, and a learner that stores cached
backbone features instead of pixels.
"""

import numpy as np
import pytest
import torch

from controllers.config import ConfigError, load_yaml
from robot_rl.agents.sac import Policy, SACAgent, native_bf16
from robot_rl.loop.actor import Actor
from robot_rl.loop.run_config import load_run_config
from robot_rl.loop.train_job import make_env, obs_spec
from robot_rl.reward.classifier import ClassifierConfig, SuccessClassifier
from robot_rl.reward.env_wrapper import ClassifierReward
from robot_rl.store.episodes import EpisodeStore
from robot_rl.store.tee import StoreTee

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = SuccessClassifier(
        ClassifierConfig(), threshold=2.0
    )  # a probability never reaches 2: no success
    return str(model.save(tmp_path_factory.mktemp("reward")))


def test_missing_reward_model_folder_is_named(tmp_path):
    with pytest.raises(ConfigError, match="reward_model: .*nowhere.*robot-rl reward train"):
        load_run_config(None, {"reward_model": str(tmp_path / "nowhere")})


def test_train_job_refuses_a_reward_model_it_cannot_use_before_starting(reward_dir, tmp_path):
    from robot_rl.loop.train_job import run_train

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="classifier.yaml"):
        run_train(
            load_run_config(None, {"env": {"cameras": ["front"]}, "reward_model": str(empty)}),
            tmp_path / "a",
        )
    with pytest.raises(
        ValueError, match="image_front"
    ):  # the model reads a camera the twin does not render
        run_train(load_run_config(None, {"reward_model": reward_dir}), tmp_path / "b")
    assert (
        not (tmp_path / "a" / "config.yaml").exists()
        and not (tmp_path / "b" / "config.yaml").exists()
    )


def test_twin_actor_takes_reward_and_episode_ends_from_the_model(reward_dir, tmp_path):
    cfg = load_run_config(
        None,
        {
            "env": {"cameras": ["front"], "max_episode_steps": 4},
            "reward_model": reward_dir,
            "sac": {"proprio_keys": ["tcp_pose"]},
        },
    )
    assert not isinstance(
        make_env(cfg), ClassifierReward
    )  # learner / evaluation: the twin as it is
    env = make_env(cfg, reward_model=True)
    assert isinstance(env, ClassifierReward)
    policy = Policy(obs_spec(env), cfg.sac)
    store = str(tmp_path / "episodes.zarr")
    actor = Actor(
        env,
        policy,
        StoreTee(None, store, cfg.task, "sim", cfg.data_hash()),
        batch_steps=2,
        max_episode_steps=4,
    )
    stats = actor.run_episode("train", seed=0)
    assert stats.steps == 4 and not stats.success  # only the model's time limit ended it
    with EpisodeStore.open(store) as s:
        ep = s.episode(0)
    assert len(ep["success_prob"]) == 5 and np.all(
        (ep["success_prob"] >= 0) & (ep["success_prob"] <= 1)
    )
    # each row's probability is the model's score of that row's observation
    expected = env.model.predict_proba({"image_front": ep["image_front"]})
    np.testing.assert_allclose(ep["success_prob"], expected, atol=1e-5)
    assert not ep["reward"].any()
    env.close()


def test_image_run_config_reads_pixels_and_the_reward_model(reward_dir):
    overrides = {"reward_model": reward_dir}
    if not native_bf16():  # the config runs bf16, which a CPU without it refuses (as it says)
        sac = load_yaml("config/sim_pick_cube_image.yaml")["sac"]
        overrides["sac"] = {
            **sac,
            "matmul_dtype": "float32",
            "image": {**sac["image"], "dtype": "float32"},
        }
    cfg = load_run_config("config/sim_pick_cube_image.yaml", overrides)
    env = make_env(cfg, reward_model=True)
    policy = Policy(obs_spec(env), cfg.sac)
    assert (
        policy.image_keys == ("image_front", "image_wrist")
        and "object_pose" not in env.observation_space.spaces
    )
    # level cameras are rendered for a reward model, neither read by the policy nor stored in replay
    assert {"image_front_level", "image_side_level"} <= set(env.observation_space.spaces)
    assert set(SACAgent(obs_spec(env), cfg.sac, backbone=policy.backbone).storage_spec()) == set(
        policy.read_keys
    )
    assert isinstance(env, ClassifierReward) and env.model.cameras == ("front",)
    env.close()


def test_learner_stores_cached_features_for_image_runs(tmp_path):
    from robot_rl.loop.learner import Learner
    from robot_rl.loop.train_job import free_endpoint
    from robot_rl.transport.protocol import Message

    cfg = load_run_config(
        None,
        {
            "env": {"cameras": ["front"], "image_size": [64, 64]},
            "learner": {"replay_capacity": 50},
            "sac": {"proprio_keys": ["tcp_pose"], "image": {"cache_shifts": 2}},
        },
    )
    env = make_env(cfg)
    spec = obs_spec(env)
    env.close()
    learner = Learner(cfg, spec, tmp_path / "run", endpoint=free_endpoint())
    try:
        n, rng = 3, np.random.default_rng(0)
        rows = {k: np.zeros((n, *shape), dtype) for k, (shape, dtype) in spec.items()}
        rows["image_front"] = rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)
        rows.update(
            action=np.zeros((n, 7), np.float32),
            policy_action=np.zeros((n, 7), np.float32),
            reward=np.zeros(n, np.float32),
            intervened=np.zeros(n, bool),
            success_prob=np.zeros(n, np.float32),
            policy_version=np.zeros(n, np.int64),
            timestamp=np.zeros(n),
            is_first=np.arange(n) == 0,
            is_last=np.arange(n) == n - 1,
            is_terminal=np.zeros(n, bool),
            episode_id=np.zeros(n, np.int64),
            step=np.arange(n),
        )
        learner.ingest(
            Message("transitions", "a0", cfg.data_hash(), arrays=rows, meta={"mode": "train"})
        )
        assert len(learner.quarantine) == 0 and learner.env_steps == 2
        stored = learner.online.obs["image_front"]
        features = learner.agent.policy.backbone(torch.from_numpy(rows["image_front"])).numpy()
        assert stored.dtype == np.float16 and stored.shape == (50, 2, *features.shape[1:])
        np.testing.assert_allclose(
            stored[:n, 0], features, rtol=2e-3, atol=2e-3
        )  # copy 0: the unshifted frame
    finally:
        learner.close()
