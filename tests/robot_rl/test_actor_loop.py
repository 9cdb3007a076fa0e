"""Actor loop, action guard, scripted operator and intervention segments."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch

from robot_rl.loop.actor import Actor, guard_action
from robot_rl.loop.learner import InterventionSegments
from robot_rl.loop.operator import ScriptedOperator
from robot_rl.loop.run_config import OperatorConfig
from robot_rl.transport.channels import ActorClient, LearnerServer, LinkTiming

FAST = LinkTiming(heartbeat_s=0.1, peer_timeout_s=1.0, resend_after_s=0.5)


def test_guard_action_never_passes_nan_or_out_of_range():
    action, reason = guard_action(np.array([0.5, np.nan, 0, 0, 0, 0, 1], np.float32))
    assert reason == "non-finite action" and np.all(action == 0)
    action, reason = guard_action(np.array([2, -3, 0, 0, 0, 0, 1], np.float32))
    assert reason == "clipped to [-1, 1]" and action[:2].tolist() == [1, -1]
    action, reason = guard_action(np.zeros(3))
    assert "shape" in reason and action.shape == (7,) and np.all(action == 0)
    assert guard_action(np.full(7, 0.25))[1] == ""


def _rows(intervened, first_row=True, last_row=False, terminal=False):
    n = len(intervened)
    is_first = np.zeros(n, bool)
    is_first[0] = first_row
    is_last = np.zeros(n, bool)
    is_last[-1] = last_row
    is_terminal = np.zeros(n, bool)
    is_terminal[-1] = terminal and last_row
    return {
        "step": np.arange(n),
        "intervened": np.array(intervened, bool),
        "is_first": is_first,
        "is_last": is_last,
        "is_terminal": is_terminal,
    }


def test_intervention_segments_span_batches_and_end_with_the_row_after_them():
    seg = InterventionSegments()
    assert seg.feed("a", _rows([0, 0, 0])) is None
    out = seg.feed("a", _rows([0, 1, 1], first_row=False))  # segment opens, still open at batch end
    assert out["step"].tolist() == [1, 2] and out["is_first"].tolist() == [True, False]
    assert not out["is_last"].any()
    out = seg.feed("a", _rows([1, 0, 0, 1], first_row=False))  # continues one row, closes on row 1
    assert out["step"].tolist() == [0, 1, 3] and out["is_first"].tolist() == [False, False, True]
    assert out["is_last"].tolist() == [False, True, False] and not out["is_terminal"].any()
    out = seg.feed(
        "a", _rows([1, 0], first_row=False, last_row=True, terminal=True)
    )  # ends at a terminal state
    assert out["is_last"].tolist() == [False, True] and out["is_terminal"].tolist() == [False, True]
    assert seg.feed("b", _rows([0, 0])) is None  # streams are independent


class _Line:
    """A toy scene: the TCP sits at `pos`; the expert always says +x."""

    def __init__(self):
        self.pos = np.zeros(3)

    def obs(self):
        return {"tcp_pose": np.concatenate([self.pos, [1, 0, 0, 0]])}


def _expert(_obs):
    return np.array([1, 0, 0, 0, 0, 0, -1], np.float32)


def test_operator_takes_over_on_stall_and_drift_hands_back_and_respects_its_budget():
    cfg = OperatorConfig(
        stall_steps=3,
        stall_distance=0.01,
        drift_steps=2,
        takeover_steps=4,
        budget_start=0.5,
        budget_min=0.0,
    )
    op = ScriptedOperator(_expert, cfg)
    scene = _Line()
    op.start_episode(max_steps=20)
    moving = np.array([1, 0, 0, 0, 0, 0, 0], np.float32)
    decisions = []
    for _ in range(3):  # the policy agrees with the expert and moves: no takeover
        scene.pos[0] += 0.02
        decisions.append(op.act(scene.obs(), moving) is not None)
    assert decisions == [False] * 3
    still = [op.act(scene.obs(), moving) is not None for _ in range(4)]  # the TCP stops moving
    assert still == [False, False, True, True]  # 3 steps without 1 cm of motion -> takeover
    driving = []
    for _ in range(3):  # the expert moves the TCP while it drives
        scene.pos[0] += 0.02
        driving.append(op.act(scene.obs(), moving) is not None)
    assert driving == [True, True, False]  # a takeover lasts 4 steps, then control goes back
    backwards = -moving
    drift = []
    for _ in range(3):
        scene.pos[0] += 0.02
        drift.append(op.act(scene.obs(), backwards) is not None)
    assert drift == [False, True, True]  # 2 steps pointing away -> takeover
    used = 4 + 2
    for _ in range(20):
        scene.pos[0] += 0.02
        used += op.act(scene.obs(), backwards) is not None
    assert used == 10  # budget: 0.5 of 20 steps


def test_operator_budget_shrinks_with_success_and_demo_mode_drives_everything():
    op = ScriptedOperator(
        _expert, OperatorConfig(budget_start=0.6, budget_min=0.1, success_window=4)
    )
    assert op.budget_fraction == pytest.approx(0.6)
    for success in (True, True, True, False):
        op.start_episode(10)
        op.end_episode(success)
    assert op.budget_fraction == pytest.approx(0.1 + 0.5 * 0.25)
    op.start_episode(10, demo=True)
    assert all(op.act(_Line().obs(), np.zeros(7)) is not None for _ in range(30))
    op.end_episode(False)
    assert op.budget_fraction == pytest.approx(0.1 + 0.5 * 0.25)  # demos do not count


def _endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class _AlwaysTakeOver:
    """Operator hook that drives on even steps (a human tapping in and out)."""

    def __init__(self):
        self.t = 0

    def start_episode(self, max_steps, demo=False):
        self.t = 0

    def end_episode(self, success):
        pass

    def act(self, obs, policy_action):
        self.t += 1
        return np.array([0, 0, -0.5, 0, 0, 0, -1], np.float32) if self.t % 2 == 1 else None


def test_actor_streams_tagged_rows_mid_episode_and_swaps_in_new_weights(tmp_path):
    import sim
    from robot_rl.agents.replay_buffer import obs_spec_from_space
    from robot_rl.agents.sac import Policy, SACConfig

    torch.set_num_threads(1)
    env = sim.make_env("pick_cube", max_episode_steps=12)
    spec = obs_spec_from_space(env.observation_space)
    policy = Policy(spec, SACConfig(hidden=(32, 32)))
    endpoint = _endpoint()
    server = LearnerServer(endpoint, "ab", timing=FAST).start()
    client = ActorClient(endpoint, "actor-3", "ab", tmp_path / "spool", timing=FAST).start()
    actor = Actor(
        env, policy, client, batch_steps=5, operator=_AlwaysTakeOver(), max_episode_steps=12
    )
    new = {k: np.full_like(v, 0.01) for k, v in policy.actor_parameters().items()}
    server.publish_weights(new, version=42)
    deadline = time.monotonic() + 10
    while client.connected is False and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    stats = actor.run_episode("train", seed=3)
    assert client.flush(10)
    msgs = server.receive()
    batches = [m for m in msgs if m.kind == "transitions"]
    assert [len(m.arrays["step"]) for m in batches] == [5, 5, 3]  # streamed during the episode
    rows = {k: np.concatenate([m.arrays[k] for m in batches]) for k in batches[0].arrays}
    assert rows["step"].tolist() == list(range(13)) and set(rows["episode_id"].tolist()) == {0}
    assert rows["is_first"].tolist() == [True] + [False] * 12 and rows["is_last"].tolist() == [
        False
    ] * 12 + [True]
    assert rows["intervened"][:12].tolist() == [True, False] * 6 and not rows["intervened"][12]
    np.testing.assert_allclose(
        rows["action"][0:12:2, 2], -0.5
    )  # the executed action is the operator's
    assert not np.allclose(rows["action"][1:12:2], rows["action"][0:12:2])
    assert np.all(rows["policy_version"] == 42) and actor.policy_version == 42
    assert all(np.array_equal(v, new[k]) for k, v in policy.actor_parameters().items())
    assert all(m.actor_id == "actor-3" for m in msgs)
    [stat] = [m for m in msgs if m.kind == "stats"]
    assert (
        stat.meta["steps"] == 12
        and stat.meta["takeovers"] == 6
        and stat.meta["intervened_steps"] == 6
    )
    assert stats.steps == 12
    client.close()
    server.close()
    env.close()


def test_paced_actor_waits_for_new_weights_only_in_training_and_only_when_trained(tmp_path):
    import sim
    from robot_rl.agents.replay_buffer import obs_spec_from_space
    from robot_rl.agents.sac import Policy, SACConfig

    torch.set_num_threads(1)
    env = sim.make_env("pick_cube", max_episode_steps=12)
    policy = Policy(obs_spec_from_space(env.observation_space), SACConfig(hidden=(32, 32)))
    endpoint = _endpoint()
    server = LearnerServer(endpoint, "ab", timing=FAST).start()
    client = ActorClient(endpoint, "actor-0", "ab", tmp_path / "spool", timing=FAST).start()
    actor = Actor(
        env,
        policy,
        client,
        batch_steps=5,
        max_episode_steps=12,
        steps_per_weights=5,
        pace_timeout_s=0.4,
    )
    weights = policy.actor_parameters()
    server.publish_weights(weights, version=0)  # the learner has not trained yet: no pacing
    deadline = time.monotonic() + 10
    while not client.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    actor.run_episode("train", seed=0)
    assert actor.paced_s == 0.0
    server.publish_weights(weights, version=50)
    time.sleep(0.3)
    actor.run_episode("eval", seed=1)  # evaluation never waits
    assert actor.paced_s == 0.0 and actor.policy_version == 50
    actor.run_episode("train", seed=2)  # 12 steps on v50 and nothing newer: waits at steps 5 and 10
    assert 0.8 - 0.05 <= actor.paced_s < 2.0, actor.paced_s

    def publish_later():
        time.sleep(0.1)
        server.publish_weights(weights, version=100)

    import threading

    threading.Thread(target=publish_later).start()
    before = actor.paced_s
    actor.run_episode(
        "train", seed=3
    )  # the first wait ends when v100 arrives, the second times out
    assert actor.policy_version == 100 and actor.paced_s - before < 0.8 - 0.05

    # a warm-up (WSRL's learning_starts) publishes nothing new: no waiting during it
    warm = Actor(
        env,
        policy,
        client,
        batch_steps=5,
        max_episode_steps=12,
        steps_per_weights=5,
        pace_timeout_s=0.4,
        pace_after_steps=24,
    )
    server.publish_weights(weights, version=150)
    time.sleep(0.3)
    warm.run_episode("train", seed=4)
    warm.run_episode("train", seed=5)
    assert warm.policy_version == 150 and warm.paced_s == 0.0
    warm.run_episode("train", seed=6)  # past the warm-up: waits at steps 5 and 10 again
    assert warm.paced_s >= 0.8 - 0.05, warm.paced_s
    client.close()
    server.close()
