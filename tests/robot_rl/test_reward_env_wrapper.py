"""ClassifierReward around the real twin: the classifier, not the twin's success, ends episodes."""

import numpy as np
import pytest
import torch

import sim
from robot_rl.reward.classifier import ClassifierConfig, SuccessClassifier
from robot_rl.reward.env_wrapper import ClassifierReward

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SuccessClassifier(ClassifierConfig()).eval()


def test_classifier_ends_episodes_and_ground_truth_stays(model):
    env = ClassifierReward(
        sim.make_env("pick_cube", cameras=("front",)), model, max_episode_steps=3
    )
    hold = np.zeros(7, np.float32)
    model.threshold = 1.1  # never success: the wrapper's own time limit ends the episode
    obs, info = env.reset(seed=0)
    assert info["success_prob"] == pytest.approx(float(model.predict_proba(obs)[0]))
    for t in range(3):
        obs, reward, terminated, truncated, info = env.step(hold)
        assert reward == 0.0 and not terminated and truncated == (t == 2)
        assert info["success_prob"] == pytest.approx(float(model.predict_proba(obs)[0]))
    model.threshold = 0.0  # always success: a (false) positive ends the episode with reward 1
    env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(hold)
    assert reward == 1.0 and terminated and not truncated
    assert info["classifier_success"] and not info["success"]  # the twin's ground truth is kept
    env.close()


def test_missing_camera_is_named(model):
    env = sim.make_env("pick_cube")
    with pytest.raises(ValueError, match="image_front"):
        ClassifierReward(env, model, max_episode_steps=10)
    env.close()


def test_missing_state_key_is_named(model):
    from robot_rl.reward.classifier import ProprioConfig

    proprio = SuccessClassifier(
        ClassifierConfig(proprio=(ProprioConfig("joint_torque", 7),)), backbone=model.backbone
    )
    env = sim.make_env("pick_cube", cameras=("front",))
    assert "joint_torque" not in env.observation_space.spaces
    with pytest.raises(ValueError, match="joint_torque"):
        ClassifierReward(env, proprio, max_episode_steps=10)
    env.close()
