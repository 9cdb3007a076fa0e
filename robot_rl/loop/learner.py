"""The learner loop: receive actors' steps, insert, train asynchronously, publish, checkpoint, log.

- Inserts: every non-demo row into the online buffer (one stream per actor session); demo episodes
  and intervention segments (operator-driven steps plus the row after them) into the offline buffer.
  At start-up (resume included) the offline buffer is preloaded the same way from the episode
  stores of the run config's `offline` section (robot_rl.loop.offline).
- Trains whenever data allows, capped at `max_update_to_data` critic updates per online env step.
  `learner.offline` picks the batches: `symmetric` (RLPD) half online / half offline; `none`
  online only; `wsrl` (WSRL) first `wsrl_pretrain_updates` updates on the offline buffer alone,
  once the run's `demos` demonstration episodes are in (preloaded stores count at once), then
  publishes that policy, empties the offline buffer and keeps no offline data from then on; the
  first `learning_starts` online steps (taken with the pre-trained policy: twin actors wait for
  it) are the warm-up, with no update, and online updates are capped counting from its end.
- With `learner.init_checkpoint` the agent starts from another run's checkpoint (networks,
  temperature, optimiser moments; `open_init_checkpoint` checks that it reads and acts as this
  run's agent would) with fresh buffers, counters and policy versions: the weights published at
  start, version 0, are the loaded ones. A resume loads the run's own checkpoint instead.
- Stops when the step or time budget is spent, or with `learner.stop_at_eval_success` once the
  last EVAL_WINDOW evaluation episodes reach that success rate.
- Publishes the actor's parameters every `publish_every` updates; checkpoints every
  `checkpoint_every` updates, at the end, and on SIGTERM/SIGINT. Received data is durable in the
  transport journal (acknowledged only once written). A checkpoint holds the agent, both replay
  buffers, the counters, each actor session's next expected sequence number and the open
  intervention segments, all of one moment; the journal is rotated with it and the segments it
  covers are deleted, so the journal holds only what arrived since. `resume=True` loads the
  checkpoint and replays the journal messages it does not cover: nothing acknowledged is lost or
  inserted twice, and resume time is bounded by the checkpoint's size plus one interval's data.
  The offline buffer comes back from the checkpoint as it was (episode-store rows included), so
  a resume does not read the `offline` stores again; a start without a checkpoint does.
- Logs every `progress_every_s` to `metrics.csv`, TensorBoard (`tb/`, through torch's
  SummaryWriter) and the `robot_rl.loop.learner` logger, and shows one live progress line on stdout.
- Never crashes on data: the transport checks each message against the payload schema before
  journaling it (rejected ones are counted in `rejected_messages` / `rejected_rows`); a journaled
  message that still fails to go into the buffers is quarantined (`quarantine/`, counted, logged
  at most once per kind and interval) and skipped on resume. Updates skipped for NaN/inf are
  counted in `skipped_updates`; when most updates are skipped for `STALL_S` the log says learning
  has stalled. If the network thread dies (a full disk under the journal) the learner stops with
  that reason and a non-zero exit.
"""

from __future__ import annotations

import collections
import csv
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from controllers.config import ConfigError, to_dict
from robot_rl.agents.checkpoint import (
    REPLAY_DIR,
    CheckpointInfo,
    CheckpointMismatch,
    load_buffers,
    load_checkpoint,
    load_weights,
    policy_differences,
    read_checkpoint_info,
    save_checkpoint,
)
from robot_rl.agents.replay_buffer import ObsSpec, ReplayBuffer, sample_symmetric
from robot_rl.agents.sac import SACAgent
from robot_rl.loop.offline import preload
from robot_rl.loop.progress import Progress, ProgressLine, format_progress
from robot_rl.loop.run_config import RunConfig, action_differences
from robot_rl.transport import keys as keyfiles
from robot_rl.transport.channels import LearnerServer, LinkTiming
from robot_rl.transport.journal import Journal
from robot_rl.transport.protocol import Message, ProtocolError, encode
from robot_rl.transport.quarantine import Quarantine
from robot_rl.transport.ratelimit import RateLimitedLog
from robot_rl.transport.schema import PayloadSchema

log = logging.getLogger(__name__)

STALL_S = 60.0  # this long with most updates skipped (NaN/inf) and the log says learning stalled
STALL_SKIPPED_SHARE = 0.9

# evaluation episodes behind metrics.csv's eval_success_rate (a trailing window) and
# learner.stop_at_eval_success
EVAL_WINDOW = 20
TB_FLUSH_S = 30.0  # TensorBoard shows a run at most this far behind
TB_QUEUE = 200  # events held for the writer's thread: several reports, so adding never blocks
CSV_FIELDS = (
    "wall_s",
    "env_steps",
    "demo_steps",
    "updates",
    "updates_per_s",
    "transitions_per_s",
    "episodes",
    "success_rate",
    "eval_success_rate",
    "eval_episodes",
    "intervention_rate",
    "takeovers",
    "policy_version",
    "online_size",
    "offline_size",
    "live_actors",
    "critic_loss",
    "actor_loss",
    "temperature",
    "skipped_updates",
    "quarantined",
    "rejected_messages",
    "rejected_rows",
    "bytes_per_env_step",
)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run never overwrites an old one; --resume needs one to continue."""
    holds_run = (run_dir / "checkpoint").exists() or any((run_dir / "journal").glob("*.log"))
    if not resume and holds_run:
        raise FileExistsError(
            f"{run_dir} already holds a run (checkpoint/journal); "
            "pass --resume to continue it or choose another --out"
        )
    if resume and not holds_run:
        raise FileNotFoundError(f"--resume: {run_dir} holds no run to continue")


def open_init_checkpoint(cfg: RunConfig, obs_spec: ObsSpec) -> CheckpointInfo:
    """The checkpoint `learner.init_checkpoint` names, if an agent of this run can start from it:
    the same observation keys read (order, shapes, dtypes), network settings and action layout
    (sac's, and the env's action scales). ConfigError naming what differs otherwise."""
    path = cfg.learner.init_checkpoint
    try:
        info = read_checkpoint_info(path)
    except (FileNotFoundError, CheckpointMismatch) as exc:
        raise ConfigError(f"learner.init_checkpoint: {exc}") from None
    diffs = policy_differences(info, obs_spec, cfg.sac)
    diffs += action_differences(info.env, cfg.env_config())
    if diffs:
        raise ConfigError(
            f"learner.init_checkpoint: {path} reads or acts otherwise than this run's agent:\n  "
            + "\n  ".join(diffs)
            + "\nstart from a checkpoint of a run with the same observations, sac network "
            "settings and action scales, or from scratch (init_checkpoint: '')"
        )
    return info


class InterventionSegments:
    """Turns a stream of step rows into offline-buffer episodes of the operator-driven stretches.

    A segment is the run of consecutive intervened rows plus the first row after it (which holds
    o_{t+1} of the segment's last transition); it is marked is_first / is_last so the replay
    buffer sees a short episode. Segments may span several batches.
    """

    def __init__(self, open_streams: dict[str, bool] | None = None):
        self._open: dict[str, bool] = dict(open_streams or {})

    def state(self) -> dict[str, bool]:
        """Which streams are inside a segment (for a checkpoint; the constructor takes it)."""
        return dict(self._open)

    def feed(self, stream: str, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        n = len(rows["is_first"])
        keep = np.zeros(n, bool)
        first = np.zeros(n, bool)
        last = np.zeros(n, bool)
        is_open = self._open.get(stream, False)
        for i in range(n):
            if rows["is_first"][i]:
                is_open = False  # a new episode never continues an old segment
            if rows["intervened"][i] and not rows["is_last"][i]:
                keep[i], first[i] = True, not is_open
                is_open = True
            elif is_open:
                keep[i], last[i] = True, True
                is_open = False
        self._open[stream] = is_open
        if not keep.any():
            return None
        out = {k: np.asarray(v)[keep] for k, v in rows.items()}
        out["is_first"], out["is_last"] = first[keep], last[keep]
        # a segment that ends mid-episode ends by hand-back, not by reaching a terminal state
        out["is_terminal"] = (
            np.asarray(rows["is_terminal"])[keep] & np.asarray(rows["is_last"])[keep]
        )
        return out


class Learner:
    """Owns the agent, the buffers and the learner's end of the transport."""

    def __init__(
        self,
        cfg: RunConfig,
        obs_spec: ObsSpec,
        run_dir: str | Path,
        resume: bool = False,
        endpoint: str | None = None,
        progress: ProgressLine | None = None,
    ):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoint"
        journal_dir = self.run_dir / "journal"
        check_run_dir(self.run_dir, resume)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(cfg.learner.torch_threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.obs_spec = obs_spec
        lc = cfg.learner
        self.agent = SACAgent(obs_spec, cfg.sac)
        log.info("learner on %s, matmuls in %s", self.agent.device, self.agent.matmul_dtype)
        if lc.init_checkpoint and not (resume and self.ckpt_dir.exists()):
            info = open_init_checkpoint(cfg, obs_spec)
            load_weights(info.path, self.agent)
            log.warning(
                "learner starts from %s (task %s, %d updates there, temperature %.4g): its "
                "networks and optimiser moments, fresh buffers and counters",
                info.path,
                info.task,
                info.policy_version,
                self.agent.temperature,
            )
        # with sac.image.cache_shifts > 0 the buffers hold the frozen backbone's feature maps,
        # not pixels (in GPU memory when the agent is on one and they fit)
        spec, devices = self.agent.storage_spec(), self.agent.storage_devices(lc.replay_capacity)
        self.online = ReplayBuffer(
            lc.replay_capacity, spec, reward_mode=lc.reward_mode, devices=devices
        )
        self.offline = ReplayBuffer(
            lc.replay_capacity, spec, reward_mode=lc.reward_mode, devices=devices
        )
        self.segments = InterventionSegments()
        # next seq per actor session of what the buffers hold: what a checkpoint covers
        self.covered: dict[tuple[str, int], int] = {}
        policy = self.agent.policy
        # not journaled: the stores are the source of truth, read at a start without a
        # checkpoint; a checkpoint holds the offline buffer they filled, as it was
        self.preloaded: list[dict[str, Any]] = []
        if not (resume and (self.ckpt_dir / REPLAY_DIR).is_dir()):
            self.preloaded = preload(
                cfg.offline,
                cfg.task,
                {k: policy.obs_spec[k] for k in policy.read_keys},
                self.offline.action_dim,
                lambda stream, episode, demo: self._add_offline(
                    stream, self.agent.to_storage(episode), demo
                ),
            )
        self.env_steps = self.demo_steps = self.episodes = self.takeovers = 0
        self.demo_episodes = 0
        self._pretrain_wait_logged = False
        self.quarantine = Quarantine(self.run_dir / "quarantine")
        self._log = RateLimitedLog(log)
        self._stall = _StallWatch()
        self.train_window: collections.deque[tuple[bool, int, int]] = collections.deque(maxlen=20)
        self.eval_window: collections.deque[bool] = collections.deque(maxlen=EVAL_WINDOW)
        self.eval_episodes = 0
        self.wall_s_before = 0.0
        self.last_metrics: dict[str, float] = {}
        self._stop = False

        t = cfg.transport
        curve = keyfiles.server_keys(t.keys) if t.keys else None
        self.journal = Journal(journal_dir, fsync=t.journal_fsync)
        self.server = LearnerServer(
            endpoint or t.endpoint,
            cfg.data_hash(),
            journal=self.journal,
            timing=LinkTiming(t.heartbeat_s, t.peer_timeout_s, t.resend_after_s),
            curve=curve,
            schema=PayloadSchema(
                {k: policy.obs_spec[k] for k in policy.read_keys},
                self.online.action_dim,
                max_rows=lc.replay_capacity,
            ),
        )
        if resume:
            self._resume()
        self.csv_path = self.run_dir / "metrics.csv"
        new_csv = not self.csv_path.exists()
        self._csv_file = open(self.csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._csv_file, CSV_FIELDS)
        if new_csv:
            self._csv.writeheader()
        # the writer's own thread writes and flushes, so a report never waits on the disk
        self.tb = SummaryWriter(self.run_dir / "tb", max_queue=TB_QUEUE, flush_secs=TB_FLUSH_S)
        self.progress = progress if progress is not None else ProgressLine()

    # ---- data ----------------------------------------------------------------------------------
    def ingest(self, msg: Message) -> None:
        """Put one accepted message into the buffers and counters; quarantine it if it fails."""
        try:
            self._process(msg)
        except Exception as exc:  # one bad message must never end a run of hours
            self._quarantine(msg, type(exc).__name__, str(exc), encode(msg))
        key = (msg.actor_id, msg.session)
        self.covered[key] = max(self.covered.get(key, 0), msg.seq + 1)

    def _quarantine(self, msg: Message, category: str, reason: str, frames: list) -> None:
        self.quarantine.add(
            (msg.actor_id, msg.session, msg.seq), msg.kind, category, reason, frames
        )
        self._log.log(
            logging.ERROR,
            category,
            "%s seq %d of actor %s (session %d) quarantined in %s: %s: %s",
            msg.kind,
            msg.seq,
            msg.actor_id,
            msg.session,
            self.quarantine.directory,
            category,
            reason,
        )

    def _process(self, msg: Message) -> None:
        stream = f"{msg.actor_id}/{msg.session}"
        if msg.kind == "stats":
            self._on_stats(msg.meta)
            return
        rows, mode = msg.arrays, msg.meta.get("mode", "train")
        rows = self.agent.to_storage(rows)
        if mode != "demo":
            self.online.add_rows(stream, rows)
        self._add_offline(stream, rows, demo=mode == "demo")
        steps = int(np.count_nonzero(~np.asarray(rows["is_last"], bool)))
        if mode == "demo":
            self.demo_steps += steps
            self.demo_episodes += int(np.count_nonzero(rows["is_last"]))
        else:
            self.env_steps += steps

    def _add_offline(self, stream: str, rows: dict[str, np.ndarray], demo: bool) -> int:
        """Demonstration rows whole, other rows' intervention segments, into the offline buffer;
        returns the rows added (none once WSRL's pre-training is over)."""
        if not self._offline_retained():
            return 0
        if not demo:
            rows = self.segments.feed(stream, rows)
            if rows is None:
                return 0
        self.offline.add_rows(f"{'demo' if demo else 'intervention'}:{stream}", rows)
        return len(rows["is_first"])

    def _on_stats(self, meta: dict[str, Any]) -> None:
        mode = meta.get("mode")
        if mode == "eval":
            self.eval_window.append(bool(meta.get("success")))
            self.eval_episodes += 1
        elif mode == "train":
            self.episodes += 1
            self.takeovers += int(meta.get("takeovers") or 0)
            self.train_window.append(
                (
                    bool(meta.get("success")),
                    int(meta.get("intervened_steps") or 0),
                    int(meta.get("steps") or 0),
                )
            )

    # ---- checkpoints -----------------------------------------------------------------------------
    def _config_dict(self) -> dict:
        cfg = to_dict(self.cfg)
        cfg.pop("transport")  # where the learner listens may change between runs; the data may not
        cfg.pop("offline")  # the stores are read afresh at every start and may have moved or grown
        if cfg["tracker"] is None:  # so that checkpoints of untracked runs resume as they did
            cfg.pop("tracker")
        for key, default in (("init_checkpoint", ""), ("stop_at_eval_success", None)):
            if cfg["learner"][key] == default:  # likewise for runs that use neither
                cfg["learner"].pop(key)
        return {
            "run": cfg,
            "obs_spec": {k: [list(s), np.dtype(d).str] for k, (s, d) in self.obs_spec.items()},
        }

    def save(self, wall_s: float) -> None:
        """Checkpoint agent, buffers and counters together; then drop the journal they cover."""
        segments, pending = self.server.cut_journal()
        for msg in pending:
            self.ingest(msg)
        state = {"wall_s": wall_s, "rng": self.rng.bit_generator.state, **self._ingest_state()}
        save_checkpoint(
            self.ckpt_dir,
            self.agent,
            self._config_dict(),
            state,
            buffers={"online": self.online, "offline": self.offline},
        )
        freed = Journal.prune(segments)
        log.info(
            "checkpoint at %d updates -> %s; %d journal segment(s) it covers deleted (%.1f MB)",
            self.agent.critic_steps,
            self.ckpt_dir,
            len(segments),
            freed / 1e6,
        )

    def _ingest_state(self) -> dict[str, Any]:
        """What the buffers hold, in counters: saved with them, restored with them."""
        return {
            "sessions": [[a, s, n] for (a, s), n in sorted(self.covered.items())],
            "segments": self.segments.state(),
            "env_steps": self.env_steps,
            "demo_steps": self.demo_steps,
            "episodes": self.episodes,
            "takeovers": self.takeovers,
            "eval_episodes": self.eval_episodes,
            "train_window": [list(w) for w in self.train_window],
            "eval_window": list(self.eval_window),
        }

    def _restore_ingest(self, state: dict[str, Any]) -> None:
        buffers = load_buffers(
            self.ckpt_dir, self.agent.storage_devices(self.cfg.learner.replay_capacity)
        )
        self.online, self.offline = buffers["online"], buffers["offline"]
        self.covered = {(a, s): n for a, s, n in state["sessions"]}
        self.server.expected.update(self.covered)
        self.segments = InterventionSegments(state["segments"])
        self.env_steps, self.demo_steps = state["env_steps"], state["demo_steps"]
        self.episodes, self.takeovers = state["episodes"], state["takeovers"]
        self.eval_episodes = state["eval_episodes"]
        self.train_window.extend(tuple(w) for w in state["train_window"])
        self.eval_window.extend(state["eval_window"])

    def _resume(self) -> None:
        started = time.monotonic()
        if self.ckpt_dir.exists():
            state = load_checkpoint(self.ckpt_dir, self.agent, self._config_dict())
            self.wall_s_before = float(state.get("wall_s", 0.0))
            self.rng.bit_generator.state = state["rng"]
            if (self.ckpt_dir / REPLAY_DIR).is_dir():
                self._restore_ingest(state)
        replayed = skipped = covered = 0
        for frames in Journal(self.run_dir / "journal").replay():
            try:
                msg = self.server.restore(frames)
            except ProtocolError as exc:
                self._log.log(logging.ERROR, "journal", "journal record skipped on resume: %s", exc)
                skipped += 1
                continue
            if msg.seq < self.covered.get((msg.actor_id, msg.session), 0):
                covered += 1  # a segment the last checkpoint holds, not yet deleted at the kill
                continue
            if (msg.actor_id, msg.session, msg.seq) in self.quarantine:
                skipped += 1
                continue
            self.ingest(msg)
            replayed += 1
        log.warning(
            "resumed %s in %.1f s: %d updates and %d online / %d offline transitions from the "
            "checkpoint, %d journaled messages replayed, %d already in the checkpoint and %d "
            "quarantined or invalid ones skipped (%d online steps, %d demo steps)",
            self.run_dir,
            time.monotonic() - started,
            self.agent.critic_steps,
            self.online.size,
            self.offline.size,
            replayed,
            covered,
            skipped,
            self.env_steps,
            self.demo_steps,
        )

    # ---- the loop --------------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self._stop = True

    def run(
        self,
        total_env_steps: int | None = None,
        max_wall_s: float | None = None,
        on_listening: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Serve and train until the step or time budget is spent or a stop is requested."""
        cfg, lc = self.cfg, self.cfg.learner
        total_env_steps = total_env_steps if total_env_steps is not None else cfg.total_env_steps
        max_wall_s = max_wall_s if max_wall_s is not None else cfg.max_wall_s
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.request_stop)
        if not self._offline_retained():
            self._drop_offline()  # a resumed WSRL run past its pre-training
        self.server.start()
        self.server.publish_weights(self.agent.actor_parameters(), self.agent.critic_steps)
        if on_listening is not None:
            on_listening()
        start = time.monotonic()
        next_report = start + lc.progress_every_s
        first_updates, first_steps = self.agent.critic_steps, self.env_steps
        report_updates, report_steps, report_t = first_updates, first_steps, start
        while not self._stop:
            self.server.check_alive()
            for msg in self.server.receive():
                self.ingest(msg)
            wall = self.wall_s_before + time.monotonic() - start
            if self.env_steps >= total_env_steps or wall >= max_wall_s:
                break
            if self._eval_success_reached():
                log.warning(
                    "the last %d evaluation episodes succeeded at %.2f >= "
                    "learner.stop_at_eval_success %.2f: training stops (%d env steps, %.0f s)",
                    EVAL_WINDOW,
                    np.mean(self.eval_window),
                    lc.stop_at_eval_success,
                    self.env_steps,
                    wall,
                )
                break
            if self._may_update():
                metrics = self.agent.update(self._batch())
                self.last_metrics.update({k: v for k, v in metrics.items() if k != "skipped"})
                self._stall.update("skipped" in metrics, time.monotonic())
                updates = self.agent.critic_steps
                if updates % lc.publish_every == 0 or updates == self._pretrain_updates():
                    self.server.publish_weights(self.agent.actor_parameters(), updates)
                if updates == self._pretrain_updates():
                    self._end_pretraining()
                if updates % lc.checkpoint_every == 0:
                    self.save(wall)
            else:
                time.sleep(0.002)
            now = time.monotonic()
            if now >= next_report:
                dt = now - report_t
                self._report(
                    wall,
                    (self.agent.critic_steps - report_updates) / dt,
                    (self.env_steps - report_steps) / dt,
                )
                report_updates, report_steps, report_t = (
                    self.agent.critic_steps,
                    self.env_steps,
                    now,
                )
                next_report = now + lc.progress_every_s
        now = time.monotonic()
        wall = self.wall_s_before + now - start
        self.save(wall)
        self.server.publish_weights(self.agent.actor_parameters(), self.agent.critic_steps)
        # the last row's rates are the session's means: its own interval may be a few milliseconds
        dt = max(now - start, 1e-9)
        self._report(
            wall,
            (self.agent.critic_steps - first_updates) / dt,
            (self.env_steps - first_steps) / dt,
            final=True,
        )
        time.sleep(0.2)  # let the final weights and acknowledgements leave
        return self.summary(wall)

    def _eval_success_reached(self) -> bool:
        """Whether a full window of evaluation episodes reached learner.stop_at_eval_success."""
        threshold = self.cfg.learner.stop_at_eval_success
        return (
            threshold is not None
            and len(self.eval_window) == EVAL_WINDOW
            and float(np.mean(self.eval_window)) >= threshold
        )

    def _pretrain_updates(self) -> int:
        """Updates on offline data alone before any online one: WSRL's pre-training, else 0."""
        lc = self.cfg.learner
        return lc.wsrl_pretrain_updates if lc.offline == "wsrl" else 0

    def _offline_retained(self) -> bool:
        """Whether offline data is still wanted: always, except after WSRL's pre-training."""
        return (
            self.cfg.learner.offline != "wsrl" or self.agent.critic_steps < self._pretrain_updates()
        )

    def _offline_complete(self) -> bool:
        """Whether every demonstration episode the run drives has arrived (logged once if not)."""
        if self.demo_episodes >= self.cfg.demos:
            return True
        if not self._pretrain_wait_logged:
            log.info(
                "WSRL: waiting for %d demonstration episodes before pre-training", self.cfg.demos
            )
            self._pretrain_wait_logged = True
        return False

    def _end_pretraining(self) -> None:
        """WSRL keeps no offline data once pre-trained: the buffer's memory goes back."""
        lc = self.cfg.learner
        log.info(
            "WSRL: pre-trained %d updates on %d offline transitions; from now on online data only "
            "(warm-up: %d online steps without updates)",
            self.agent.critic_steps,
            self.offline.size,
            lc.learning_starts,
        )
        self._drop_offline()

    def _drop_offline(self) -> None:
        self.offline = ReplayBuffer(2, self.offline.obs_spec, self.offline.action_dim)

    def _may_update(self) -> bool:
        lc = self.cfg.learner
        pretrain = self._pretrain_updates()
        if self.agent.critic_steps < pretrain:
            return self.offline.size > 0 and self._offline_complete()
        if self.online.size < max(lc.learning_starts, 1):
            return False
        # WSRL's online updates are capped from the end of its warm-up, as if training began there
        start = lc.learning_starts if lc.offline == "wsrl" else 0
        return self.agent.critic_steps - pretrain < lc.max_update_to_data * (self.env_steps - start)

    def _batch(self) -> dict[str, Any]:
        """The next update's batch, from the buffers `learner.offline` and the phase call for."""
        lc = self.cfg.learner
        n_step, discount = self.agent.cfg.n_step, self.agent.cfg.discount
        if self.agent.critic_steps < self._pretrain_updates():
            batch = self.offline.sample(lc.batch_size, self.rng, n_step, discount)
            batch["offline"] = np.ones(lc.batch_size, bool)
            return batch
        if lc.offline == "symmetric" and self.offline.size > 0:
            return sample_symmetric(
                self.online, self.offline, lc.batch_size, self.rng, n_step, discount
            )
        return self.online.sample(lc.batch_size, self.rng, n_step, discount)

    def summary(self, wall_s: float) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "demo_steps": self.demo_steps,
            "updates": self.agent.critic_steps,
            "episodes": self.episodes,
            "interventions": self.takeovers,
            "learner_wall_s": round(wall_s, 1),
            "final_intervention_rate": self._intervention_rate(),
            **self._fault_counters(),
            "rejected_connections": sum(self.server.rejections.values())
            - self.server.rejections["payload"],
        }

    def _fault_counters(self) -> dict[str, float]:
        c = self.server.counters
        steps = self.env_steps + self.demo_steps
        return {
            "skipped_updates": self.agent.skipped_updates,
            "quarantined": len(self.quarantine),
            "rejected_messages": c["rejected_messages"],
            "rejected_rows": c["rejected_rows"],
            # what this process received; the journal holds the same plus what it replayed
            "bytes_per_env_step": round(c["bytes"] / steps) if steps else 0,
        }

    def _intervention_rate(self) -> float:
        steps = sum(s for _, _, s in self.train_window)
        return round(sum(i for _, i, _ in self.train_window) / steps, 4) if steps else 0.0

    def _report(
        self, wall: float, updates_per_s: float, steps_per_s: float, final: bool = False
    ) -> None:
        """One row to metrics.csv, TensorBoard and the log; the progress line; `final` ends it."""
        success = (
            np.mean([s for s, _, _ in self.train_window]) if self.train_window else float("nan")
        )
        eval_success = np.mean(self.eval_window) if self.eval_window else float("nan")
        row = {
            "wall_s": round(wall, 1),
            "env_steps": self.env_steps,
            "demo_steps": self.demo_steps,
            "updates": self.agent.critic_steps,
            "updates_per_s": round(updates_per_s, 2),
            "transitions_per_s": round(steps_per_s, 1),
            "episodes": self.episodes,
            "success_rate": round(float(success), 3),
            "eval_success_rate": round(float(eval_success), 3),
            "eval_episodes": self.eval_episodes,
            "intervention_rate": self._intervention_rate(),
            "takeovers": self.takeovers,
            "policy_version": self.agent.critic_steps,
            "online_size": self.online.size,
            "offline_size": self.offline.size,
            "live_actors": len(self.server.live_actors()),
            "critic_loss": round(self.last_metrics.get("critic_loss", float("nan")), 5),
            "actor_loss": round(self.last_metrics.get("actor_loss", float("nan")), 5),
            "temperature": round(self.agent.temperature, 5),
            **self._fault_counters(),
        }
        self._csv.writerow(row)
        self._csv_file.flush()
        for tag, value in row.items():
            if tag != "env_steps":
                self.tb.add_scalar(tag, float(value), self.env_steps)
        log.info(
            "%6.0fs  env steps %7d  updates %7d (%5.1f/s)  %6.1f steps/s  success %.2f  eval %.2f  "
            "interventions %.2f  actors %d",
            wall,
            self.env_steps,
            self.agent.critic_steps,
            updates_per_s,
            steps_per_s,
            row["success_rate"],
            row["eval_success_rate"],
            row["intervention_rate"],
            row["live_actors"],
        )
        if row["skipped_updates"] or row["quarantined"] or row["rejected_messages"]:
            log.info(
                "faults so far: %d skipped updates, %d quarantined messages, "
                "%d rejected messages (%d rows)",
                row["skipped_updates"],
                row["quarantined"],
                row["rejected_messages"],
                row["rejected_rows"],
            )
        stalled = self._stall.stalled(time.monotonic())
        if stalled is not None:
            log.warning(
                "learning stalled: %d of the last %d updates (%.0f s) were skipped for NaN/inf "
                "in the batch or the losses; check the observations and rewards the actors send "
                "(metrics.csv: skipped_updates)",
                stalled[0],
                stalled[1],
                STALL_S,
            )
        line = format_progress(
            Progress(
                elapsed_s=wall,
                env_steps=self.env_steps,
                updates_per_s=updates_per_s,
                success_rate=float(success),
                eval_success_rate=float(eval_success),
                intervention_rate=row["intervention_rate"],
                faults=row["skipped_updates"] + row["quarantined"] + row["rejected_messages"],
            )
        )
        if final:
            self.progress.close(line)
        else:
            self.progress.show(line)

    def close(self) -> None:
        self.server.close()
        self.journal.close()
        self.quarantine.close()
        self.tb.close()
        self._csv_file.close()


class _StallWatch:
    """Whether most updates of the last STALL_S seconds were skipped."""

    def __init__(self):
        self._window: collections.deque[tuple[float, bool]] = collections.deque()

    def update(self, skipped: bool, now: float) -> None:
        self._window.append((now, skipped))
        self._forget(now)

    def stalled(self, now: float) -> tuple[int, int] | None:
        """(skipped, attempted) if the window spans most of STALL_S and is mostly skipped."""
        self._forget(now)
        if not self._window or now - self._window[0][0] < 0.9 * STALL_S:
            return None
        skipped = sum(s for _, s in self._window)
        if skipped < STALL_SKIPPED_SHARE * len(self._window):
            return None
        return skipped, len(self._window)

    def _forget(self, now: float) -> None:
        while self._window and now - self._window[0][0] > STALL_S:
            self._window.popleft()
