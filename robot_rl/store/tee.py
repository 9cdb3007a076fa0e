"""Record every episode an actor runs: a stand-in for the actor's ActorClient that forwards to the
learner (if any) and commits each finished episode whole to a zarr episode store.

The Actor (robot_rl.loop.actor) hands the tee the state each episode starts from
(`start_episode`), streams step rows in `transitions` messages and ends each episode with a `stats`
message; the tee keeps the rows of the running episode in memory and commits them when the stats
arrive, so a crash loses at most the episode in progress and never leaves part of it visible.
The start state stays here: the learner does not need it, and the wire carries scalars only.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from robot_rl.store.episodes import EpisodeInfo, EpisodeStore


class StoreTee:
    """Forwards to `client` (None: no learner) and commits each finished episode to `store_path`
    ("" or None: no store). Episode source: `demo` for demonstrations, `intervention` when a human
    (or the scripted operator) drove any step, else the platform. `env_config` (the twin's env
    config, JSON-able) is stored under `config_hash` so that `robot-rl replay` builds the same
    twin. `fsync`: each commit survives power loss (EpisodeStore.open)."""

    DROP = ("episode_id", "step")  # row bookkeeping for the learner, not step data

    def __init__(
        self,
        client,
        store_path: str | None,
        task: str,
        platform: Literal["sim", "real"],
        config_hash: str,
        operator: str = "",
        env_config: dict[str, Any] | None = None,
        fsync: bool = True,
    ):
        self.client = client
        self.store_path = store_path or ""
        self.fsync = fsync
        self.platform = platform
        self.info = {
            "task": task,
            "platform": platform,
            "config_hash": config_hash,
            "operator": operator,
        }
        if env_config is not None and not config_hash:
            raise ValueError("StoreTee: env_config needs the config_hash it is stored under")
        self.env_config = env_config
        self._batches: list[dict[str, np.ndarray]] = []
        self._initial_state: dict[str, Any] = {}
        self._mode = "train"
        self.committed: list[int] = []
        if self.store_path:  # a bad store path fails now, before the first episode, not after it
            with EpisodeStore.open(self.store_path, "a", self.fsync):
                pass

    @property
    def error(self) -> str | None:
        return self.client.error if self.client is not None else None

    @property
    def connected(self) -> bool:
        return self.client.connected if self.client is not None else False

    def start_episode(self, initial_state: dict[str, Any]) -> None:
        """A new episode starts from `initial_state` (EpisodeInfo.initial_state); rows of an
        episode that never ended are dropped, as a crash would."""
        self._batches = []
        self._initial_state = initial_state

    def send(
        self,
        kind: str,
        arrays: dict[str, np.ndarray],
        policy_version: int = 0,
        meta: dict[str, Any] | None = None,
    ) -> None:
        meta = meta or {}
        if self.client is not None:  # the learner first: a store that fails must not cost it data
            self.client.send(kind, arrays, policy_version, meta)
        if kind == "transitions" and self.store_path:
            self._batches.append({k: v for k, v in arrays.items() if k not in self.DROP})
            self._mode = meta.get("mode", self._mode)
        elif kind == "stats" and self._batches:
            self._commit(bool(meta.get("success", False)))

    def _commit(self, success: bool) -> None:
        episode = {k: np.concatenate([b[k] for b in self._batches]) for k in self._batches[0]}
        self._batches = []
        if self._mode == "demo":
            source = "demo"
        elif episode["intervened"].any():
            source = "intervention"
        else:
            source = self.platform
        info = EpisodeInfo(
            success=success,
            source=source,
            start_time=float(episode["timestamp"][0]),
            initial_state=self._initial_state,
            **self.info,
        )
        self._initial_state = {}
        with EpisodeStore.open(self.store_path, "a", self.fsync) as store:
            self.committed.append(store.append(episode, info, self.env_config))

    def take_weights(self):
        return self.client.take_weights() if self.client is not None else None

    def flush(self, timeout_s: float) -> bool:
        return self.client.flush(timeout_s) if self.client is not None else True

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
