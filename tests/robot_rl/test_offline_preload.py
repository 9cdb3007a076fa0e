"""The learner preloads its offline buffer from episode stores named in the run config's `offline`
section: filtered on task/source/success, demonstrations whole, interventions as segments, kept
by the checkpoint on resume; bad stores and filters are refused with one message each."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from store_testdata import make_episode

from controllers.config import ConfigError
from robot_rl.loop.learner import InterventionSegments, Learner
from robot_rl.loop.run_config import LearnerConfig, RunConfig, load_run_config
from robot_rl.loop.train_job import free_endpoint
from robot_rl.store import EpisodeInfo, EpisodeStore

SPEC = {"tcp_pose": ((7,), np.dtype(np.float32)), "gripper_width": ((1,), np.dtype(np.float32))}
# seed: (task, source, success); odd seeds carry intervened steps (store_testdata)
EPISODES = {
    2: ("pick_cube", "demo", True),
    4: ("pick_cube", "demo", False),
    5: ("pick_cube", "intervention", False),
    6: ("pick_cube", "sim", True),  # no intervened step: nothing for the offline buffer
    8: ("peg_insert", "demo", True),  # another task
}


def _write_store(path: Path, seeds, action_dim: int = 7) -> Path:
    with EpisodeStore.open(path, "a") as store:
        for seed in seeds:
            ep = make_episode(seed)
            for key in ("action", "policy_action"):
                ep[key] = ep[key][:, :action_dim]
            task, source, success = EPISODES[seed]
            store.append(ep, EpisodeInfo(task=task, source=source, success=success, seed=seed))
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _config(offline: list[dict]) -> RunConfig:
    return load_run_config(
        None,
        {
            "sac": {"hidden": [32, 32]},
            "learner": {"replay_capacity": 500},
            "offline": offline,
        },
    )


def _learner(cfg: RunConfig, run_dir: Path, spec=SPEC, resume: bool = False) -> Learner:
    return Learner(cfg, spec, run_dir, resume=resume, endpoint=free_endpoint())


def _segments(seed: int) -> dict[str, np.ndarray]:
    return InterventionSegments().feed("s", make_episode(seed))


def test_filtered_episodes_are_preloaded_whole_or_as_segments_and_kept_on_resume(tmp_path):
    store = _write_store(tmp_path / "demos.zarr", sorted(EPISODES))
    before = _digest(store)
    cfg = _config(
        [
            {"store": str(store), "source": ["demo"], "success": True},
            {"store": str(store), "source": ["intervention", "sim"]},
        ]
    )
    learner = _learner(cfg, tmp_path / "run")
    try:
        segment = _segments(5)
        assert learner.preloaded == [
            {"store": str(store), "episodes": 1, "demos": 1, "rows": 13},
            {"store": str(store), "episodes": 1, "demos": 0, "rows": len(segment["is_first"])},
        ]
        assert 0 < len(segment["is_first"]) < 13
        off = learner.offline
        assert off.rows_written == 13 + len(segment["is_first"]) and learner.online.size == 0
        np.testing.assert_array_equal(off.obs["tcp_pose"][:13], make_episode(2)["tcp_pose"])
        np.testing.assert_array_equal(
            off.obs["tcp_pose"][13 : off.rows_written], segment["tcp_pose"]
        )
        assert off.size == 12 + int((~segment["is_last"]).sum())
        learner.save(0.0)
    finally:
        learner.close()
    saved = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())
    assert "offline" not in saved["run"]  # the stores may move or grow between resumes
    resumed = _learner(cfg, tmp_path / "run", resume=True)
    try:
        # the checkpoint holds the offline buffer as it was: the stores are not read twice
        assert resumed.preloaded == [] and resumed.offline.rows_written == off.rows_written
    finally:
        resumed.close()
    assert _digest(store) == before


def test_a_folder_of_stores_is_read_whole(tmp_path, caplog):
    _write_store(tmp_path / "episodes" / "actor-0.zarr", [2])
    _write_store(tmp_path / "episodes" / "actor-1.zarr", [4, 6])
    caplog.set_level("INFO", logger="robot_rl.loop.offline")
    learner = _learner(_config([{"store": str(tmp_path / "episodes")}]), tmp_path / "run")
    try:
        assert [(r["episodes"], r["rows"]) for r in learner.preloaded] == [(1, 13), (1, 13)]
    finally:
        learner.close()
    assert "preloaded 1 episodes (1 demonstrations) as 13 offline rows from" in caplog.text
    assert "actor-1.zarr" in caplog.text


def test_bad_stores_and_filters_are_named(tmp_path):
    store = _write_store(tmp_path / "demos.zarr", [2, 6])

    def refused(offline, match, spec=SPEC, run="run"):
        with pytest.raises(ConfigError, match=match):
            _learner(_config(offline), tmp_path / run, spec=spec)

    refused([{"store": str(tmp_path / "nowhere.zarr")}], r"offline\[0\]\.store: .* does not exist")
    (tmp_path / "empty").mkdir()
    refused([{"store": str(tmp_path / "empty")}], "neither an episode store nor a folder")
    refused(
        [{"store": str(store)}],
        r"lacks the observation key\(s\) \['object_pose'\] the policy reads",
        spec={**SPEC, "object_pose": ((7,), np.dtype(np.float32))},
    )
    refused(
        [{"store": str(store)}],
        r"other shapes than the policy reads \(tcp_pose: store \(7,\), policy \(9,\)\)",
        spec={**SPEC, "tcp_pose": ((9,), np.dtype(np.float32))},
    )
    refused(
        [{"store": str(store)}, {"store": str(store), "source": ["real"]}],
        r"offline\[1\]: no episode in .* matches task 'pick_cube', source \['real'\].*"
        r"it holds 1 pick_cube/demo/success, 1 pick_cube/sim/success",
    )
    refused(
        [{"store": str(_write_store(tmp_path / "six.zarr", [2], action_dim=6))}],
        "holds 6-dimensional actions, the agent acts in 7",
    )


def test_offline_section_is_validated_at_load():
    with pytest.raises(ConfigError, match=r"offline\[0\]\.source\[0\]: 'teleop' is not one of"):
        _config([{"store": "x", "source": ["teleop"]}])
    with pytest.raises(ConfigError, match="an empty list matches nothing"):
        _config([{"store": "x", "source": []}])
    with pytest.raises(ConfigError, match="unknown key"):
        _config([{"path": "x"}])
    with pytest.raises(ConfigError, match="learner.offline is 'none'"):
        RunConfig(learner=LearnerConfig(offline="none"), offline=_config([{"store": "x"}]).offline)
    # stores alone can feed symmetric sampling: no demos, no operator needed
    cfg = load_run_config(
        None, {"demos": 0, "operator": {"enabled": False}, "offline": [{"store": "x"}]}
    )
    assert cfg.offline[0].store == "x" and cfg.offline[0].source is None
