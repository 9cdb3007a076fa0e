"""Run config loading, TensorBoard event records, and the learner refusing to overwrite a run."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from controllers.config import ConfigError
from robot_rl.loop.run_config import RunConfig, load_run_config
from robot_rl.tb_events import EventWriter, _masked_crc, crc32c


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


def test_event_file_records_have_valid_lengths_and_checksums(tmp_path):
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    writer = EventWriter(tmp_path)
    writer.scalars(7, {"eval_success_rate": 0.5, "updates_per_s": 12.0})
    writer.close()
    data = writer.path.read_bytes()
    records, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        assert struct.unpack_from("<I", data, pos + 8)[0] == _masked_crc(data[pos : pos + 8])
        body = data[pos + 12 : pos + 12 + length]
        assert struct.unpack_from("<I", data, pos + 12 + length)[0] == _masked_crc(body)
        records.append(body)
        pos += 12 + length + 4
    assert len(records) == 2 and b"brain.Event:2" in records[0]
    assert b"eval_success_rate" in records[1] and struct.pack("<f", 0.5) in records[1]
    assert records[1][9:11] == b"\x10\x07"  # step 7 follows the wall time


def test_learner_refuses_to_overwrite_a_run_without_resume(tmp_path):
    from robot_rl.loop.learner import Learner

    spec = {"tcp_pose": ((7,), np.dtype(np.float32))}
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(FileExistsError, match="pass --resume"):
        Learner(RunConfig(), spec, tmp_path, endpoint="tcp://127.0.0.1:0")
    with pytest.raises(FileNotFoundError, match="holds no run"):
        Learner(RunConfig(), spec, tmp_path / "empty", resume=True, endpoint="tcp://127.0.0.1:0")
