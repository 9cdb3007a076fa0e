"""Deterministic evaluation of a checkpoint in the twin: the one evaluator behind `robot-rl eval`
and the train job's final evaluation.

The task, env config, tracker and observation layout come from the checkpoint itself, so any
checkpoint the stack writes (train/demo job, learner) is evaluated in the twin it was trained in;
or, given a run config, in the twin that config describes (another cell: a zero-shot transfer),
if it gives the policy the observations it was trained on and its actions the same scales.
The checkpoint is only read. This module may import the twin; robot_rl's core may not.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_rl.agents.checkpoint import (
    CheckpointInfo,
    CheckpointMismatch,
    layout_differences,
    load_policy,
    read_checkpoint_info,
)
from robot_rl.agents.replay_buffer import obs_spec_from_space

if TYPE_CHECKING:
    from robot_rl.loop.run_config import RunConfig


def open_checkpoint(checkpoint: str | Path, task: str | None = None) -> CheckpointInfo:
    """The checkpoint's run info; `task`, when given, must be the one it was trained on."""
    info = read_checkpoint_info(checkpoint)
    if task is not None and task != info.task:
        raise CheckpointMismatch(
            f"{checkpoint}: trained on task {info.task!r}, not {task!r}; leave out --task (it "
            f"defaults to the checkpoint's) or give a checkpoint of a {task} run"
        )
    return info


def make_eval_env(info: CheckpointInfo, read_keys: Sequence[str], run: RunConfig | None = None):
    """The run's twin (its env config and tracker, no reward model), or the twin of `run` when
    given; refused if the policy's keys or, for `run`, its action scales differ."""
    import sim

    if run is not None:
        from robot_rl.loop.run_config import action_differences
        from robot_rl.loop.train_job import make_env

        if run.task != info.task:
            raise CheckpointMismatch(
                f"{info.path}: trained on task {info.task!r}, the run config is for {run.task!r}"
            )
        env = make_env(run)
        diffs = layout_differences(
            info.obs_spec, obs_spec_from_space(env.observation_space), read_keys
        )
        diffs += action_differences(info.env, env.unwrapped.config)
        if diffs:
            env.close()
            raise CheckpointMismatch(
                f"{info.path}: the {run.task} twin of the run config does not give the policy "
                "the observations and action scales it was trained with:\n  " + "\n  ".join(diffs)
            )
        return env
    if info.tracker is not None:
        from controllers.config import from_dict
        from robot_rl.loop.tracked_pose import TrackedPoseConfig, make_tracked_env

        tracker = from_dict(TrackedPoseConfig, info.tracker, "run.tracker")
        env = make_tracked_env(info.task, info.env, tracker)
    else:
        env = sim.make_env(info.task, info.env)
    diffs = layout_differences(info.obs_spec, obs_spec_from_space(env.observation_space), read_keys)
    if diffs:
        env.close()
        raise CheckpointMismatch(
            f"{info.path}: the {info.task} twin built from the checkpoint's env config does not "
            "give the observations the policy was trained on:\n  "
            + "\n  ".join(diffs)
            + "\nThe twin's defaults changed since this checkpoint was written: set the changed "
            "env keys back in the run config and retrain, or evaluate a newer checkpoint"
        )
    return env


def evaluate(
    checkpoint: str | Path,
    seeds: Sequence[int],
    *,
    task: str | None = None,
    record: str | Path | None = None,
    progress: bool = False,
    run: RunConfig | None = None,
) -> list[dict[str, Any]]:
    """One deterministic episode per seed; run_episode's facts (success, steps, ...) for each,
    plus `time_s`, the episode's length in seconds at the twin's control rate.

    With `record`, every episode is appended to that episode store (source "sim"); with `run`,
    the episodes run in that run config's twin instead of the checkpoint's (make_eval_env).
    """
    from controllers.config import to_dict
    from robot_rl.store import EpisodeStore
    from robot_rl.store.recorder import config_hash, episode_info, run_episode

    info = open_checkpoint(checkpoint, task)
    policy = load_policy(info)
    env = make_eval_env(info, policy.read_keys, run)
    env_config = to_dict(env.unwrapped.config)
    step_s = 1.0 / env.unwrapped.config.control_hz
    fields = {
        "platform": "sim",
        "operator": "",
        "config_hash": config_hash(env_config),
        "robot_calibration_id": "twin",
    }
    results = []
    store = EpisodeStore.open(record, mode="a") if record else None
    try:
        for seed in seeds:
            episode, facts = run_episode(
                env,
                lambda obs: policy.act(obs, deterministic=True),
                seed=seed,
                policy_version=info.policy_version,
            )
            results.append({**facts, "time_s": facts["steps"] * step_s})
            if store is not None:
                store.append(
                    episode, episode_info(info.task, "sim", facts, seed=seed, **fields), env_config
                )
            if progress:
                print(
                    f"episode seed {seed}: {'success' if facts['success'] else 'failure'} "
                    f"after {facts['steps']} steps",
                    file=sys.stderr,
                )
    finally:
        env.close()
        if store is not None:
            store.close()
    return results
