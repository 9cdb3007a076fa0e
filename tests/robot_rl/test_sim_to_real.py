"""The pieces of the sim-to-real study (scripts/sim_to_real.py): the shifted cell's config,
learner.init_checkpoint (a run starts from the twin main job's checkpoint with fresh buffers and
counters; what does not fit is refused and named), the zero-shot evaluation on another run
config, learner.stop_at_eval_success."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from controllers.config import ConfigError, from_dict, load_yaml
from robot_rl.agents.checkpoint import _weights
from robot_rl.agents.sac import Policy
from robot_rl.cli import main
from robot_rl.loop.actor import Actor, learner_client
from robot_rl.loop.curves import SuccessTime, time_to_success
from robot_rl.loop.learner import EVAL_WINDOW, Learner, open_init_checkpoint
from robot_rl.loop.run_config import RunConfig, load_run_config
from robot_rl.loop.train_job import (
    _first_policy_version,
    _wait_for_weights,
    free_endpoint,
    make_env,
    obs_spec,
)
from robot_rl.store import EpisodeStore
from robot_rl.store.recorder import run_episode
from robot_rl.transport.protocol import Message

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[2] / "config"
SMALL = {"batch_size": 4, "learning_starts": 1, "replay_capacity": 100}


def _config(name: str, **changes) -> RunConfig:
    """config/NAME with short episodes, a small learner and `changes` merged into its sections."""
    data = load_yaml(CONFIG / name)
    data["env"]["max_episode_steps"] = 6
    data["learner"] = {**SMALL, **data.get("learner", {})}
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return from_dict(RunConfig, data)


def _message(cfg: RunConfig, kind: str, mode: str, arrays=None, **meta) -> Message:
    return Message(kind, "a0", cfg.data_hash(), arrays=arrays or {}, meta={"mode": mode, **meta})


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory):
    """The main job's recipe (privileged twin) trained a few updates and checkpointed by its
    learner: (checkpoint, learner agent, an episode's rows)."""
    torch.manual_seed(0)
    cfg = _config("sim_pick_cube.yaml")
    env = make_env(cfg)
    spec = obs_spec(env)
    rng = np.random.default_rng(0)
    episode, _ = run_episode(env, lambda obs: rng.uniform(-1, 1, 7), seed=1)
    env.close()
    run_dir = tmp_path_factory.mktemp("twin") / "run"
    learner = Learner(cfg, spec, run_dir, endpoint=free_endpoint())
    try:
        learner.ingest(_message(cfg, "transitions", "train", episode))
        for _ in range(3):
            learner.agent.update(learner.online.sample(4, learner.rng, 1, 0.97))
        learner.run(max_wall_s=0.01)
    finally:
        learner.close()
    return run_dir / "checkpoint", learner.agent, episode


def _shifted(checkpoint: Path, **changes) -> RunConfig:
    return _config(
        "sim_pick_cube_shifted.yaml",
        learner={"init_checkpoint": str(checkpoint), **changes.pop("learner", {})},
        **changes,
    )


def test_a_tracked_run_starts_from_the_twins_checkpoint(twin_run, tmp_path):
    checkpoint, twin, episode = twin_run
    cfg = _shifted(checkpoint, sac={"actor_lr": 1e-4})
    assert cfg.tracker is not None and not cfg.env["privileged_state"]
    learner = Learner(cfg, cfg.obs_spec(), tmp_path / "ft", endpoint=free_endpoint())
    try:
        agent = learner.agent
        # every network, the fitted normaliser and the temperature, as they were
        theirs, ours = _weights(twin), _weights(agent)
        assert list(ours) == list(theirs)
        for key in theirs:
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
        assert bool(agent.policy.normalizer.fitted)
        for t in range(3):
            obs = {k: episode[k][t] for k in agent.policy.read_keys}
            np.testing.assert_array_equal(
                agent.act(obs, deterministic=True), twin.act(obs, deterministic=True)
            )
        # the optimiser's moments, under this run's learning rate
        saved, loaded = twin.actor_opt.state_dict(), agent.actor_opt.state_dict()
        for idx, state in saved["state"].items():
            torch.testing.assert_close(loaded["state"][idx]["exp_avg"], state["exp_avg"])
        assert loaded["param_groups"][0]["lr"] == 1e-4
        # fresh counters and buffers: not a resume
        assert (agent.critic_steps, agent.actor_steps, learner.env_steps) == (0, 0, 0)
        assert learner.online.size == learner.offline.size == 0
        # demonstrations still go to the offline buffer only
        learner.ingest(_message(cfg, "transitions", "demo", episode))
        assert learner.offline.size > 0 and learner.online.size == 0
        assert learner.demo_episodes == 1
    finally:
        learner.close()


def test_actors_wait_for_the_learners_first_weights(twin_run, tmp_path):
    checkpoint, twin, episode = twin_run
    cfg = _shifted(checkpoint)
    assert _first_policy_version(cfg) == 0
    assert _first_policy_version(_shifted(checkpoint, learner={"init_checkpoint": ""})) is None
    endpoint = free_endpoint()
    learner = Learner(cfg, cfg.obs_spec(), tmp_path / "ft", endpoint=endpoint)
    # what Learner.run does first: serve, and publish the weights it starts with (version 0)
    learner.server.start()
    learner.server.publish_weights(learner.agent.actor_parameters(), learner.agent.critic_steps)
    torch.manual_seed(1)
    policy = Policy(cfg.obs_spec(), replace(cfg.sac, device="cpu"))  # as the actor process does
    obs = {k: episode[k][0] for k in policy.read_keys}
    client = learner_client(cfg, endpoint, "a0", str(tmp_path / "spool"), policy.read_keys)
    actor = Actor(None, policy, client, max_episode_steps=6)
    try:
        assert not actor.has_weights
        assert not np.allclose(
            policy.act(obs, deterministic=True), twin.act(obs, deterministic=True), atol=1e-3
        )
        started = time.monotonic()
        _wait_for_weights(actor, client, _first_policy_version(cfg), {"now": False})
        assert time.monotonic() - started < 10.0
        assert actor.has_weights and actor.policy_version == 0
        np.testing.assert_allclose(
            policy.act(obs, deterministic=True), twin.act(obs, deterministic=True), atol=1e-6
        )
    finally:
        client.close()
        learner.close()


def test_what_does_not_fit_is_refused_and_named(twin_run, tmp_path):
    checkpoint, _, _ = twin_run

    def refused(cfg: RunConfig, *messages: str) -> None:
        with pytest.raises(ConfigError, match="learner.init_checkpoint") as err:
            open_init_checkpoint(cfg, cfg.obs_spec())
        for message in messages:
            assert message in str(err.value), str(err.value)

    open_init_checkpoint(_shifted(checkpoint), _shifted(checkpoint).obs_spec())
    refused(_shifted(tmp_path), "not a checkpoint directory")
    refused(_shifted(checkpoint / "weights.safetensors"), "not a checkpoint directory")
    refused(
        _shifted(checkpoint, sac={"relative_positions": []}),
        "sac.relative_positions: checkpoint has [['object_pose', 'tcp_pose']], this run has []",
    )
    refused(_shifted(checkpoint, sac={"hidden": [64, 64]}), "sac.hidden: checkpoint has")
    refused(_shifted(checkpoint, sac={"arm_action_dims": [0, 1, 2, 5]}), "sac.arm_action_dims")
    refused(
        _shifted(checkpoint, env={"pos_scale": 0.02}), "env.pos_scale: checkpoint 0.01, this run"
    )
    # the image twin observes no object_pose: other keys read, one key missing
    image = from_dict(
        RunConfig,
        {
            "env": {"privileged_state": False, "cameras": ["wrist"]},
            "learner": {"init_checkpoint": str(checkpoint)},
        },
    )
    refused(image, "proprio keys: checkpoint reads", "object_pose: checkpoint (7,) float32")
    # the train job refuses it before starting any process (the defaults read no relative
    # position)
    with pytest.raises(SystemExit, match="(?s)robot-rl train: learner.init_checkpoint: .*relative"):
        main(["train", "--out", str(tmp_path / "refused"), "--init-checkpoint", str(checkpoint)])
    assert not (tmp_path / "refused" / "checkpoint").exists()


def test_a_fine_tuned_run_resumes_its_own_checkpoint(twin_run, tmp_path):
    checkpoint, _, _ = twin_run
    cfg = _shifted(checkpoint)
    learner = Learner(cfg, cfg.obs_spec(), tmp_path / "ft", endpoint=free_endpoint())
    try:
        learner.run(max_wall_s=0.01)
    finally:
        learner.close()
    # without the flag: a resume takes the run's own checkpoint, wherever it started from
    again = _shifted(checkpoint, learner={"init_checkpoint": ""})
    resumed = Learner(again, again.obs_spec(), tmp_path / "ft", resume=True)
    resumed.close()


def test_training_stops_once_a_full_evaluation_window_reaches_the_threshold(tmp_path):
    cfg = from_dict(
        RunConfig,
        {"env": {"max_episode_steps": 6}, "learner": {**SMALL, "stop_at_eval_success": 0.9}},
    )
    learner = Learner(cfg, cfg.obs_spec(), tmp_path / "run", endpoint=free_endpoint())
    assert "stop_at_eval_success" in learner._config_dict()["run"]["learner"]
    try:
        for i in range(EVAL_WINDOW + 4):
            assert not learner._eval_success_reached()  # not full, then 17 of 20
            learner.ingest(_message(cfg, "stats", "eval", success=i not in (3, 7, 11)))
        assert learner._eval_success_reached()  # 18 of the last 20: 0.90
        started = time.monotonic()
        learner.run(max_wall_s=60.0)
        assert time.monotonic() - started < 10.0
    finally:
        learner.close()
    with pytest.raises(ConfigError, match=r"learner.stop_at_eval_success: must be in \(0, 1\]"):
        from_dict(RunConfig, {"learner": {"stop_at_eval_success": 1.5}})
    # runs that use neither key write the checkpoint config they always wrote
    plain = Learner(RunConfig(), cfg.obs_spec(), tmp_path / "plain", endpoint=free_endpoint())
    try:
        assert {"init_checkpoint", "stop_at_eval_success"}.isdisjoint(
            plain._config_dict()["run"]["learner"]
        )
    finally:
        plain.close()


def test_the_shifted_cell_is_the_tracked_recipe_at_an_edge():
    shifted = load_run_config(CONFIG / "sim_pick_cube_shifted.yaml")
    tracked = load_run_config(CONFIG / "sim_pick_cube_tracked.yaml")
    r = shifted.env_config().randomization
    assert (r.friction_scale, r.mass_scale, r.light_scale) == ((0.6, 0.6), (1.5, 1.5), (0.5, 0.5))
    assert r.camera_pos_offset == (0.003, 0.003, 0.003)
    assert r.camera_rot_offset == (0.0175, 0.0, 0.0)
    # nothing random beyond the tracked recipe's object placement and joint noise
    assert r.light_pos_jitter == r.camera_pos_jitter == r.camera_rot_jitter == 0.0
    # everything but the cell is the tracked recipe: the same observations, agent and tracker
    assert shifted.obs_spec() == tracked.obs_spec()
    assert (shifted.sac, shifted.tracker, shifted.learner) == (
        tracked.sac,
        tracked.tracker,
        tracked.learner,
    )
    plain = {k: v for k, v in shifted.env.items() if k != "randomization"}
    assert plain == {k: v for k, v in tracked.env.items() if k != "randomization"}


def test_zero_shot_evaluation_runs_the_checkpoint_in_another_runs_twin(twin_run, tmp_path, capsys):
    checkpoint, _, _ = twin_run
    shifted = CONFIG / "sim_pick_cube_shifted.yaml"
    store_path = tmp_path / "zero_shot.zarr"
    capsys.readouterr()
    args = ["eval", str(checkpoint), "--config", str(shifted), "--episodes", "1"]
    assert main([*args, "--record", str(store_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"] == str(shifted) and result["episodes"] == 1
    with EpisodeStore.open(store_path) as store:
        env = store.config(store.info(0).config_hash)
    assert env["cameras"] == ["wrist"] and not env["privileged_state"]  # the tracked twin
    assert env["randomization"]["camera_pos_offset"] == [0.003, 0.003, 0.003]
    for config, message in (
        ({"env": {"privileged_state": False}}, "object_pose: checkpoint (7,) float32, env has no"),
        ({"env": {"pos_scale": 0.02}}, "env.pos_scale: checkpoint 0.01, this run 0.02"),
        ({"task": "peg_insert"}, "trained on task 'pick_cube', the run config is for"),
    ):
        path = tmp_path / "other.yaml"
        path.write_text(yaml.safe_dump({"task": "pick_cube", **config}))
        with pytest.raises(SystemExit, match=re.escape(message)):
            main(["eval", str(checkpoint), "--config", str(path), "--episodes", "1"])


def _metrics_csv(run_dir: Path, arrivals: list[list[bool]]) -> Path:
    """metrics.csv as the learner writes it: one row per report, after the evaluation episodes
    of `arrivals[i]` came in; 100 online steps and 2 s between reports."""
    cfg = from_dict(RunConfig, {"env": {"max_episode_steps": 6}, "learner": SMALL})
    learner = Learner(cfg, cfg.obs_spec(), run_dir, endpoint=free_endpoint())
    try:
        for i, outcomes in enumerate(arrivals):
            for success in outcomes:
                learner.ingest(_message(cfg, "stats", "eval", success=success))
            learner.env_steps += 100
            learner._report(2.0 * (i + 1), 0.0, 0.0)
    finally:
        learner.close()
    return run_dir / "metrics.csv"


def _first_full_window(outcomes: list[bool], window: int, threshold: float) -> int | None:
    """Index of the episode that completes the first window at >= threshold."""
    for end in range(window, len(outcomes) + 1):
        if np.mean(outcomes[end - window : end]) >= threshold:
            return end - 1
    return None


def test_time_to_success_reads_the_trailing_evaluation_window(tmp_path):
    rng = np.random.default_rng(0)
    # a lucky start, a bad stretch, then better and better; at most one episode per report,
    # and reports without any
    outcomes = [True] * 6 + [False] * 10 + list(rng.random(80) < np.linspace(0.5, 1.0, 80))
    arrivals, report_of = [], []
    for success in outcomes:
        arrivals += [[]] * int(rng.integers(0, 3)) + [[bool(success)]]
        report_of.append(len(arrivals) - 1)
    metrics = _metrics_csv(tmp_path / "run", arrivals)

    def expected(window: int, threshold: float) -> SuccessTime | None:
        episode = _first_full_window(outcomes, window, threshold)
        if episode is None:
            return None
        row = report_of[episode]
        rate = float(np.mean(outcomes[episode + 1 - window : episode + 1]))
        return SuccessTime(2.0 * (row + 1), 100 * (row + 1), episode + 1, rate)

    for window in (EVAL_WINDOW, 10, 5):
        for threshold in (0.5, 0.9, 1.0):
            assert time_to_success(metrics, threshold, window) == expected(window, threshold)
    assert expected(EVAL_WINDOW, 0.9).eval_episodes > 20  # reached, and not by the lucky start
    # the first window counts only once it is full: 6 of 6 successes are not a rate of 1.0
    lucky = _metrics_csv(tmp_path / "lucky", [[True]] * 6 + [[False]])
    assert time_to_success(lucky, 0.9, 5) == SuccessTime(10.0, 500, 5, 1.0)
    assert time_to_success(lucky, 0.9) is None
    # two episodes, one failed, between two reports: a full logged window still reads, a shorter
    # one cannot be placed
    mixed = _metrics_csv(tmp_path / "mixed", [[True]] * 3 + [[True, False]] + [[True]] * 16)
    assert time_to_success(mixed, 0.9) == SuccessTime(38.0, 1900, 20, 0.95)
    with pytest.raises(ValueError, match="2 evaluation episodes arrived together"):
        time_to_success(mixed, 0.9, 10)
    with pytest.raises(ValueError, match="window: 21 must be in 1..20"):
        time_to_success(mixed, 0.9, 21)


def _script():
    spec = importlib.util.spec_from_file_location(
        "sim_to_real", CONFIG.parent / "scripts" / "sim_to_real.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_study_plans_zero_shot_then_finetune_and_scratch_runs_per_seed(twin_run, tmp_path):
    checkpoint, _, _ = twin_run
    study = _script()
    args = argparse.Namespace(
        out=str(tmp_path / "study"),
        pretrained=str(checkpoint),
        seeds=[0, 1],
        budget_s=300.0,
        stop_at_success=None,
        zero_shot_episodes=50,
    )
    (tmp_path / "study" / "scratch-s1" / "checkpoint").mkdir(parents=True)  # an interrupted run
    steps = study.plan(args)
    assert [s.name for s in steps] == [
        "zero_shot",
        "finetune-s0",
        "scratch-s0",
        "finetune-s1",
        "scratch-s1",
    ]
    shifted = str(CONFIG / "sim_pick_cube_shifted.yaml")
    assert steps[0].argv[:4] == ["eval", str(checkpoint), "--config", shifted]
    assert steps[0].argv[4:6] == ["--episodes", "50"]
    assert steps[-1].argv[-1] == "--resume" and "--resume" not in steps[1].argv
    configs = {s.name: load_run_config(s.argv[s.argv.index("--config") + 1]) for s in steps[1:]}
    for name, cfg in configs.items():
        assert cfg.seed == int(name[-1]) and cfg.max_wall_s == 300.0
        assert cfg.env == load_run_config(shifted).env and cfg.tracker is not None
        assert cfg.learner.init_checkpoint == (str(checkpoint) if "finetune" in name else "")
    open_init_checkpoint(configs["finetune-s0"], configs["finetune-s0"].obs_spec())
    # without a checkpoint the study trains the main job first and starts from its checkpoint
    args.pretrained = None
    steps = study.plan(args)
    assert steps[0].name == "pretrain" and str(CONFIG / "sim_pick_cube.yaml") in steps[0].argv
    pretrained = str((tmp_path / "study" / "pretrain" / "checkpoint").resolve())
    assert steps[1].argv[1] == pretrained
    finetune = load_run_config(steps[2].argv[steps[2].argv.index("--config") + 1])
    assert finetune.learner.init_checkpoint == pretrained


def _study_run(out: Path, name: str, reached_at: int | None, final: float, rows: int = 10):
    """A run folder: metrics.csv whose 20-episode window reaches 1.0 at row `reached_at` (one
    row every 10 s, 20 evaluation episodes per row), and summary.json."""
    run_dir = out / name
    run_dir.mkdir(parents=True)
    with open(run_dir / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["wall_s", "env_steps", "eval_success_rate", "eval_episodes"])
        writer.writeheader()
        for i in range(rows):
            rate = 1.0 if reached_at is not None and i >= reached_at else 0.5
            writer.writerow(
                {
                    "wall_s": 10.0 * i,
                    "env_steps": 100 * i,
                    "eval_success_rate": rate,
                    "eval_episodes": 20 * (i + 1),
                }
            )
    summary = {"eval_success_rate": final, "eval_episodes": 50, "env_steps": 999, "wall_s": 120.0}
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_the_study_summary_compares_median_times_to_success(tmp_path):
    study = _script()
    assert study.median_time([10.0, None, 30.0]) == 30.0
    assert study.median_time([10.0, 20.0]) == 15.0
    assert study.median_time([10.0, None, None]) is None and study.median_time([]) is None
    out = tmp_path / "study"
    (out).mkdir()
    (out / "zero_shot.json").write_text(json.dumps({"success_rate": 0.42, "episodes": 50}))
    for seed, (ft, scratch) in enumerate([(1, 6), (2, 8), (9, None)]):
        _study_run(out, f"finetune-s{seed}", ft, 0.96)
        _study_run(out, f"scratch-s{seed}", scratch, 0.9 if scratch else 0.5)
    result = study.study_summary(out, 0.9, 20)
    assert result["zero_shot"]["success_rate"] == 0.42
    assert result["median_time_to_success_s"] == {"finetune": 20.0, "scratch": 80.0}
    assert result["ratio"] == 0.25 and result["pretraining_halves_the_time"] is True
    assert result["finetune"][0]["time_to_success"] == {
        "wall_s": 10.0,
        "env_steps": 100,
        "eval_episodes": 40,
        "success_rate": 1.0,
    }
    assert result["scratch_median_final_success"] == 0.9 and result["scratch"][2]["done"]
    # half the scratch runs never got there: the ratio is bounded with their training time
    # (90 s) in place of their time to success, median (80 + 90) / 2
    _study_run(out, "scratch-s3", None, 0.5)
    result = study.study_summary(out, 0.9, 20)
    assert result["median_time_to_success_s"]["scratch"] is None and result["ratio"] is None
    assert result["ratio_at_most"] == pytest.approx(20.0 / 85.0)
    assert result["pretraining_halves_the_time"] is True
