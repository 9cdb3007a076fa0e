"""`robot-rl train` end to end on a tiny budget: processes, demos, operator, evaluation, outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_rl.cli import main
from robot_rl.store import EpisodeStore


@pytest.mark.slow
def test_train_command_writes_summary_curve_and_checkpoint_and_refuses_to_overwrite(
    tmp_path, capfd
):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "task: pick_cube\n"
        "env: {max_episode_steps: 15}\n"
        "num_actors: 2\ndemos: 2\ntotal_env_steps: 150\nmax_wall_s: 300\nfinal_eval_episodes: 3\n"
        "eval_every_episodes: 2\n"
        "sac: {hidden: [32, 32]}\n"
        "learner: {batch_size: 32, learning_starts: 20, publish_every: 5, checkpoint_every: 50, "
        "progress_every_s: 1.0}\n"
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    console = capfd.readouterr()
    # the console: where the run goes, progress lines, where the results are; no log, no warning
    assert f"run folder {out}/" in console.out and "  steps " in console.out
    assert str(out / "summary.json") in console.out and console.err == ""
    log = (out / "train.log").read_text()
    assert "learner INFO robot_rl.loop.learner" in log and "actor-1 INFO" in log
    assert "OpenGL_accelerate" not in log
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "eval_success_rate",
        "eval_episodes",
        "env_steps",
        "wall_s",
        "updates",
        "interventions",
        "final_intervention_rate",
    ):
        assert key in summary
    assert summary["eval_episodes"] == 3 and 0.0 <= summary["eval_success_rate"] <= 1.0
    assert summary["env_steps"] >= 150 and summary["updates"] > 0
    assert summary["demo_steps"] > 0  # the two scripted demonstrations arrived
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert (out / "checkpoint" / "weights.safetensors").is_file()
    assert list((out / "tb").glob("events.out.tfevents.*")) and (out / "metrics.csv").is_file()
    # every finished episode of each actor is in its store, the demonstrations marked as such
    infos = []
    for i in range(2):
        with EpisodeStore.open(out / "episodes" / f"actor-{i}.zarr") as store:
            infos += [store.info(e) for e in range(len(store))]
    demos = [info for info in infos if info.source == "demo"]
    assert len(demos) == 2 and all(
        info.platform == "sim" and info.operator == "scripted" for info in demos
    )
    assert len(infos) > 2 and {info.source for info in infos} <= {"demo", "sim", "intervention"}
    with pytest.raises(SystemExit, match="already holds a run.*pass --resume"):
        main(["train", "--config", str(config), "--out", str(out)])


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while listed
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _env_steps(metrics_csv: Path) -> int:
    lines = metrics_csv.read_text().splitlines() if metrics_csv.is_file() else []
    return int(lines[-1].split(",")[1]) if len(lines) > 1 else 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_terminated_train_command_takes_its_learner_and_actors_with_it(tmp_path):
    """`kill` of `robot-rl train` (SIGTERM, what a scheduler sends) stops its learner and actors.

    None is left running orphaned, competing for the CPU with the next run.
    """
    config = tmp_path / "long.yaml"
    config.write_text(
        "task: pick_cube\nenv: {max_episode_steps: 15}\ndemos: 1\ntotal_env_steps: 1000000\n"
        "sac: {hidden: [32, 32]}\n"
        "learner: {batch_size: 32, learning_starts: 20, progress_every_s: 1.0}\n"
    )
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "train", "--config", str(config), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        metrics, deadline = out / "metrics.csv", time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not _env_steps(metrics):
            time.sleep(0.5)  # until an actor's steps reached the learner: both are running
        assert _env_steps(metrics), (
            proc.stdout.read() if proc.poll() is not None else "no steps reached the learner"
        )
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "stopped by signal 15" in output, output[-3000:]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.5)
    assert not [p for p in workers if _alive(p)], output[-3000:]
