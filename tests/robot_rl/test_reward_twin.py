"""The twin closed loop, small: a classifier trained on expert frames, scored on other seeds."""

import numpy as np
import pytest
import torch

from robot_rl.bench.reward import (
    LIFT_MARGIN,
    empty_hand_lifts,
    episode_outcomes,
    error_margins_mm,
    twin_episodes,
)
from robot_rl.reward.classifier import ClassifierConfig, ViewConfig
from robot_rl.reward.labels import LABEL_KEY
from robot_rl.reward.training import TrainConfig, evaluate, train

torch.set_num_threads(1)


def test_twin_episodes_carry_ground_truth_marks():
    eps = twin_episodes(4, seed=0, hold=3, drop_every=2)
    for i, ep in enumerate(eps):
        y = ep[LABEL_KEY]
        assert (
            ep["image_front"].shape == (len(y), 128, 128, 3) and ep["image_front"].dtype == np.uint8
        )
        assert y.any(), "the scripted expert lifts the cube"
        assert not y[0]
        clear = (
            np.abs(ep[LIFT_MARGIN]) > 1e-6
        )  # float32 pose: the sign at exactly the line is rounding
        np.testing.assert_array_equal(ep[LIFT_MARGIN][clear] >= 0, y[clear])
        if i % 2 == 1:
            assert not y[-1], "a dropped cube ends the episode below the success height"
        else:
            assert y[-4:].all(), "success is held for `hold` steps after the lift"


def test_episode_outcomes_counts_early_fires_and_delays():
    truth = [
        np.array([0, 0, 1, 1], bool),
        np.array([0, 0, 1, 1], bool),
        np.array([0, 0, 0], bool),
        np.array([0, 1, 1], bool),
    ]
    scores = [
        np.array([0.1, 0.2, 0.3, 0.9]),
        np.array([0.9, 0.1, 0.9, 0.9]),
        np.array([0.1, 0.1, 0.1]),
        np.array([0.1, 0.2, 0.3]),
    ]
    out = episode_outcomes(truth, scores, 0.5)
    assert out["test_episodes_fired_early"] == 1 and out["test_episodes_missed"] == 1
    assert out["test_fire_delay_steps_median"] == 1.0 and out["test_fire_delay_steps_max"] == 1


def test_error_margins_are_the_error_frames_heights():
    labels = np.array([0, 0, 1, 1, 0], bool)
    scores = np.array([0.1, 0.8, 0.3, 0.9, 0.7])
    margins = np.array([-0.05, -0.0012, 0.0031, 0.02, -0.0004])
    assert error_margins_mm(labels, scores, margins, 0.5) == {"fp": [-1.2, -0.4], "fn": [3.1]}


class StateRule:
    """A reward model deciding from robot state alone: what the empty-hand probe exists to catch."""

    cameras = ("front_level",)
    threshold = 0.5

    def __init__(self, fires):
        self.fires = fires

    def predict_proba(self, obs: dict) -> np.ndarray:
        return np.array([float(self.fires(obs))], np.float32)


def test_empty_hand_probe_opens_or_closes_on_nothing_and_rises_past_the_success_height():
    never = StateRule(lambda obs: obs["object_pose"][2] > 0.03)  # the cube never leaves the table
    assert empty_hand_lifts(never, never.cameras, seed=0, count=2) == {"open": 0, "closed": 0}
    raised = StateRule(
        lambda obs: obs["tcp_pose"][2] > 0.28
    )  # above the start height (0.25): the rise only
    assert empty_hand_lifts(raised, raised.cameras, seed=0, count=2) == {"open": 2, "closed": 2}
    closed_high = StateRule(lambda obs: obs["gripper_width"][0] < 0.01 and obs["tcp_pose"][2] > 0.2)
    assert empty_hand_lifts(closed_high, closed_high.cameras, seed=0, count=2) == {
        "open": 0,
        "closed": 2,
    }
    open_low = StateRule(
        lambda obs: obs["gripper_width"][0] > 0.07 and obs["tcp_pose"][2] < 0.05
    )  # the approach
    assert empty_hand_lifts(open_low, open_low.cameras, seed=0, count=2) == {"open": 2, "closed": 2}


@pytest.mark.slow
def test_classifier_separates_lifted_cube_on_held_out_twin_episodes():
    # front_level: the reward view the bench measures (docs/reward.md), level with success height
    cameras = ("front_level",)
    train_eps = twin_episodes(12, seed=0, cameras=cameras)
    test_eps = twin_episodes(6, seed=50_000, cameras=cameras)
    classifier = ClassifierConfig(views=(ViewConfig("front_level"),))
    result = train(
        train_eps,
        TrainConfig(
            classifier=classifier,
            steps=300,
            shifts=2,
            target_precision=0.95,
            threshold_confidence=0.5,
        ),
    )
    assert result.train_positives <= 200
    report = evaluate(result.model, test_eps)
    assert report.roc_auc >= 0.97, report
    assert report.precision >= 0.8 and report.recall >= 0.3, report
