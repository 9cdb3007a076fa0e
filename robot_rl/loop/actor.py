"""The actor loop: act in an environment, let a human (or scripted) operator override, stream steps.

Environment-agnostic: anything with the gymnasium API and the observation/action contract of
docs/contracts.md (the twin now, a ROS adapter later). Each step:
  1. take the newest weights from the learner, if any arrived (never waits for them, except when
     paced: see below);
  2. policy action (inference on the best available device);
  3. the operator's action replaces it when the operator intervenes -> stored with intervened=True;
  4. the action guard (safety filter at the action level: finite and in [-1, 1]; pose limits are
     enforced below it by controllers.safety in the env/robot controller);
  5. step the env, append one RLDS step row; every `batch_steps` rows go to the learner.
Rows carry actor id (message header), episode id, step, policy version and the intervened flag.
A client with a `start_episode(initial_state)` method (the StoreTee) is told, right after each
reset, the state the episode starts from (robot_rl.store.recorder.initial_state_of), which is
what `robot-rl replay` restarts it from.

Pacing (`steps_per_weights` > 0, for the twin): a real robot acts at 10 Hz whatever the learner
does, but the twin runs as fast as the CPU lets it and would fill the buffer with steps of ever
staler policies while the learner falls behind. A paced actor that has taken `steps_per_weights`
training steps on one weights version waits, for at most `pace_timeout_s`, for newer weights; so the
update-to-data ratio stays near publish_every / (steps_per_weights * actors). It never waits before
the learner's first update, during its first `pace_after_steps` training steps (its share of the
learner's learning_starts: a WSRL warm-up publishes no new weights), in demonstration or evaluation
episodes, or while the learner is unreachable (a dead learner must not stop the actor).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from robot_rl.store.recorder import initial_state_of
from robot_rl.transport.channels import ActorClient

if TYPE_CHECKING:
    from robot_rl.loop.run_config import RunConfig

log = logging.getLogger(__name__)

Mode = Literal["train", "eval", "demo"]


def best_device(requested: str = "auto") -> str:
    """The device name `requested` resolves to on this machine (robot_rl.agents.device): `auto` is
    cuda if torch sees a GPU, else mps on Apple silicon, else cpu."""
    from robot_rl.agents.device import resolve_device

    return str(resolve_device(requested, "actor_device"))


def learner_client(
    run: RunConfig,
    endpoint: str,
    actor_id: str,
    spool_dir: str,
    read_keys: Iterable[str],
    ledger: str | None = None,
) -> ActorClient:
    """The started link to the learner of `run`, sending only the observation keys the policy
    reads (`read_keys`: what the learner stores; reward-only cameras stay on this machine)."""
    from robot_rl.transport import keys as keyfiles
    from robot_rl.transport.channels import LinkTiming
    from robot_rl.transport.ledger import Ledger
    from robot_rl.transport.schema import step_arrays

    t = run.transport
    return ActorClient(
        endpoint,
        actor_id,
        run.data_hash(),
        spool_dir,
        spool_max_bytes=int(t.spool_max_mb * 1e6),
        spool_fsync=t.spool_fsync,
        timing=LinkTiming(t.heartbeat_s, t.peer_timeout_s, t.resend_after_s),
        curve=keyfiles.client_keys(t.keys) if t.keys else None,
        send_keys=frozenset(read_keys) | step_arrays(),
        ledger=Ledger(ledger) if ledger else None,
    ).start()


def guard_action(action: np.ndarray, dim: int = 7) -> tuple[np.ndarray, str]:
    """The action the robot may execute, and why it was changed ("" if it was not).

    Non-finite or wrongly shaped actions become zeros (hold the current target, gripper stays).
    """
    action = np.asarray(action, np.float32)
    if action.shape != (dim,):
        return np.zeros(dim, np.float32), f"action shape {action.shape} is not ({dim},)"
    if not np.all(np.isfinite(action)):
        return np.zeros(dim, np.float32), "non-finite action"
    clipped = np.clip(action, -1.0, 1.0)
    return clipped, ("clipped to [-1, 1]" if np.any(clipped != action) else "")


@dataclass
class EpisodeStats:
    episode_id: int
    mode: Mode
    steps: int
    ret: float
    success: bool
    takeovers: int  # separate operator interventions
    intervened_steps: int
    policy_version: int

    def meta(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "mode": self.mode,
            "steps": self.steps,
            "return": self.ret,
            "success": self.success,
            "takeovers": self.takeovers,
            "intervened_steps": self.intervened_steps,
        }


class Actor:
    """Runs episodes of `env` with `policy`, streaming step rows through `client` (None:
    offline)."""

    def __init__(
        self,
        env,
        policy,
        client: ActorClient | None,
        *,
        batch_steps: int = 10,
        operator=None,
        max_episode_steps: int | None = None,
        on_weights: Callable[[int], None] | None = None,
        steps_per_weights: int = 0,
        pace_timeout_s: float = 2.0,
        pace_after_steps: int = 0,
    ):
        self.env = env
        self.policy = policy
        self.client = client
        self.batch_steps = batch_steps
        self.operator = operator
        self.max_episode_steps = (
            max_episode_steps or getattr(env.spec, "max_episode_steps", None) or 1000
        )
        self.policy_version = 0
        self.has_weights = False  # whether any weights came from the learner yet
        self.next_episode_id = 0
        self.on_weights = on_weights
        self.steps_per_weights = steps_per_weights
        self.pace_timeout_s = pace_timeout_s
        self.pace_after_steps = pace_after_steps
        self.paced_s = 0.0  # time spent waiting for weights
        self.train_steps = 0
        self._steps_on_weights = 0
        self._rows: list[dict[str, np.ndarray]] = []

    def swap_weights(self) -> bool:
        """Load the newest weights if new ones arrived; the current ones stay on any problem."""
        if self.client is None:
            return False
        weights = self.client.take_weights()
        if weights is None:
            return False
        try:
            self.policy.load_actor_parameters(weights.arrays)
        except ValueError as exc:
            log.error(
                "weights v%d do not fit this policy, keeping v%d: %s",
                weights.version,
                self.policy_version,
                exc,
            )
            return False
        self.policy_version = weights.version
        self.has_weights = True
        self._steps_on_weights = 0
        if self.on_weights is not None:
            self.on_weights(weights.version)
        return True

    def run_episode(self, mode: Mode = "train", seed: int | None = None) -> EpisodeStats:
        episode_id = self.next_episode_id
        self.next_episode_id += 1
        obs, info = self.env.reset(seed=seed)
        start_episode = getattr(self.client, "start_episode", None)
        if start_episode is not None:
            start_episode(initial_state_of(self.env))
        prob = info.get(
            "success_prob", math.nan
        )  # the reward model's score of `obs`, where there is one
        operator = self.operator if mode != "eval" else None
        if operator is not None:
            operator.start_episode(self.max_episode_steps, demo=(mode == "demo"))
        ret, step, takeovers, intervened_steps, was_intervening = 0.0, 0, 0, 0, False
        terminated = truncated = False
        while not (terminated or truncated):
            if mode == "train" and self._must_wait():
                self._wait_for_weights()
            else:
                self.swap_weights()
            if mode == "train":
                self._steps_on_weights += 1
                self.train_steps += 1
            policy_action = self.policy.act(obs, deterministic=(mode == "eval"))
            human = operator.act(obs, policy_action) if operator is not None else None
            intervened = human is not None
            action, reason = guard_action(human if intervened else policy_action)
            if reason:
                log.warning(
                    "episode %d step %d: %s action guarded: %s",
                    episode_id,
                    step,
                    "operator" if intervened else "policy",
                    reason,
                )
            takeovers += intervened and not was_intervening
            intervened_steps += intervened
            was_intervening = intervened
            timestamp = time.time()
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            self._append(
                obs,
                action,
                policy_action,
                float(reward),
                intervened,
                prob,
                timestamp,
                episode_id,
                step,
                first=step == 0,
                last=False,
                terminal=False,
                mode=mode,
            )
            ret += float(reward)
            obs, prob = next_obs, info.get("success_prob", math.nan)
            step += 1
        self._append(
            obs,
            np.zeros_like(action),
            np.zeros_like(action),
            0.0,
            False,
            prob,
            time.time(),
            episode_id,
            step,
            first=False,
            last=True,
            terminal=bool(terminated),
            mode=mode,
        )
        self._flush(episode_id, mode)
        success = bool(info.get("success", False))
        if operator is not None:
            operator.end_episode(success)
        stats = EpisodeStats(
            episode_id, mode, step, ret, success, takeovers, intervened_steps, self.policy_version
        )
        if self.client is not None:
            self.client.send("stats", {}, self.policy_version, stats.meta())
        return stats

    def _must_wait(self) -> bool:
        return (
            self.steps_per_weights > 0
            and self._steps_on_weights >= self.steps_per_weights
            and self.train_steps >= self.pace_after_steps
            and self.policy_version > 0
            and self.client is not None
            and bool(self.client.connected)
        )

    def _wait_for_weights(self) -> None:
        start = time.monotonic()
        while not self.swap_weights() and time.monotonic() - start < self.pace_timeout_s:
            time.sleep(0.002)
        self._steps_on_weights = (
            0  # timed out or not: the next wait comes after another block of steps
        )
        self.paced_s += time.monotonic() - start

    def _append(
        self,
        obs,
        action,
        policy_action,
        reward,
        intervened,
        success_prob,
        timestamp,
        episode_id,
        step,
        *,
        first,
        last,
        terminal,
        mode,
    ) -> None:
        row = {k: np.asarray(v) for k, v in obs.items()}
        row.update(
            action=np.asarray(action, np.float32),
            policy_action=np.asarray(policy_action, np.float32),
            reward=np.float32(reward),
            intervened=np.bool_(intervened),
            success_prob=np.float32(success_prob),
            policy_version=np.int64(self.policy_version),
            timestamp=np.float64(timestamp),
            is_first=np.bool_(first),
            is_last=np.bool_(last),
            is_terminal=np.bool_(terminal),
            episode_id=np.int64(episode_id),
            step=np.int64(step),
        )
        self._rows.append(row)
        if len(self._rows) >= self.batch_steps:
            self._flush(episode_id, mode)

    def _flush(self, episode_id: int, mode: Mode) -> None:
        if not self._rows or self.client is None:
            self._rows.clear()
            return
        batch = {k: np.stack([r[k] for r in self._rows]) for k in self._rows[0]}
        self._rows.clear()
        self.client.send(
            "transitions", batch, self.policy_version, {"episode_id": episode_id, "mode": mode}
        )
