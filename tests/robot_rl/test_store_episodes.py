"""Episode store on disk: round trip, plain-zarr reads, filters, bad input, failed writes."""

from __future__ import annotations

import errno
import json
import shutil
import warnings

import numpy as np
import pytest
import zarr
from store_testdata import assert_episode_equal, make_episode, make_info

import robot_rl.store.episodes as episodes_module
from robot_rl.store import SCHEMA_VERSION, CommitError, EpisodeInfo, EpisodeStore, StoreError


def write_store(path, seeds):
    with EpisodeStore.open(path, mode="a") as store:
        for seed in seeds:
            store.append(make_episode(seed), make_info(seed))


def test_round_trip_keeps_every_value_and_attribute(tmp_path):
    write_store(tmp_path / "s", range(5))
    store = EpisodeStore.open(tmp_path / "s")
    assert len(store) == 5
    assert store.num_steps == 5 * 13
    for seed in range(5):
        assert_episode_equal(store.episode(seed), make_episode(seed))
        assert store.info(seed) == make_info(seed)
    assert store.episode(-1)["policy_version"][0] == 4
    assert store.episode(0)["timestamp"].dtype == np.float64
    assert store.episode(0)["image_front"].dtype == np.uint8


def test_appending_after_reopen_continues_the_time_axis(tmp_path):
    write_store(tmp_path / "s", [0, 1])
    write_store(tmp_path / "s", [2])
    store = EpisodeStore.open(tmp_path / "s")
    np.testing.assert_array_equal(store.episode_ends, [13, 26, 39])
    assert_episode_equal(store.episode(2), make_episode(2))


def test_float64_observations_are_stored_as_float32(tmp_path):
    ep = make_episode(0)
    ep["tcp_pose"] = ep["tcp_pose"].astype(np.float64)
    with EpisodeStore.open(tmp_path / "s", mode="a") as store:
        store.append(ep, make_info(0))
    assert EpisodeStore.open(tmp_path / "s").episode(0)["tcp_pose"].dtype == np.float32


def test_plain_zarr_reads_the_store_without_project_code(tmp_path):
    write_store(tmp_path / "s", range(3))
    root = zarr.open_group(str(tmp_path / "s"), mode="r")
    assert root.attrs["robot_rl"] == {
        "format": "robot_rl.episodes",
        "schema_version": SCHEMA_VERSION,
    }
    ends = root["meta/episode_ends"][:]
    np.testing.assert_array_equal(ends, [13, 26, 39])
    start, end = ends[0], ends[1]
    want = make_episode(1)
    for key in want:
        np.testing.assert_array_equal(
            root[f"data/{key}"][start:end], want[key].astype(root[f"data/{key}"].dtype)
        )
    attrs = json.loads(str(root["meta/episode_attrs"][1]))
    assert attrs["source"] == "real" and attrs["seed"] == 1
    assert attrs["initial_state"]["object_pose"][1] == 1.0 / 3.0  # JSON floats round-trip exactly
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing in the directory that zarr does not recognise
        assert sorted(root.group_keys()) == ["data", "meta"]
        assert sorted(root["data"].array_keys()) == sorted(want)
    image = root["data/image_wrist"]
    assert image.chunks == (1, 16, 16, 3) and image.shards == (
        64,
        16,
        16,
        3,
    )  # one frame per (inner) chunk
    assert image.compressors[0].to_dict()["name"] == "blosc"


def test_images_are_compressed(tmp_path):
    ep = make_episode(0, steps=20, image_shape=(64, 64, 3))
    ep["image_wrist"][:] = 0
    ep["image_wrist"][:, 20:40, 10:30] = (200, 30, 30)  # a flat-coloured cube on a flat background
    with EpisodeStore.open(tmp_path / "s", mode="a") as store:
        store.append(ep, make_info(0))
    files = [f for f in (tmp_path / "s/data/image_wrist").iterdir() if f.name.startswith("c.")]
    assert [f.name for f in files] == ["c.0.0.0.0"]  # 21 frames, one shard
    assert sum(f.stat().st_size for f in files) < 0.05 * ep["image_wrist"].nbytes


def test_filters_by_success_source_task_and_interventions(tmp_path):
    write_store(tmp_path / "s", range(12))
    store = EpisodeStore.open(tmp_path / "s")
    assert store.select(success=True) == [0, 3, 6, 9]
    assert store.select(success=False) == [1, 2, 4, 5, 7, 8, 10, 11]
    assert store.select(source="demo") == [2, 6, 10]
    assert store.select(source=("demo", "intervention")) == [2, 3, 6, 7, 10, 11]
    assert store.select(task="peg_insert") == [0, 4, 8]
    with_interventions = [i for i in range(12) if make_episode(i)["intervened"].any()]
    assert with_interventions and store.select(intervened=True) == with_interventions
    assert store.select(intervened=False) == sorted(set(range(12)) - set(with_interventions))
    assert store.select(success=True, source="intervention") == [3]
    assert [int(e["policy_version"][0]) for e in store.episodes(source="sim")] == [0, 4, 8]
    with pytest.raises(StoreError, match="'robot'"):
        store.select(source="robot")


def test_summary_counts_steps_success_and_interventions(tmp_path):
    write_store(tmp_path / "s", range(6))
    summary = EpisodeStore.open(tmp_path / "s").summary()
    assert summary["episodes"] == 6 and summary["steps"] == 6 * 12
    assert summary["success_rate"] == pytest.approx(2 / 6)
    flags = np.concatenate([make_episode(i)["intervened"][:-1] for i in range(6)])
    assert summary["intervention_share"] == pytest.approx(flags.mean())
    assert summary["bytes_on_disk"] > 0
    assert summary["sources"] == {"sim": 2, "real": 2, "demo": 1, "intervention": 1}


def test_a_second_writer_is_refused(tmp_path):
    with EpisodeStore.open(tmp_path / "s", mode="a"):
        with pytest.raises(StoreError, match="another process is writing"):
            EpisodeStore.open(tmp_path / "s", mode="a")
    EpisodeStore.open(tmp_path / "s", mode="a").close()


# ---- bad input -------------------------------------------------------------------------------
def test_missing_path_and_non_store_paths_are_named(tmp_path):
    with pytest.raises(StoreError, match="no such episode store"):
        EpisodeStore.open(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not an episode store"):
        EpisodeStore.open(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="empty.*not an episode store"):
        EpisodeStore.open(tmp_path / "empty")
    zarr.open_group(str(tmp_path / "other"), mode="w")
    with pytest.raises(StoreError, match="not a robot_rl episode store"):
        EpisodeStore.open(tmp_path / "other")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        EpisodeStore.open(tmp_path / "full", mode="a")


def test_newer_schema_version_is_refused_with_both_versions(tmp_path):
    write_store(tmp_path / "s", [0])
    root = zarr.open_group(str(tmp_path / "s"), mode="r+")
    root.attrs["robot_rl"] = {"format": "robot_rl.episodes", "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(
        StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*up to {SCHEMA_VERSION}"
    ):
        EpisodeStore.open(tmp_path / "s")


def test_missing_array_in_the_store_is_named(tmp_path):
    write_store(tmp_path / "s", [0])
    shutil.rmtree(tmp_path / "s/data/reward")
    with pytest.raises(StoreError, match="data/reward"):
        EpisodeStore.open(tmp_path / "s")
    shutil.rmtree(tmp_path / "s/meta/episode_ends")
    with pytest.raises(StoreError, match="meta/episode_ends"):
        EpisodeStore.open(tmp_path / "s")


def test_bad_episodes_are_refused_naming_the_key(tmp_path):
    with EpisodeStore.open(tmp_path / "s", mode="a") as store:
        store.append(make_episode(0), make_info(0))
        ep = make_episode(1)
        del ep["reward"]
        with pytest.raises(StoreError, match=r"episode 1.*missing step key\(s\) \['reward'\]"):
            store.append(ep, make_info(1))
        ep = make_episode(1)
        del ep["image_wrist"]
        with pytest.raises(StoreError, match=r"missing \['image_wrist'\]"):
            store.append(ep, make_info(1))
        ep = make_episode(1)
        ep["tcp_pose"] = ep["tcp_pose"][:-1]
        with pytest.raises(StoreError, match="tcp_pose"):
            store.append(ep, make_info(1))
        ep = make_episode(1)
        ep["is_last"][-1] = False
        with pytest.raises(StoreError, match="is_last"):
            store.append(ep, make_info(1))
        ep = make_episode(1, image_shape=(8, 8, 3))
        with pytest.raises(StoreError, match=r"image_(front|wrist)' rows have shape \(8, 8, 3\)"):
            store.append(ep, make_info(1))
        assert len(store) == 1
    with pytest.raises(ValueError, match="source"):
        EpisodeInfo(task="pick_cube", source="robot", success=True)
    with pytest.raises(StoreError, match="read-only"):
        EpisodeStore.open(tmp_path / "s").append(make_episode(1), make_info(1))


@pytest.mark.parametrize(
    "fail_after", [0, 1, 5]
)  # files written: a shard per camera, then a chunk per array
def test_disk_full_during_data_writes_keeps_the_store_consistent(tmp_path, monkeypatch, fail_after):
    write_store(tmp_path / "s", [0, 1])
    real_write = episodes_module._write_file
    calls = {"n": 0}

    def full_disk(path, payload, durable):
        calls["n"] += 1
        if calls["n"] > fail_after:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, payload, durable)

    with EpisodeStore.open(tmp_path / "s", mode="a") as store:
        monkeypatch.setattr(episodes_module, "_write_file", full_disk)
        with pytest.raises(
            CommitError, match=r"episode 2 \(task 'peg_insert'\), 12 steps, was not saved.*No space"
        ):
            store.append(make_episode(4), make_info(4))
        assert len(store) == 2
        monkeypatch.setattr(episodes_module, "_write_file", real_write)
        store.append(make_episode(5), make_info(5))  # the writer goes on once there is room again
    store = EpisodeStore.open(tmp_path / "s")
    assert len(store) == 3
    for i, seed in enumerate([0, 1, 5]):
        assert_episode_equal(store.episode(i), make_episode(seed))
        assert store.info(i) == make_info(seed)


def test_failing_zarr_write_during_commit_keeps_the_store_consistent(tmp_path, monkeypatch):
    from zarr.storage import LocalStore

    write_store(tmp_path / "s", [0])
    real_set = LocalStore.set

    async def failing_set(self, key, value):
        if key.startswith("meta/episode_ends"):  # the commit point itself fails
            raise OSError(errno.ENOSPC, "No space left on device")
        await real_set(self, key, value)

    with EpisodeStore.open(tmp_path / "s", mode="a") as store:
        monkeypatch.setattr(LocalStore, "set", failing_set)
        with pytest.raises(CommitError, match="episode 1 .* was not saved"):
            store.append(make_episode(1), make_info(1))
        monkeypatch.setattr(LocalStore, "set", real_set)
    store = EpisodeStore.open(tmp_path / "s")
    assert len(store) == 1
    assert_episode_equal(store.episode(0), make_episode(0))
    write_store(tmp_path / "s", [2])
    store = EpisodeStore.open(tmp_path / "s")
    assert len(store) == 2
    assert_episode_equal(store.episode(1), make_episode(2))


def test_load_into_a_replay_buffer_with_filters(tmp_path):
    from robot_rl.agents.replay_buffer import ReplayBuffer

    write_store(tmp_path / "s", range(8))
    store = EpisodeStore.open(tmp_path / "s")
    spec = {"tcp_pose": ((7,), np.float32), "image_front": ((16, 16, 3), np.uint8)}
    demos = ReplayBuffer(1000, spec)
    assert store.load_into(demos, source=("demo", "intervention")) == 4  # seeds 2, 3, 6, 7
    assert demos.size == 4 * 12  # every row but the last of each episode is a transition
    stored = {tuple(make_episode(s)["tcp_pose"][0]) for s in (2, 3, 6, 7)}
    rows = {tuple(r) for r in demos.obs["tcp_pose"][: demos.rows_written]}
    assert stored <= rows and tuple(make_episode(0)["tcp_pose"][0]) not in rows
    winners = ReplayBuffer(1000, spec)
    assert store.load_into(winners, success=True) == 3  # seeds 0, 3, 6


def test_a_missing_image_shard_is_reported_not_read_as_zeros(tmp_path):
    with EpisodeStore.open(tmp_path / "s", mode="a") as store:
        for seed in range(3):
            store.append(make_episode(seed, steps=40), make_info(seed))  # rows 0-40, 41-81, 82-122
    (tmp_path / "s/data/image_wrist/c.1.0.0.0").unlink()  # frames 64..127
    store = EpisodeStore.open(tmp_path / "s")
    assert_episode_equal(store.episode(0), make_episode(0, steps=40))
    with pytest.raises(StoreError, match=r"c.1.0.0.0: shard 1 of 'data/image_wrist' is missing"):
        store.episode(2)
