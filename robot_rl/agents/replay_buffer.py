"""Replay buffers fed with RLDS-style step rows (docs/contracts.md), whole episodes or row by row.

Storage is one ring of rows: row t holds o_t and a_t, r_t; the next observation o_{t+1} is found
through `next_index[t]`, so every frame is stored once. Rows arrive either as a whole episode
(`add_episode`) or incrementally per stream (`add_rows(stream, rows)`; the distributed actor sends
rows mid-episode, interleaved from several actors). A row becomes a sampleable transition when its
successor in the same stream arrives; an `is_last` row never is one.

Bounded: when the ring wraps, the oldest rows are overwritten and any transition whose o_{t+1}
lived there is dropped. Sampling is uniform over transitions.

Device-resident keys: observation keys named in `devices` are held as torch tensors on that device
(the learner's GPU keeps cached image features there), so a batch's copies of them are gathered
where the update runs and never cross from the host; every other key is a numpy array.

Reward modes: `task` uses the stored reward; `rlif` the RLIF reward (-1 on the transition after
which a human took over, 0 otherwise); `rlif+task` their sum.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from controllers.action import ACTION_DIM, gripper_class
from controllers.config import ConfigError

if TYPE_CHECKING:
    import torch

STEP_KEYS = ("action", "reward", "intervened", "is_first", "is_last", "is_terminal")
RewardMode = Literal["task", "rlif", "rlif+task"]
ObsSpec = dict[str, tuple[tuple[int, ...], np.dtype]]


@dataclass
class _Stream:
    slot: int  # ring slot of this stream's newest row
    gen: int  # write generation of that slot when we wrote it (detects an overwritten row)
    open: bool  # the newest row is not is_last: the next row continues the episode
    gripper: int  # last non-stay gripper command in the episode (+1 close, -1 open)


def gripper_toggles(action: np.ndarray, prev_gripper: np.ndarray) -> np.ndarray:
    """Whether a gripper action changes the command in force before it (`prev_gripper`, +1/-1)."""
    cmd = gripper_class(action)
    return (cmd != 0) & (cmd != np.asarray(prev_gripper))


class ReplayBuffer:
    """A bounded ring of step rows with uniform transition sampling."""

    def __init__(
        self,
        capacity: int,
        obs_spec: ObsSpec,
        action_dim: int = ACTION_DIM,
        reward_mode: RewardMode = "task",
        devices: Mapping[str, torch.device] | None = None,
    ):
        if capacity < 2:
            raise ConfigError(f"replay capacity: must be >= 2, got {capacity}")
        if reward_mode not in ("task", "rlif", "rlif+task"):
            raise ConfigError(
                f"reward_mode: {reward_mode!r} is not one of ['task', 'rlif', 'rlif+task']"
            )
        clash = sorted(set(obs_spec) & (set(STEP_KEYS) | {"done", "next_index"}))
        if clash:
            raise ConfigError(f"observation keys {clash} use reserved step-key names")
        self.capacity, self.action_dim, self.reward_mode = capacity, action_dim, reward_mode
        self.obs_spec = {k: (tuple(s), np.dtype(d)) for k, (s, d) in obs_spec.items()}
        self.devices = dict(devices or {})
        unknown = sorted(set(self.devices) - set(self.obs_spec))
        if unknown:
            raise ConfigError(f"replay devices: keys {unknown} are not observation keys")
        self.obs = {k: self._ring(k, (capacity, *s), d) for k, (s, d) in self.obs_spec.items()}
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(
            capacity, np.float32
        )  # the reward used for learning (after reward_mode)
        self.task_reward = np.zeros(capacity, np.float32)
        self.intervened = np.zeros(capacity, bool)
        self.is_terminal = np.zeros(capacity, bool)
        self.done = np.zeros(capacity, np.float32)  # is_terminal of the successor row
        self.prev_gripper = np.full(capacity, -1, np.int8)  # gripper command in force before a_t
        self.next_index = np.full(capacity, -1, np.int64)
        self.prev_index = np.full(capacity, -1, np.int64)
        self.valid = np.zeros(capacity, bool)
        self.gen = np.zeros(capacity, np.int64)
        self.cursor = 0  # next slot to write
        self.rows_written = 0
        self.streams: dict[str, _Stream] = {}
        self._episode_ids = itertools.count()

    def _ring(self, key: str, shape: tuple[int, ...], dtype: np.dtype):
        if key not in self.devices:
            return np.zeros(shape, dtype)
        import torch

        torch_dtype = torch.from_numpy(np.zeros(0, dtype)).dtype
        return torch.zeros(shape, dtype=torch_dtype, device=self.devices[key])

    def _take(self, key: str, rows: np.ndarray):
        """Rows of observation `key` (indexed where the ring lives)."""
        ring = self.obs[key]
        if key not in self.devices:
            return ring[rows]
        import torch

        return ring[torch.from_numpy(rows).to(ring.device)]

    def _put(self, key: str, slots: np.ndarray, values: np.ndarray) -> None:
        ring = self.obs[key]
        if key not in self.devices:
            ring[slots] = values
            return
        import torch

        ring[torch.from_numpy(slots).to(ring.device)] = torch.as_tensor(np.asarray(values)).to(
            ring.device
        )

    # ---- ingestion -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of sampleable transitions."""
        return int(self.valid.sum())

    def add_episode(self, episode: dict[str, np.ndarray]) -> None:
        """Add a whole episode of T+1 rows (row 0 is_first, row T is_last)."""
        n = self._check_rows(episode, "episode")
        if not bool(episode["is_first"][0]) or not bool(episode["is_last"][n - 1]):
            raise ValueError("episode: must start with an is_first row and end with an is_last row")
        self.add_rows(f"episode-{next(self._episode_ids)}", episode)

    def add_rows(self, stream: str, rows: dict[str, np.ndarray]) -> None:
        """Append rows of one stream (e.g. one actor); episodes in a stream follow each other."""
        n = self._check_rows(rows, f"rows of stream {stream!r}")
        if n > self.capacity:
            raise ValueError(
                f"rows of stream {stream!r}: {n} rows exceed the replay capacity {self.capacity}"
            )
        is_first = np.asarray(rows["is_first"], bool)
        is_last = np.asarray(rows["is_last"], bool)
        state = self.streams.get(stream)
        expects_first = np.concatenate([[state is None or not state.open], is_last[:-1]])
        bad = np.flatnonzero(expects_first != is_first)
        if bad.size:
            i = int(bad[0])
            what = (
                "must be is_first (previous row ended an episode)"
                if expects_first[i]
                else "is_first inside an open episode"
            )
            raise ValueError(f"rows of stream {stream!r}: row {i} {what}")

        slots = (self.cursor + np.arange(n)) % self.capacity
        self._evict(slots)
        for k in self.obs:
            self._put(k, slots, rows[k])
        action = np.asarray(rows["action"], np.float32).reshape(n, self.action_dim)
        self.action[slots] = action
        self.task_reward[slots] = np.asarray(rows["reward"], np.float32).reshape(n)
        self.intervened[slots] = np.asarray(rows["intervened"], bool)
        self.is_terminal[slots] = np.asarray(rows["is_terminal"], bool)
        self.gen[slots] += 1
        self.prev_gripper[slots] = self._gripper_before(action[:, -1], is_first, state)
        self.cursor = int((self.cursor + n) % self.capacity)
        self.rows_written += n

        # link each row to its successor: inside the chunk, and the stream's previous row to row 0
        src = list(slots[:-1][~is_last[:-1]])
        dst = list(slots[1:][~is_last[:-1]])
        if state is not None and state.open and self.gen[state.slot] == state.gen:
            src.insert(0, state.slot)
            dst.insert(0, int(slots[0]))
        self._link(np.asarray(src, np.int64), np.asarray(dst, np.int64))
        last = int(slots[-1])
        self.streams[stream] = _Stream(
            last, int(self.gen[last]), not bool(is_last[-1]), int(self.prev_gripper[last])
        )
        cmd = int(gripper_class(action[-1, -1]))
        if cmd != 0:
            self.streams[stream].gripper = cmd
        if is_last[-1]:  # a closed stream is the same as a new one: its next row must be is_first
            del self.streams[stream]

    def _check_rows(self, rows: dict[str, np.ndarray], where: str) -> int:
        missing = [k for k in (*STEP_KEYS, *self.obs) if k not in rows]
        if missing:
            raise KeyError(f"{where}: missing key(s) {missing}")
        n = len(rows["is_first"])
        if n == 0:
            raise ValueError(f"{where}: no rows")
        for k in (*STEP_KEYS, *self.obs):
            arr = np.asarray(rows[k])
            if len(arr) != n:
                raise ValueError(f"{where}: key {k!r} has {len(arr)} rows, expected {n}")
        for k, (shape, _) in self.obs_spec.items():
            if np.shape(rows[k])[1:] != shape:
                raise ValueError(
                    f"{where}: observation {k!r} has shape {np.shape(rows[k])[1:]} per row, "
                    f"expected {shape}"
                )
        if np.shape(rows["action"]) != (n, self.action_dim):
            raise ValueError(
                f"{where}: 'action' has shape {np.shape(rows['action'])}, "
                f"expected ({n}, {self.action_dim})"
            )
        action = np.asarray(rows["action"], np.float32)
        if not np.all(np.abs(action) <= 1.0):  # NaN fails this too
            bad = np.argwhere(~(np.abs(action) <= 1.0))[0]
            raise ValueError(
                f"{where}: 'action' row {bad[0]} value {action[tuple(bad)]!r} is outside [-1, 1]"
            )
        reward = np.asarray(rows["reward"])
        if reward.shape not in ((n,), (n, 1)):
            raise ValueError(f"{where}: 'reward' has shape {reward.shape}, expected ({n},)")
        if not np.all(np.isfinite(reward)):
            row = int(np.flatnonzero(~np.isfinite(reward.reshape(n)))[0])
            raise ValueError(f"{where}: 'reward' holds NaN/inf at row {row}")
        return n

    def _gripper_before(
        self, grip: np.ndarray, is_first: np.ndarray, state: _Stream | None
    ) -> np.ndarray:
        """Gripper command in force before each row's action; episodes start open (-1)."""
        cmds = gripper_class(grip)
        out = np.empty(len(grip), np.int8)
        current = -1 if state is None or not state.open else state.gripper
        for i in range(len(grip)):
            if is_first[i]:
                current = -1
            out[i] = current
            if cmds[i] != 0:
                current = cmds[i]
        return out

    def _evict(self, slots: np.ndarray) -> None:
        """Forget rows about to be overwritten and every transition that pointed into them."""
        prev = self.prev_index[slots]
        prev = prev[prev >= 0]
        self.valid[prev] = False
        self.next_index[prev] = -1
        nxt = self.next_index[slots]
        nxt = nxt[nxt >= 0]
        self.prev_index[nxt] = -1
        self.valid[slots] = False
        self.next_index[slots] = -1
        self.prev_index[slots] = -1

    def _link(self, src: np.ndarray, dst: np.ndarray) -> None:
        if src.size == 0:
            return
        self.next_index[src] = dst
        self.prev_index[dst] = src
        self.done[src] = self.is_terminal[dst]
        reward = self.task_reward[src].copy()
        if self.reward_mode != "task":
            takeover = (~self.intervened[src] & self.intervened[dst]).astype(np.float32)
            reward = -takeover if self.reward_mode == "rlif" else reward - takeover
        self.reward[src] = reward
        self.valid[src] = True

    # ---- sampling ----------------------------------------------------------------------------
    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform over valid transitions (rejection sampling: nearly every written row is
        valid)."""
        filled = min(self.rows_written, self.capacity)
        if not self.valid[:filled].any():
            raise ValueError("replay buffer holds no complete transition yet")
        idx = rng.integers(0, filled, batch_size)
        bad = ~self.valid[idx]
        while bad.any():
            idx[bad] = rng.integers(0, filled, int(bad.sum()))
            bad = ~self.valid[idx]
        return idx

    def gather(
        self, idx: np.ndarray, n_step: int = 1, discount: float | None = None
    ) -> dict[str, np.ndarray | dict[str, np.ndarray]]:
        """Batch for transition rows `idx`: obs, next_obs, action, reward, done, steps,
        grasp_toggles, prev_gripper, intervened.

        n-step returns: from o_t the chain follows the episode for k = min(n_step, steps to its end)
        transitions; it stops early at a terminal step or where the stored episode ends (its last
        row, or rows not yet arrived / overwritten). Then reward = sum_i<k discount^i r_{t+i},
        next_obs = o_{t+k}, done = whether step t+k-1 was terminal, `steps` = k (the learner
        bootstraps with discount^k), and `grasp_toggles` = sum_i<k discount^i [a_{t+i} toggled the
        gripper] (for the grasp penalty). `action` and `prev_gripper` stay those of step t.
        n_step 1 is the ordinary one-step transition.
        """
        if n_step < 1:
            raise ValueError(f"n_step: must be >= 1, got {n_step}")
        if n_step > 1 and discount is None:
            raise ValueError("n_step > 1 needs the discount the learner uses")
        reward = self.reward[idx].copy()
        toggles = self._toggled(idx).astype(np.float32)
        done = self.done[idx].copy()
        scale = np.ones(len(idx), np.float32)
        steps = np.ones(len(idx), np.int64)
        last = idx.copy()  # the chain's newest transition row
        for _ in range(1, n_step):
            step = self.next_index[last]
            go = (done == 0) & self.valid[
                step
            ]  # not terminal, and o_{t+k} starts a stored transition
            if not go.any():
                break
            j = step[go]
            scale[go] *= discount
            steps[go] += 1
            reward[go] += scale[go] * self.reward[j]
            toggles[go] += scale[go] * self._toggled(j)
            done[go] = self.done[j]
            last[go] = j
        nxt = self.next_index[last]
        return {
            "obs": {k: self._take(k, idx) for k in self.obs},
            "next_obs": {k: self._take(k, nxt) for k in self.obs},
            "action": self.action[idx],
            "reward": reward,
            "done": done,
            "steps": steps,
            "grasp_toggles": toggles,
            "prev_gripper": self.prev_gripper[idx],
            "intervened": self.intervened[idx],
        }

    def _toggled(self, rows: np.ndarray) -> np.ndarray:
        """Whether each row's action changed the gripper command in force (close/open, not stay)."""
        return gripper_toggles(self.action[rows, -1], self.prev_gripper[rows])

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator,
        n_step: int = 1,
        discount: float | None = None,
    ) -> dict:
        return self.gather(self.sample_indices(batch_size, rng), n_step, discount)

    # ---- persistence (no pickle) -------------------------------------------------------------
    _ARRAYS = (
        "action",
        "reward",
        "task_reward",
        "intervened",
        "is_terminal",
        "done",
        "prev_gripper",
        "next_index",
        "prev_index",
        "valid",
        "gen",
    )

    def save(self, path: str | Path) -> None:
        """Write the ring's filled slots to `path` (.npz, no pickle; images stay uint8) with its
        bookkeeping in the header array: a file the size of the data, not of the capacity."""
        filled = min(self.rows_written, self.capacity)
        meta = {
            "capacity": self.capacity,
            "action_dim": self.action_dim,
            "reward_mode": self.reward_mode,
            "cursor": self.cursor,
            "rows_written": self.rows_written,
            "obs_spec": {k: [list(s), d.str] for k, (s, d) in self.obs_spec.items()},
            "streams": {k: [s.slot, s.gen, s.open, s.gripper] for k, s in self.streams.items()},
        }
        arrays = {f"obs/{k}": self._host(k, filled) for k in self.obs}
        arrays.update({k: getattr(self, k)[:filled] for k in self._ARRAYS})
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    def _host(self, key: str, rows: int) -> np.ndarray:
        ring = self.obs[key][:rows]
        return ring.cpu().numpy() if key in self.devices else ring

    @classmethod
    def load(
        cls, path: str | Path, devices: Mapping[str, torch.device] | None = None
    ) -> ReplayBuffer:
        """The buffer `save` wrote, its device-resident keys on `devices`."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            spec = {k: (tuple(s), np.dtype(d)) for k, (s, d) in meta["obs_spec"].items()}
            buf = cls(meta["capacity"], spec, meta["action_dim"], meta["reward_mode"], devices)
            filled = np.arange(min(meta["rows_written"], buf.capacity))
            for k in buf.obs:
                buf._put(k, filled, data[f"obs/{k}"])
            for k in cls._ARRAYS:
                getattr(buf, k)[filled] = data[k]
        buf.cursor, buf.rows_written = meta["cursor"], meta["rows_written"]
        buf.streams = {k: _Stream(*v) for k, v in meta["streams"].items()}
        return buf


def concat_batches(a: dict, b: dict) -> dict:
    """Concatenate two batches from `gather` (symmetric sampling: half online, half offline)."""
    out = {}
    for k, v in a.items():
        out[k] = (
            {kk: _concatenate(vv, b[k][kk]) for kk, vv in v.items()}
            if isinstance(v, dict)
            else _concatenate(v, b[k])
        )
    return out


def _concatenate(a, b):
    """numpy arrays, or tensors of a device-resident key (on the device of the first)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.concatenate([a, b])
    import torch

    device = a.device if isinstance(a, torch.Tensor) else b.device
    return torch.cat([torch.as_tensor(a).to(device), torch.as_tensor(b).to(device)])


def sample_symmetric(
    online: ReplayBuffer,
    offline: ReplayBuffer,
    batch_size: int,
    rng: np.random.Generator,
    n_step: int = 1,
    discount: float | None = None,
) -> dict:
    """RLPD symmetric sampling: half the batch from each buffer; `offline` marks the second half."""
    half = batch_size // 2
    batch = concat_batches(
        online.sample(batch_size - half, rng, n_step, discount),
        offline.sample(half, rng, n_step, discount),
    )
    batch["offline"] = np.arange(batch_size) >= batch_size - half
    return batch


def obs_spec_from_space(space) -> ObsSpec:
    """Observation spec from a gymnasium Dict space."""
    return {k: (tuple(s.shape), np.dtype(s.dtype)) for k, s in space.spaces.items()}
