"""`robot-rl train` end to end with a tiny budget: processes, demos, operator, evaluation, outputs."""
from __future__ import annotations

import json

import pytest

from robot_rl.cli import main
from robot_rl.store import EpisodeStore


@pytest.mark.slow
def test_train_command_writes_summary_curve_and_checkpoint_and_refuses_to_overwrite(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "task: pick_cube\n"
        "env: {max_episode_steps: 15}\n"
        "num_actors: 2\ndemos: 2\ntotal_env_steps: 150\nmax_wall_s: 300\nfinal_eval_episodes: 3\n"
        "eval_every_episodes: 2\n"
        "sac: {hidden: [32, 32]}\n"
        "learner: {batch_size: 32, learning_starts: 20, publish_every: 5, checkpoint_every: 50, progress_every_s: 1.0}\n"
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("eval_success_rate", "eval_episodes", "env_steps", "wall_s", "updates", "interventions",
                "final_intervention_rate"):
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
    assert len(demos) == 2 and all(info.platform == "sim" and info.operator == "scripted" for info in demos)
    assert len(infos) > 2 and {info.source for info in infos} <= {"demo", "sim", "intervention"}
    with pytest.raises(SystemExit, match="already holds a run.*pass --resume"):
        main(["train", "--config", str(config), "--out", str(out)])
