"""`robot-rl train`: learner + N actor processes on localhost against the MuJoCo twin.

Sequence: the learner starts and listens; each actor first drives its share of scripted
demonstrations (operator in control, every step intervened -> offline buffer), then acts with
the newest policy while the scripted operator intervenes when it stalls or drifts, with a budget
that shrinks as the policy succeeds; every `eval_every_episodes` an actor runs one deterministic,
operator-free evaluation episode. With `learner.offline: wsrl` each actor, once its
demonstrations are sent, waits for the learner's pre-trained policy before its first online
episode, so that WSRL's warm-up steps are that policy's; with `learner.init_checkpoint` it waits
for the learner's first weights (the checkpoint's), so that no episode runs an untrained policy.
When the step or time budget is spent (or `learner.stop_at_eval_success` is reached) the
learner checkpoints and exits, the actors stop, and `final_eval_episodes` randomised episodes
evaluate the final checkpoint. Results: summary.json, learning_curve.png, metrics.csv, tb/,
checkpoint/.

The job supervises the actors as it does the learner: an actor process that dies while the
learner runs is logged and restarted (without its demonstrations, with a new session), at most
`MAX_ACTOR_RESTARTS` times each; if every actor is gone for good the learner is stopped and the
job fails.

The console shows where the run goes, the learner's one live progress line and where the results
are, plus any error in full; every process logs the details (and Python warnings) to train.log.

This module (and the CLI) may import the twin; robot_rl's core modules never do.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import multiprocessing as mp
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from controllers.config import to_dict
from robot_rl.loop.run_config import RunConfig

log = logging.getLogger(__name__)

EVAL_SEED = 50_000_000  # final evaluation episodes never reuse a training seed
LOG_FILE = "train.log"  # in the run folder: the detailed log of every process of the run
_LOG_FORMAT = "%(asctime)s %(processName)s %(levelname)s %(name)s: %(message)s"
MAX_ACTOR_RESTARTS = 5  # per actor and run: beyond this a crash is not transient


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _log_handlers(log_file: str | Path | None) -> list[logging.Handler]:
    """INFO and up to `log_file`, only errors to the console; without a file, all to the console."""
    console = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        console.setLevel(logging.ERROR)
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    return handlers


def _setup_process(threads: int, log_file: str | Path | None) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, handlers=_log_handlers(log_file))
    logging.captureWarnings(True)


@contextlib.contextmanager
def _logging_to(log_file: Path) -> Iterator[None]:
    """The calling process logs as `_setup_process` sets up a child, until the block ends."""
    root = logging.getLogger()
    handlers, level = _log_handlers(log_file), root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.setLevel(level)
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


def make_env(cfg: RunConfig, reward_model: bool = False):
    """The twin of the run; with cfg.tracker, observing the object_pose the marker tracker measures
    in rendered images (robot_rl.loop.tracked_pose); with `reward_model`, wrapped so that
    cfg.reward_model (when set) gives the reward and ends episodes instead of the twin's ground
    truth (kept in info["success"])."""
    import sim

    if cfg.tracker is not None:
        from robot_rl.loop.tracked_pose import make_tracked_env

        env = make_tracked_env(cfg.task, cfg.env, cfg.tracker)
    else:
        env = sim.make_env(cfg.task, cfg.env)
    if not (reward_model and cfg.reward_model):
        return env
    from robot_rl.reward import load_model
    from robot_rl.reward.env_wrapper import ClassifierReward

    return ClassifierReward(
        env, load_model(cfg.reward_model), env.unwrapped.config.max_episode_steps
    )


def obs_spec(env) -> dict:
    from robot_rl.agents.replay_buffer import obs_spec_from_space

    return obs_spec_from_space(env.observation_space)


def learner_process(
    cfg: RunConfig, run_dir: str, resume: bool, endpoint: str | None, ready=None
) -> None:
    """Entry of the learner process (also `robot-rl learner`); sets `ready` once it listens.
    It logs to `run_dir/train.log` and shows the progress line on stdout."""
    from robot_rl.loop.learner import Learner, check_run_dir

    check_run_dir(Path(run_dir), resume)  # before the log file creates the folder
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    _setup_process(cfg.learner.torch_threads, Path(run_dir) / LOG_FILE)
    env = make_env(cfg)
    spec = obs_spec(env)
    env.close()
    learner = Learner(cfg, spec, run_dir, resume=resume, endpoint=endpoint)
    try:
        summary = learner.run(on_listening=ready.set if ready is not None else None)
    finally:
        learner.close()
    (Path(run_dir) / "learner_summary.json").write_text(json.dumps(summary, indent=1))


def actor_process(
    cfg: RunConfig,
    endpoint: str,
    actor_id: str,
    spool_dir: str,
    demos: int,
    index: int,
    max_episodes: int | None = None,
    store: str | None = None,
    log_file: str | None = None,
    ledger: str | None = None,
) -> None:
    """Entry of an actor process (also `robot-rl actor`): demos first, then policy episodes until
    stopped; every episode (demonstrations included) is committed to the zarr store `store` when
    given. It logs to `log_file` when given, else to the console; `ledger`: a file recording
    what it sent and what was acknowledged (robot_rl.transport.ledger)."""
    from robot_rl.agents.sac import Policy
    from robot_rl.loop.actor import Actor, best_device, learner_client
    from robot_rl.loop.operator import ScriptedOperator
    from robot_rl.store.tee import StoreTee
    from sim.experts import make_expert

    _setup_process(cfg.actor_torch_threads, log_file)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    env = make_env(cfg, reward_model=True)
    device = best_device(cfg.actor_device)
    policy = Policy(obs_spec(env), replace(cfg.sac, device=device))
    operator = ScriptedOperator(make_expert(env).act, cfg.operator)
    client = learner_client(cfg, endpoint, actor_id, spool_dir, policy.read_keys, ledger)
    tee = StoreTee(
        client,
        store,
        cfg.task,
        "sim",
        cfg.data_hash(),
        operator="scripted",
        env_config=cfg.env,
        fsync=cfg.store_fsync,
    )
    actor = Actor(
        env,
        policy,
        tee,
        batch_steps=cfg.transport.batch_steps,
        operator=operator,
        max_episode_steps=env.unwrapped.config.max_episode_steps,
        steps_per_weights=cfg.actor_steps_per_weights,
        pace_timeout_s=cfg.actor_pace_timeout_s,
        pace_after_steps=cfg.learner.learning_starts // cfg.num_actors,
    )
    log.info(
        "actor %s: policy on %s, %d demonstrations first, learner at %s, episodes to %s",
        actor_id,
        device,
        demos,
        endpoint,
        store or "(no store)",
    )
    seed = cfg.seed * 1_000_003 + index * 100_000
    episodes = 0
    try:
        while not stop["now"] and (max_episodes is None or episodes < max_episodes):
            if episodes < demos:
                mode = "demo"
            else:
                version = _first_policy_version(cfg)
                if version is not None:
                    _wait_for_weights(actor, client, version, stop)
                    if stop["now"]:
                        break
                mode = "eval" if (episodes - demos + 1) % cfg.eval_every_episodes == 0 else "train"
            actor.run_episode(mode, seed=seed + episodes)
            episodes += 1
            if client.error:
                raise SystemExit(f"actor {actor_id}: stopped: {client.error}")
    finally:
        client.flush(timeout_s=5.0 if client.connected else 0.0)
        client.close()
        env.close()


def _first_policy_version(cfg: RunConfig) -> int | None:
    """The policy version an actor must hold before its first online episode: WSRL's pre-trained
    one, or any weights from a learner that starts from a checkpoint; None: no wait."""
    if cfg.learner.offline == "wsrl":
        return cfg.learner.wsrl_pretrain_updates
    return 0 if cfg.learner.init_checkpoint else None


def _wait_for_weights(actor, client, version: int, stop: dict[str, bool]) -> None:
    """Block until the actor holds learner weights of at least `version` updates, so that its
    episodes run that policy, not the untrained one it was built with."""
    if actor.has_weights and actor.policy_version >= version:
        return
    log.info("%s: waiting for the learner's weights of version >= %d", client.actor_id, version)
    while not (actor.has_weights and actor.policy_version >= version) and not stop["now"]:
        if client.error:
            raise SystemExit(f"actor {client.actor_id}: stopped: {client.error}")
        actor.swap_weights()
        time.sleep(0.05)


def _evaluate_worker(
    checkpoint: str, seeds: list[int], out: mp.Queue, log_file: str | None
) -> None:
    from robot_rl.loop.evaluation import evaluate

    _setup_process(1, log_file)
    try:
        out.put([facts["success"] for facts in evaluate(checkpoint, seeds)])
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")  # the parent waits on the queue, not the process
        raise


def evaluate_checkpoint(
    cfg: RunConfig, checkpoint: Path, episodes: int, workers: int, log_file: str | None = None
) -> list[bool]:
    """Deterministic, operator-free episodes of the checkpoint's policy on unseen randomised seeds
    (the evaluator of `robot-rl eval`, split over `workers` processes); the workers log to
    `log_file` when given, else to the console."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    seeds = [EVAL_SEED + cfg.seed * 1000 + i for i in range(episodes)]
    # daemonic: they end with this process however it ends
    procs = [
        ctx.Process(
            target=_evaluate_worker,
            args=(str(checkpoint), seeds[i::workers], out, log_file),
            name=f"eval-{i}",
            daemon=True,
        )
        for i in range(workers)
        if seeds[i::workers]
    ]
    for p in procs:
        p.start()
    results, reported = [], 0
    while reported < len(procs):
        try:
            got = out.get(timeout=1.0)
        except queue.Empty:
            # a worker that died before reporting (killed, or failed at start-up) never will
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(
                    f"final evaluation of {checkpoint} failed: worker {dead[0].name} exited "
                    f"with status {dead[0].exitcode} before reporting"
                ) from None
            continue
        if isinstance(got, str):
            raise RuntimeError(f"final evaluation of {checkpoint} failed: {got}")
        results += got
        reported += 1
    for p in procs:
        p.join()
    return results


def plot_learning_curve(metrics_csv: Path, out_png: Path, final_success: float | None) -> None:
    """Success (evaluation and training) and intervention rate against env steps (left) and wall
    time (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv) as fh:
        rows = list(csv.DictReader(fh))
    steps = np.array([float(r["env_steps"]) for r in rows])
    minutes = np.array([float(r["wall_s"]) for r in rows]) / 60.0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, x, xlabel in (
        (axes[0], steps, "online env steps"),
        (axes[1], minutes, "learner wall time (min)"),
    ):
        for key, label in (
            ("eval_success_rate", "evaluation success (last 20, no operator)"),
            ("success_rate", "training success (last 20, with operator)"),
            ("intervention_rate", "intervention rate (share of steps)"),
        ):
            ax.plot(x, [float(r[key]) for r in rows], label=label)
        if final_success is not None and len(x):
            ax.scatter(
                [x[-1]],
                [final_success],
                color="k",
                zorder=3,
                label=f"final evaluation {final_success:.2f}",
            )
        ax.set_xlabel(xlabel)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def run_train(
    cfg: RunConfig, out: str | Path, resume: bool = False, endpoint: str | None = None
) -> dict[str, Any]:
    """The main job; returns the summary it writes to `out/summary.json`."""
    from robot_rl.loop.learner import check_run_dir, open_init_checkpoint

    out = Path(out)
    check_run_dir(out, resume)
    if cfg.learner.init_checkpoint:  # refused here, before any process starts
        open_init_checkpoint(cfg, cfg.obs_spec())
    # a model that does not load or fit the cameras fails here, not in every actor
    if cfg.reward_model:
        make_env(cfg, reward_model=True).close()
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"run folder {out}/ (detailed log: {out / LOG_FILE}); {cfg.num_actors} actor(s), "
        f"{cfg.demos if not resume else 0} demonstrations, then training until "
        f"{cfg.total_env_steps:,} env steps or {cfg.max_wall_s / 60:.0f} min",
        flush=True,
    )
    with _logging_to(out / LOG_FILE):
        return _train(cfg, out, resume, endpoint or free_endpoint())


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by signal {signal.Signals(-code).name}"
    return f"exited with code {code}"


def supervise(
    learner: mp.Process,
    actors: list[mp.Process],
    restart: Callable[[int], mp.Process],
    max_restarts: int = MAX_ACTOR_RESTARTS,
    poll_s: float = 0.5,
) -> dict[int, int]:
    """Wait for the learner; restart actors that die meanwhile (in place in `actors`), at most
    `max_restarts` each. Stops the learner (SIGTERM) when no actor is left. Returns the restarts
    per actor index."""
    restarts = dict.fromkeys(range(len(actors)), 0)
    gone: set[int] = set()
    while learner.is_alive():
        learner.join(poll_s)
        if not learner.is_alive():
            break
        for i, p in enumerate(actors):
            if p.is_alive() or p.exitcode is None:
                continue
            if restarts[i] >= max_restarts:
                if i not in gone:
                    gone.add(i)
                    log.error(
                        "actor-%d %s again after %d restarts; not restarting it",
                        i,
                        _exit_text(p.exitcode),
                        max_restarts,
                    )
                continue
            restarts[i] += 1
            log.error(
                "actor-%d %s while the learner runs; restarting it (%d of at most %d)",
                i,
                _exit_text(p.exitcode),
                restarts[i],
                max_restarts,
            )
            actors[i] = restart(i)
        if len(gone) == len(actors):
            log.error(
                "every actor died %d times; stopping the learner (see the actors' errors above)",
                max_restarts + 1,
            )
            os.kill(learner.pid, signal.SIGTERM)
            learner.join()
            raise RuntimeError(
                f"all {len(actors)} actor(s) kept dying (restarted {max_restarts} times each); "
                "the learner was stopped with a checkpoint; fix the cause and run with --resume"
            )
    return restarts


def _train(cfg: RunConfig, out: Path, resume: bool, endpoint: str) -> dict[str, Any]:
    start = time.monotonic()
    log_file = str(out / LOG_FILE)
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    learner = ctx.Process(
        target=learner_process, args=(cfg, str(out), resume, endpoint, ready), name="learner"
    )
    learner.start()
    # actors could start now and spool, but why write to disk for nothing
    while not ready.wait(0.5):
        if not learner.is_alive():
            raise RuntimeError(
                f"the learner process failed at start (exit code {learner.exitcode}); "
                f"see the error above and {log_file}"
            )
    total_demos = 0 if resume else cfg.demos  # a resumed run has its demonstrations in the journal
    demos = [
        total_demos // cfg.num_actors + (i < total_demos % cfg.num_actors)
        for i in range(cfg.num_actors)
    ]

    def start_actor(i: int, restart: bool) -> mp.Process:
        p = ctx.Process(
            target=actor_process,
            name=f"actor-{i}",
            args=(
                cfg,
                endpoint,
                f"actor-{i}",
                str(out / "spool" / f"actor-{i}"),
                0 if restart else demos[i],
                i,
                None,
                str(out / "episodes" / f"actor-{i}.zarr"),
                log_file,
            ),
        )
        p.start()
        return p

    actors = [start_actor(i, restart=False) for i in range(cfg.num_actors)]
    try:
        supervise(learner, actors, lambda i: start_actor(i, restart=True))
    finally:
        for p in actors:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in actors:
            p.join(60)
            if p.is_alive():
                p.kill()
        if learner.is_alive():
            os.kill(learner.pid, signal.SIGTERM)
            learner.join()
    if learner.exitcode != 0:
        raise RuntimeError(
            f"the learner process failed (exit code {learner.exitcode}); "
            f"see the error above and {log_file}"
        )
    learner_summary = json.loads((out / "learner_summary.json").read_text())
    results = []
    if cfg.final_eval_episodes:
        print(
            f"final evaluation: {cfg.final_eval_episodes} operator-free episodes of the checkpoint "
            "on unseen seeds",
            flush=True,
        )
        results = evaluate_checkpoint(
            cfg, out / "checkpoint", cfg.final_eval_episodes, cfg.num_actors, log_file
        )
    success = float(np.mean(results)) if results else None
    summary = {
        "eval_success_rate": success,
        "eval_episodes": len(results),
        "env_steps": learner_summary["env_steps"],
        "wall_s": round(time.monotonic() - start, 1),
        "updates": learner_summary["updates"],
        "interventions": learner_summary["interventions"],
        "final_intervention_rate": learner_summary["final_intervention_rate"],
        "demo_steps": learner_summary["demo_steps"],
        "episodes": learner_summary["episodes"],
        "num_actors": cfg.num_actors,
        "checkpoint": str(out / "checkpoint"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_learning_curve(out / "metrics.csv", out / "learning_curve.png", success)
    return summary
