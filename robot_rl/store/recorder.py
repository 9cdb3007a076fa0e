"""Turn env steps into the contract's step rows (docs/contracts.md) and run recorded episodes.

`EpisodeRecorder` is what every loop that records uses (the `record` command, `eval`, the actor):
start() with the first observation, step() after every env step, finish() for the episode dict.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robot_rl.store.episodes import STEP_KEYS, EpisodeInfo


class EpisodeRecorder:
    """Collects one episode at a time: row t holds o_t and what followed it (a_t, r_t, ...)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._obs: list[dict[str, np.ndarray]] = []
        self._rows: list[dict[str, Any]] = []
        self._terminal = False

    @property
    def steps(self) -> int:
        """Actions recorded so far in the current episode."""
        return len(self._rows)

    @property
    def active(self) -> bool:
        return bool(self._obs)

    def start(self, obs: dict[str, np.ndarray], timestamp: float | None = None) -> None:
        """Begin an episode with its first observation o_0 (discards an unfinished one)."""
        self._check_obs(obs)
        self._obs = [self._copy(obs)]
        self._times = [self._clock() if timestamp is None else timestamp]
        self._rows = []
        self._terminal = False

    def step(
        self,
        action: np.ndarray,
        obs: dict[str, np.ndarray],
        reward: float,
        terminated: bool,
        *,
        policy_action: np.ndarray | None = None,
        intervened: bool = False,
        success_prob: float = math.nan,
        policy_version: int = 0,
        timestamp: float | None = None,
    ) -> None:
        """Record a_t (executed), r_t and the next observation o_{t+1}; `terminated` marks o_{t+1}
        terminal."""
        if not self._obs:
            raise RuntimeError("EpisodeRecorder.step() before start()")
        if self._terminal:
            raise RuntimeError(
                "EpisodeRecorder.step() after a terminal step; call finish() or start()"
            )
        action = np.asarray(action, np.float32).reshape(-1)
        policy_action = (
            action if policy_action is None else np.asarray(policy_action, np.float32).reshape(-1)
        )
        if policy_action.shape != action.shape:
            raise ValueError(
                f"policy_action shape {policy_action.shape} != action shape {action.shape}"
            )
        self._check_obs(obs)
        self._rows.append(
            {
                "action": action,
                "policy_action": policy_action,
                "reward": float(reward),
                "intervened": bool(intervened),
                "success_prob": float(success_prob),
                "policy_version": int(policy_version),
            }
        )
        self._obs.append(self._copy(obs))
        self._times.append(self._clock() if timestamp is None else timestamp)
        self._terminal = bool(terminated)

    def finish(self) -> dict[str, np.ndarray]:
        """The episode as a flat dict of arrays with T+1 rows; the recorder is then empty."""
        if not self._rows:
            raise RuntimeError(
                "EpisodeRecorder.finish(): the episode has no step (call step() at least once)"
            )
        n = len(self._obs)
        episode = {key: np.stack([o[key] for o in self._obs]) for key in self._obs[0]}
        a_dim = self._rows[0]["action"].shape[0]
        for key in ("action", "policy_action"):
            episode[key] = np.zeros((n, a_dim), np.float32)
            episode[key][:-1] = np.stack([r[key] for r in self._rows])
        for key in ("reward", "intervened", "success_prob", "policy_version"):
            column = np.zeros(n, STEP_KEYS[key])
            column[:-1] = [r[key] for r in self._rows]
            episode[key] = column
        episode["success_prob"][-1] = math.nan  # no classifier ran on the padding row
        episode["timestamp"] = np.asarray(self._times, np.float64)
        episode["is_first"] = np.arange(n) == 0
        episode["is_last"] = np.arange(n) == n - 1
        episode["is_terminal"] = episode["is_last"] & self._terminal
        self._obs, self._rows = [], []
        return episode

    @staticmethod
    def _copy(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.array(v, copy=True) for k, v in obs.items()}

    def _check_obs(self, obs: dict[str, np.ndarray]) -> None:
        reserved = sorted(set(obs) & set(STEP_KEYS))
        if reserved:
            raise ValueError(
                f"observation keys {reserved} are reserved step keys (docs/contracts.md)"
            )
        if self._obs and set(obs) != set(self._obs[0]):
            raise ValueError(
                "observation keys changed within an episode: "
                f"{sorted(obs)} vs {sorted(self._obs[0])}"
            )


def run_episode(
    env: Any,
    act: Callable[[dict[str, np.ndarray]], np.ndarray],
    *,
    seed: int | None = None,
    reset_options: dict[str, Any] | None = None,
    max_steps: int | None = None,
    policy_version: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run one episode of a gymnasium env under `act`; the step rows and what EpisodeInfo needs.

    Returns (episode, facts) with facts: success, steps, start_time and the initial state
    (`initial_state_of`).
    """
    recorder = EpisodeRecorder()
    obs, info = env.reset(seed=seed, options=reset_options)
    initial_state = initial_state_of(env)
    recorder.start(obs)
    success, t = False, 0
    while max_steps is None or t < max_steps:
        action = np.asarray(act(obs), np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        t += 1
        recorder.step(action, obs, reward, terminated, policy_version=policy_version)
        success = bool(info.get("success", False))
        if terminated or truncated:
            break
    episode = recorder.finish()
    facts = {
        "success": success,
        "steps": t,
        "initial_state": initial_state,
        "start_time": float(episode["timestamp"][0]),
    }
    return episode, facts


def initial_state_of(env: Any) -> dict[str, Any]:
    """EpisodeInfo.initial_state for an episode that starts in `env`'s current state (call it right
    after reset): the env's `initial_state()` arrays (joint positions, object pose where known) as
    lists, plus the encoded `sim_state` where the env is the twin. Non-finite arrays are left out:
    a replay then falls back to what the episode's first observation holds."""
    base = getattr(env, "unwrapped", env)  # a gymnasium wrapper does not forward methods
    out: dict[str, Any] = {}
    for key, value in (base.initial_state() if hasattr(base, "initial_state") else {}).items():
        arr = np.asarray(value, np.float64).reshape(-1)
        if np.all(np.isfinite(arr)):
            out[key] = arr.tolist()
    if hasattr(base, "get_sim_state"):
        out["sim_state"] = encode_state(base.get_sim_state())
    return out


def encode_state(state: dict[str, np.ndarray]) -> dict[str, Any]:
    """A dict of arrays as JSON (dtype, shape, flat values): floats round-trip exactly through
    JSON."""
    out = {}
    for key, value in state.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"state[{key!r}] contains NaN or inf")
        out[key] = {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": arr.ravel().tolist()}
    return out


def decode_state(encoded: dict[str, Any]) -> dict[str, np.ndarray]:
    """Inverse of encode_state."""
    try:
        return {
            k: np.asarray(v["data"], dtype=np.dtype(v["dtype"])).reshape(v["shape"])
            for k, v in encoded.items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"initial state is not an encoded array dict: {exc}") from exc


def config_hash(config: Any) -> str:
    """Short stable hash of a JSON-able config (for EpisodeInfo.config_hash)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def episode_info(task: str, source: str, facts: dict[str, Any], **fields: Any) -> EpisodeInfo:
    """EpisodeInfo from run_episode's facts plus any other attribute (operator, seed, ...)."""
    return EpisodeInfo(
        task=task,
        source=source,
        success=facts["success"],
        initial_state=facts["initial_state"],
        start_time=facts["start_time"],
        **fields,
    )
