"""Run config loading, the learner's TensorBoard scalars, and refusing to overwrite a run."""

from __future__ import annotations

import io
import signal

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from controllers.config import ConfigError
from robot_rl.loop.run_config import RunConfig, load_run_config


def test_experiment_yaml_sections_load_and_bad_keys_are_named(tmp_path):
    cfg = load_run_config(
        "config/sim_pick_cube.yaml"
    )  # the twin's experiment file: task + env sections
    assert cfg.task == "pick_cube" and cfg.env["max_episode_steps"] == 100
    run_file = tmp_path / "run.yaml"
    run_file.write_text("num_actors: 4\nlearner:\n  publish_every: 10\n")
    cfg = load_run_config(run_file)
    assert cfg.num_actors == 4 and cfg.learner.publish_every == 10
    run_file.write_text("learner:\n  publish_evry: 10\n")
    with pytest.raises(ConfigError, match="learner: unknown key"):
        load_run_config(run_file)
    run_file.write_text("transport:\n  endpoint: http://x\n")
    with pytest.raises(ConfigError, match="transport.endpoint"):
        load_run_config(run_file)
    run_file.write_text("learner:\n  max_update_to_data: 0\n")
    with pytest.raises(ConfigError, match="learner.max_update_to_data"):
        load_run_config(run_file)
    run_file.write_text("actor_pace_timeout_s: 0\n")
    with pytest.raises(ConfigError, match="actor_pace_timeout_s: must be > 0"):
        load_run_config(run_file)


def test_data_hash_ignores_where_the_learner_listens_but_not_the_agent():
    a, b = RunConfig(), RunConfig()
    b.transport.endpoint = "tcp://10.0.0.2:6000"
    assert a.data_hash() == b.data_hash()
    b.sac.discount = 0.9
    assert a.data_hash() != b.data_hash()


def _rows(n: int) -> dict[str, np.ndarray]:
    """One episode of `n` rows of an actor batch for the tcp_pose-only spec."""
    return {
        "tcp_pose": np.zeros((n, 7), np.float32),
        "action": np.zeros((n, 7), np.float32),
        "policy_action": np.zeros((n, 7), np.float32),
        "reward": np.zeros(n, np.float32),
        "intervened": np.zeros(n, bool),
        "success_prob": np.zeros(n, np.float32),
        "policy_version": np.zeros(n, np.int64),
        "timestamp": np.zeros(n),
        "is_first": np.arange(n) == 0,
        "is_last": np.arange(n) == n - 1,
        "is_terminal": np.zeros(n, bool),
        "episode_id": np.zeros(n, np.int64),
        "step": np.arange(n),
    }


def test_tensorboard_reads_the_learners_scalars_at_its_env_steps(tmp_path):
    from robot_rl.loop.learner import CSV_FIELDS, Learner
    from robot_rl.loop.progress import ProgressLine
    from robot_rl.loop.train_job import free_endpoint
    from robot_rl.transport.protocol import Message

    spec = {"tcp_pose": ((7,), np.dtype(np.float32))}
    cfg = RunConfig()
    console = io.StringIO()
    learner = Learner(cfg, spec, tmp_path, endpoint=free_endpoint(), progress=ProgressLine(console))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        batch = Message("transitions", "a0", cfg.data_hash(), arrays=_rows(4), meta={})
        learner.ingest(batch)  # 3 env steps: the last row only carries the final observation
        learner.ingest(Message("stats", "a0", meta={"mode": "train", "success": True, "steps": 3}))
        learner._report(1.0, 5.0, 3.0)
        learner.ingest(batch)
        learner.run(total_env_steps=6)  # spent already: the final report, at 6 env steps
    finally:
        learner.close()
        for sig, handler in handlers.items():  # run() took Ctrl-C over, to stop cleanly
            signal.signal(sig, handler)
    (event_file,) = (tmp_path / "tb").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(CSV_FIELDS) - {"env_steps"}
    updates_per_s = events.Scalars("updates_per_s")
    assert [e.step for e in updates_per_s] == [3, 6] and updates_per_s[0].value == 5.0
    assert [e.value for e in events.Scalars("success_rate")] == [1.0, 1.0]
    assert [e.value for e in events.Scalars("demo_steps")] == [0.0, 0.0]
    # the console saw the progress line of both reports, the final one included
    lines = console.getvalue().splitlines()
    assert len(lines) == 2 and " steps 3 " in lines[0] and " steps 6 " in lines[1]


def test_learner_refuses_to_overwrite_a_run_without_resume(tmp_path):
    from robot_rl.loop.learner import Learner

    spec = {"tcp_pose": ((7,), np.dtype(np.float32))}
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(FileExistsError, match="pass --resume"):
        Learner(RunConfig(), spec, tmp_path, endpoint="tcp://127.0.0.1:0")
    with pytest.raises(FileNotFoundError, match="holds no run"):
        Learner(RunConfig(), spec, tmp_path / "empty", resume=True, endpoint="tcp://127.0.0.1:0")
