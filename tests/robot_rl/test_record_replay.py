"""Recording in the real MuJoCo twin, exact open-loop replay, the sim-to-real start, videos and
the data CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from store_testdata import assert_episode_equal

from robot_rl.cli import main
from robot_rl.cli.record import record_demos
from robot_rl.cli.replay import replay
from robot_rl.store import EpisodeInfo, EpisodeRecorder, EpisodeStore, decode_state


def test_recorder_builds_contract_rows():
    times = iter(range(100))
    rec = EpisodeRecorder(clock=lambda: float(next(times)))
    rec.start({"tcp_pose": np.zeros(7), "image_front": np.zeros((4, 4, 3), np.uint8)})
    for t in range(3):
        obs = {"tcp_pose": np.full(7, t + 1.0), "image_front": np.full((4, 4, 3), t + 1, np.uint8)}
        rec.step(
            np.full(7, 0.1 * t),
            obs,
            reward=float(t == 2),
            terminated=t == 2,
            intervened=t == 1,
            policy_action=np.full(7, -0.5),
            success_prob=0.9,
            policy_version=7,
        )
    ep = rec.finish()
    assert ep["tcp_pose"].shape == (4, 7) and ep["tcp_pose"][3, 0] == 3.0
    np.testing.assert_allclose(ep["action"][:, 0], [0.0, 0.1, 0.2, 0.0])  # the last row is padding
    np.testing.assert_array_equal(ep["policy_action"][:3], -0.5)
    np.testing.assert_array_equal(ep["reward"], [0, 0, 1, 0])
    np.testing.assert_array_equal(ep["intervened"], [False, True, False, False])
    np.testing.assert_array_equal(ep["is_first"], [True, False, False, False])
    np.testing.assert_array_equal(ep["is_last"], [False, False, False, True])
    np.testing.assert_array_equal(ep["is_terminal"], [False, False, False, True])
    np.testing.assert_array_equal(ep["timestamp"], [0, 1, 2, 3])
    assert np.isnan(ep["success_prob"][3]) and ep["success_prob"][0] == np.float32(0.9)
    np.testing.assert_array_equal(ep["policy_version"], [7, 7, 7, 0])


def test_recorder_truncated_episode_is_not_terminal_and_bad_use_is_refused():
    rec = EpisodeRecorder()
    with pytest.raises(RuntimeError, match="before start"):
        rec.step(np.zeros(7), {"x": np.zeros(1)}, 0.0, False)
    with pytest.raises(ValueError, match=r"\['reward'\] are reserved step keys"):
        rec.start({"reward": np.zeros(1)})
    rec.start({"x": np.zeros(1)})
    rec.step(np.zeros(7), {"x": np.ones(1)}, 0.0, terminated=False)
    with pytest.raises(ValueError, match="keys changed"):
        rec.step(np.zeros(7), {"y": np.ones(1)}, 0.0, terminated=False)
    ep = rec.finish()
    assert not ep["is_terminal"].any() and ep["is_last"][-1]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "store"
    summary = record_demos("pick_cube", 2, path, seed=3, config={"cameras": ["front"]})
    assert summary["episodes"] == 2 and summary["store_episodes"] == 2
    return path


def test_recorded_demos_carry_attributes_and_initial_state(demo_store):
    store = EpisodeStore.open(demo_store)
    assert len(store) == 2
    for i, info in enumerate(store.infos()):
        assert info.task == "pick_cube" and info.source == "demo" and info.platform == "sim"
        assert info.seed == 3 + i and info.operator == "scripted" and info.start_time > 1.7e9
        ep = store.episode(i)
        assert (
            ep["image_front"].shape[1:] == (128, 128, 3) and ep["image_front"].std() > 5
        )  # a real render
        assert (
            ep["is_terminal"][-1] == info.success
        )  # the expert ends an episode by success, else by time limit
        assert ep["reward"][-2] == float(info.success)
        state = decode_state(info.initial_state["sim_state"])
        assert state["qpos"].shape == (16,) and state["mocap_pos"].shape == (0, 3)
        # what a real cell would record as well: joint positions as in joint_states, object pose
        np.testing.assert_allclose(info.initial_state["arm_joint_pos"], state["qpos"][:7])
        np.testing.assert_allclose(
            info.initial_state["object_pose"], ep["object_pose"][0], atol=1e-6
        )
        assert np.sum(info.initial_state["finger_joint_pos"]) == pytest.approx(
            float(ep["gripper_width"][0][0]), abs=1e-6
        )
        assert store.config(info.config_hash)["cameras"] == ["front"]
    assert store.summary()["success_rate"] > 0  # the scripted expert solves pick_cube


def test_replay_of_a_twin_episode_is_exact(demo_store, tmp_path):
    report = replay(demo_store, 0, tmp_path)
    info = EpisodeStore.open(demo_store).info(0)
    assert report["start"] == "sim_state" and report["object_pose_from"] == "sim_state"
    assert report["steps_compared"] == report["recorded_steps"] > 10
    assert report["pos_err_mm_max"] < 1e-3  # float32 rounding of the stored pose, no drift
    assert report["replayed_success"] == info.success
    assert (tmp_path / "replay.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        len(json.loads((tmp_path / "replay.json").read_text())["pos_err_mm"])
        == report["steps_compared"] + 1
    )


def test_replay_reports_divergence_when_actions_do_not_match(demo_store, tmp_path):
    src = EpisodeStore.open(demo_store)
    ep, info = src.episode(0), src.info(0)
    ep["action"][:-1, 1] = np.clip(
        ep["action"][:-1, 1] + 0.5, -1, 1
    )  # the recording's poses came from other actions
    with EpisodeStore.open(tmp_path / "bad", mode="a") as store:
        store.append(ep, info, src.config(info.config_hash))
    report = replay(tmp_path / "bad", 0, tmp_path)
    assert report["pos_err_mm_initial"] < 1e-3
    assert report["pos_err_mm_max"] > 20.0


def test_replay_of_a_real_episode_starts_from_the_recorded_pose(demo_store, tmp_path):
    src = EpisodeStore.open(demo_store)
    ep, sim_info = src.episode(1), src.info(1)
    recorded = {k: v for k, v in sim_info.initial_state.items() if k != "sim_state"}
    info = EpisodeInfo(
        task="pick_cube",
        source="real",
        success=sim_info.success,
        platform="real",
        seed=99,
        initial_state=recorded,
    )
    with EpisodeStore.open(tmp_path / "real", mode="a") as store:
        store.append(ep, info)
    report = replay(tmp_path / "real", 0, tmp_path)
    assert report["start"] == "joints+object_pose" and report["object_pose_from"] == "recorded"
    assert (
        report["pos_err_mm_initial"] < 0.5
    )  # same kinematics: the joint pose gives the recorded TCP pose
    assert report["pos_err_mm_max"] < 10.0  # the "real" robot here is the twin itself: a small gap
    assert report["replayed_success"] == sim_info.success


def test_data_info_and_video_commands(demo_store, tmp_path, capsys):
    assert main(["data", "info", str(demo_store), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    store = EpisodeStore.open(demo_store)
    assert summary["episodes"] == 2 and summary["steps"] == store.num_steps - 2
    assert math.isclose(summary["success_rate"], np.mean([i.success for i in store.infos()]))
    assert main(["data", "info", str(demo_store)]) == 0
    assert "intervention share  0.0%" in capsys.readouterr().out

    import cv2
    import imageio.v3 as iio

    n_rows = len(store.episode(1, ("is_first",))["is_first"])
    assert (
        main(["data", "video", str(demo_store), "--episode", "1", "--out", str(tmp_path / "e.mp4")])
        == 0
    )
    cap = cv2.VideoCapture(str(tmp_path / "e.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == n_rows
    assert (
        main(
            ["data", "video", str(demo_store), "--episode", "-1", "--out", str(tmp_path / "e.gif")]
        )
        == 0
    )
    gif = iio.imread(tmp_path / "e.gif")
    assert gif.shape[0] == n_rows and gif.shape[1] > 256  # 2x camera plus the text panel


def test_video_marks_intervened_steps(tmp_path):
    from store_testdata import make_episode

    from robot_rl.store.video import INTERVENTION_BGR, overlay_frames

    ep = make_episode(1)
    frames = overlay_frames(ep)
    for t in (0, 1, 2):
        border = tuple(int(c) for c in frames[t, 1, frames.shape[2] // 2])
        want = INTERVENTION_BGR[::-1] if ep["intervened"][t] else (0, 200, 0)
        assert border == want, (t, border)
    with pytest.raises(ValueError, match="no camera images"):
        overlay_frames(ep, ["side"])


def test_cli_errors_name_the_problem(tmp_path):
    with pytest.raises(SystemExit, match="no such episode store"):
        main(["data", "info", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="suffix must be .mp4 or .gif"):
        from store_testdata import make_episode, make_info

        with EpisodeStore.open(tmp_path / "s", mode="a") as store:
            store.append(make_episode(0), make_info(0))
        main(
            [
                "data",
                "video",
                str(tmp_path / "s"),
                "--episode",
                "0",
                "--out",
                str(tmp_path / "v.avi"),
            ]
        )
    with pytest.raises(SystemExit, match="no episode 5"):
        main(["data", "video", str(tmp_path / "s"), "--episode", "5"])
    with pytest.raises(SystemExit, match="episodes: 0 must be >= 1"):
        main(["record", "--task", "pick_cube", "--episodes", "0", "--out", str(tmp_path / "r")])


def test_record_command_appends_to_a_store(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            ["record", "--task", "pick_cube", "--episodes", "1", "--out", str(out), "--cameras", ""]
        )
        == 0
    )
    assert "recorded 1 episodes" in capsys.readouterr().out
    store = EpisodeStore.open(out)
    assert len(store) == 1 and not any(k.startswith("image_") for k in store.keys)
    assert_episode_equal(
        store.episode(0, ("is_first",)), {"is_first": np.arange(store.num_steps) == 0}
    )
