"""Synchronous trainer: one process steps the env and updates the agent, to validate the algorithm.

The distributed actor/learner reuses the same `SACAgent`, `ReplayBuffer` and checkpoint code; this
loop only adds the env stepping. Rows go into the online buffer one at a time through
`add_rows(stream, row)`, the same path the distributed actor's rows take.

Offline data modes:
- `symmetric` (RLPD): every batch is half online, half demonstrations (+ interventions).
- `wsrl`: pre-train on the demonstrations for `wsrl_pretrain_updates`, collect `wsrl_warmup_steps`
  env steps with that policy (no updates), then drop the offline data and train online only.
- `none`: online data only (demonstrations unused).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from controllers.config import ConfigError, to_dict
from robot_rl.agents.checkpoint import load_checkpoint, save_checkpoint
from robot_rl.agents.replay_buffer import (
    ReplayBuffer,
    RewardMode,
    obs_spec_from_space,
    sample_symmetric,
)
from robot_rl.agents.sac import SACAgent, SACConfig


@dataclass
class TrainerConfig:
    task: str = "pick_cube"
    env: dict[str, Any] = field(default_factory=dict)  # overrides of the env config
    seed: int = 0
    total_env_steps: int = 30_000
    batch_size: int = 256
    updates_per_step: int = 1  # update-to-data ratio (critic steps per env step)
    learning_starts: int = 500  # env steps before the first update (online data to mix in)
    random_steps: int = 0  # uniform random actions at the start
    demos: int = 20  # successful scripted demonstrations collected into the offline buffer
    offline: Literal["symmetric", "wsrl", "none"] = "symmetric"
    wsrl_pretrain_updates: int = 2_000
    wsrl_warmup_steps: int = 1_000
    reward_mode: RewardMode = "task"
    replay_capacity: int = 200_000
    eval_every: int = 2_500  # env steps between evaluations (0: only at the end)
    eval_episodes: int = 20
    final_eval_episodes: int = 100
    checkpoint_every: int = 0  # env steps between checkpoints (0: none)
    torch_threads: int = 1
    sac: SACConfig = field(default_factory=SACConfig)

    def __post_init__(self):
        for key in ("total_env_steps", "batch_size", "replay_capacity", "torch_threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"trainer.{key}: must be >= 1, got {getattr(self, key)}")
        for key in (
            "updates_per_step",
            "learning_starts",
            "random_steps",
            "demos",
            "wsrl_pretrain_updates",
            "wsrl_warmup_steps",
            "eval_every",
            "eval_episodes",
            "final_eval_episodes",
            "checkpoint_every",
        ):
            if getattr(self, key) < 0:
                raise ConfigError(f"trainer.{key}: must be >= 0, got {getattr(self, key)}")
        if self.offline != "none" and self.demos == 0:
            raise ConfigError(f"trainer.offline: {self.offline!r} needs demos > 0")


def _row(
    obs: dict,
    action: np.ndarray,
    reward: float,
    first: bool,
    last: bool,
    terminal: bool,
    intervened: bool = False,
) -> dict:
    """One RLDS step row with a leading axis of 1."""
    row = {k: np.asarray(v)[None] for k, v in obs.items()}
    row.update(
        action=np.asarray(action, np.float32)[None],
        reward=np.array([reward], np.float32),
        intervened=np.array([intervened]),
        is_first=np.array([first]),
        is_last=np.array([last]),
        is_terminal=np.array([terminal]),
    )
    return row


def collect_demos(
    env, expert, n: int, seed: int, max_tries: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Roll out the scripted expert; keep `n` successful episodes as dicts of T+1-row arrays."""
    episodes, tries = [], 0
    max_tries = max_tries or 5 * n
    while len(episodes) < n:
        if tries >= max_tries:
            raise RuntimeError(
                f"scripted expert succeeded in only {len(episodes)} of {tries} episodes"
            )
        obs, _ = env.reset(seed=seed + tries)
        expert.reset()
        rows, done, info, terminated = [], False, {}, False
        while not done:
            action = np.clip(np.asarray(expert.act(obs), np.float32), -1, 1)
            next_obs, reward, terminated, truncated, info = env.step(action)
            rows.append(_row(obs, action, reward, not rows, False, False))
            obs, done = next_obs, terminated or truncated
        rows.append(_row(obs, np.zeros(7, np.float32), 0.0, False, True, bool(terminated)))
        tries += 1
        if info.get("success", False):
            episodes.append({k: np.concatenate([r[k] for r in rows]) for k in rows[0]})
    return episodes


def evaluate(env, agent: SACAgent, episodes: int, seed: int) -> float:
    """Success rate of the deterministic policy over `episodes` randomised episodes."""
    successes = 0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, info = False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(agent.act(obs, deterministic=True))
            done = terminated or truncated
        successes += bool(info.get("success", False))
    return successes / max(episodes, 1)


class Trainer:
    """Env + agent in one loop; `run()` returns the eval history [(env_steps, success), ...]."""

    def __init__(
        self,
        cfg: TrainerConfig,
        make_env: Callable[[], Any],
        make_expert: Callable[[Any], Any] | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
    ):
        self.cfg = cfg
        torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(
            cfg.seed
        )  # the policy's gripper exploration draws from numpy's global stream
        self.rng = np.random.default_rng(cfg.seed)
        self.env, self.eval_env = make_env(), make_env()
        self.make_expert = make_expert
        self.agent = SACAgent(obs_spec_from_space(self.env.observation_space), cfg.sac)
        spec = self.agent.storage_spec()
        self.online = ReplayBuffer(cfg.replay_capacity, spec, reward_mode=cfg.reward_mode)
        self.offline = (
            ReplayBuffer(cfg.replay_capacity, spec, reward_mode=cfg.reward_mode)
            if cfg.demos
            else None
        )
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.env_steps, self.episodes, self.history = 0, 0, []
        self.phase = "start"  # start -> (pretrained ->) online
        self.last_update: dict[
            str, float
        ] = {}  # the latest update's losses, logged with each evaluation
        if resume:
            self._resume()

    # ---- checkpoints -------------------------------------------------------------------------
    def _config_dict(self) -> dict:
        spec = self.agent.policy.obs_spec
        return {
            "trainer": to_dict(self.cfg),
            "obs_spec": {k: [list(s), d.str] for k, (s, d) in spec.items()},
        }

    def save(self) -> None:
        ckpt = self.run_dir / "checkpoint"
        state = {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "history": self.history,
            "phase": self.phase,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state().tolist(),
        }
        save_checkpoint(ckpt, self.agent, self._config_dict(), state)
        self.online.save(ckpt / "online.npz")
        if self.offline is not None:
            self.offline.save(ckpt / "offline.npz")

    def _resume(self) -> None:
        if self.run_dir is None:
            raise ValueError("resume needs a run directory")
        ckpt = self.run_dir / "checkpoint"
        state = load_checkpoint(ckpt, self.agent, self._config_dict())
        self.online = ReplayBuffer.load(ckpt / "online.npz")
        if self.offline is not None:
            self.offline = ReplayBuffer.load(ckpt / "offline.npz")
        self.env_steps, self.episodes, self.history, self.phase = (
            state["env_steps"],
            state["episodes"],
            state["history"],
            state["phase"],
        )
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))

    # ---- the loop ----------------------------------------------------------------------------
    def _batch(self, buffer: ReplayBuffer | None = None) -> dict:
        cfg = self.cfg
        if buffer is None and self.offline is not None and cfg.offline == "symmetric":
            return sample_symmetric(
                self.online,
                self.offline,
                cfg.batch_size,
                self.rng,
                cfg.sac.n_step,
                cfg.sac.discount,
            )
        batch = (buffer or self.online).sample(
            cfg.batch_size, self.rng, cfg.sac.n_step, cfg.sac.discount
        )
        batch["offline"] = np.full(
            cfg.batch_size, buffer is not None and buffer is self.offline
        )  # WSRL pre-training
        return batch

    def _log(self, record: dict) -> None:
        if self.run_dir is not None:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _evaluate(self, episodes: int) -> None:
        success = evaluate(
            self.eval_env, self.agent, episodes, seed=10_000_000 + self.cfg.seed * 1000
        )
        self.history.append((self.env_steps, success))
        self._log(
            {
                "env_steps": self.env_steps,
                "success": success,
                "episodes": episodes,
                "critic_steps": self.agent.critic_steps,
                "skipped": self.agent.skipped_updates,
                "temperature": self.agent.temperature,
                "time": time.time(),
                "last_update": self.last_update,
            }
        )

    def run(self) -> list[tuple[int, float]]:
        cfg = self.cfg
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.phase == "start":
            if self.offline is not None:
                if self.make_expert is None:
                    raise ValueError("demos > 0 needs make_expert")
                for ep in collect_demos(
                    self.env,
                    self.make_expert(self.env),
                    cfg.demos,
                    seed=1_000_000 + cfg.seed * 1000,
                ):
                    self.offline.add_episode(self.agent.to_storage(ep))
            if cfg.offline == "wsrl":
                for _ in range(cfg.wsrl_pretrain_updates):
                    self.agent.update(self._batch(self.offline))
            self.phase = "online"
        warmup_end = cfg.wsrl_warmup_steps if cfg.offline == "wsrl" else 0
        next_eval = (
            (self.env_steps // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
        )
        next_ckpt = (
            (self.env_steps // cfg.checkpoint_every + 1) * cfg.checkpoint_every
            if cfg.checkpoint_every
            else None
        )
        stream = f"sync-{self.episodes}"
        while self.env_steps < cfg.total_env_steps:
            obs, _ = self.env.reset(seed=cfg.seed * 1_000_003 + self.episodes)
            first, done = True, False
            while not done and self.env_steps < cfg.total_env_steps:
                if self.env_steps < cfg.random_steps:
                    action = self.rng.uniform(-1, 1, 7).astype(np.float32)
                else:
                    action = self.agent.act(obs, deterministic=False)
                next_obs, reward, terminated, truncated, info = self.env.step(action)
                self.online.add_rows(
                    stream,
                    self.agent.to_storage(_row(obs, action, float(reward), first, False, False)),
                )
                obs, first, done = next_obs, False, terminated or truncated
                self.env_steps += 1
                if self.env_steps >= max(cfg.learning_starts, warmup_end) and self.online.size > 0:
                    for _ in range(cfg.updates_per_step):
                        self.last_update = self.agent.update(self._batch())
                if next_eval is not None and self.env_steps >= next_eval:
                    self._evaluate(cfg.eval_episodes)
                    next_eval += cfg.eval_every
            self.online.add_rows(
                stream,
                self.agent.to_storage(
                    _row(obs, np.zeros(7, np.float32), 0.0, first, True, bool(done and terminated))
                ),
            )
            self.episodes += 1
            if next_ckpt is not None and self.env_steps >= next_ckpt and self.run_dir is not None:
                self.save()
                next_ckpt += cfg.checkpoint_every
        if cfg.final_eval_episodes:
            self._evaluate(cfg.final_eval_episodes)
        if self.run_dir is not None:
            self.save()
        return self.history
