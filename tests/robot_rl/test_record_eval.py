"""`robot-rl eval` on an untrained SAC checkpoint in the twin, recording to a store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from controllers.config import to_dict
from robot_rl.agents.checkpoint import load_policy, read_checkpoint_info
from robot_rl.cli import main
from robot_rl.store import EpisodeStore


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from robot_rl.agents.checkpoint import save_checkpoint
    from robot_rl.agents.replay_buffer import obs_spec_from_space
    from robot_rl.agents.sac import SACAgent, SACConfig
    from robot_rl.loop.run_config import RunConfig
    from sim import make_env

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = RunConfig(task="pick_cube", env={"max_episode_steps": 6}, sac=SACConfig(hidden=(32, 32)))
    env = make_env("pick_cube", cfg.env)
    spec = obs_spec_from_space(env.observation_space)
    agent = SACAgent(spec, cfg.sac)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint"
    config = {
        "run": to_dict(cfg),
        "obs_spec": {k: [list(s), d.str] for k, (s, d) in spec.items()},
    }
    save_checkpoint(path, agent, config, {})
    return path


def test_eval_reports_success_rate_with_seeds_and_records(checkpoint, tmp_path, capsys):
    store_path = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                str(checkpoint),
                "--task",
                "pick_cube",
                "--episodes",
                "2",
                "--seed",
                "5",
                "--record",
                str(store_path),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 2 and result["seeds"] == [5, 6]
    assert (
        result["success_rate"] == 0.0 and result["mean_time_to_success_s"] is None
    )  # an untrained policy
    store = EpisodeStore.open(store_path)
    assert [i.seed for i in store.infos()] == [5, 6]
    assert all(i.source == "sim" and not i.success for i in store.infos())
    # The recorded actions are the deterministic policy's actions on the recorded observations.
    info = read_checkpoint_info(checkpoint)
    policy = load_policy(info)
    ep = store.episode(0)
    for t in range(3):
        obs = {k: ep[k][t] for k in info.obs_spec}
        np.testing.assert_allclose(ep["action"][t], policy.act(obs, deterministic=True), atol=1e-5)
    assert len(ep["is_first"]) == 7  # the checkpoint's env config (max 6 steps) is used


def test_eval_errors_name_the_checkpoint(checkpoint, tmp_path):
    with pytest.raises(SystemExit, match="not a checkpoint directory"):
        main(["eval", str(tmp_path), "--task", "pick_cube", "--episodes", "1"])
    with pytest.raises(SystemExit, match="episodes: 0 must be >= 1"):
        main(["eval", str(checkpoint), "--task", "pick_cube", "--episodes", "0"])
