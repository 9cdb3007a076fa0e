"""The zarr v3 episode store: `data/<key>` arrays on one time axis, `meta/episode_ends` commits.

Layout and crash semantics are written down in docs/data.md. In short: an episode (a flat dict of
arrays with T+1 step rows, docs/contracts.md) is written whole by `EpisodeStore.append`: its rows go
past the last committed end, its attributes and its new `meta/episode_ends` entry into chunks
outside those arrays' shapes, and last one metadata write grows `meta/episode_ends` by one. That
write is an atomic file replace, so a writer killed at any moment leaves either the old or the new
store. Readers trust only rows below the last committed end; a writer reopening the store truncates
what lies past it. With `fsync` (the default for writers) every file a commit writes, and the
directories it changes, are fsynced before the commit marker and after it (robot_rl.store.durable),
so a committed episode also survives power loss.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from controllers.config import ConfigError, from_dict, to_dict

if TYPE_CHECKING:
    from robot_rl.store.durable import DurableLocalStore

SCHEMA_VERSION = 1
FORMAT = "robot_rl.episodes"
# Images: blosc-lz4, no shuffle. It encodes faster than zstd at a lower ratio; encoding is most of a
# commit's cost, and speed is the scarcer resource here.
IMAGE_CODEC = {"cname": "lz4", "clevel": 5, "shuffle": "noshuffle", "typesize": 1, "blocksize": 0}
FRAMES_PER_SHARD = 64  # image frames per file; ROWS_PER_CHUNK is a multiple
ROWS_PER_CHUNK = 2048  # non-image arrays; one chunk is rewritten (atomically) per commit
ENDS_PER_CHUNK = 4096
ATTRS_AHEAD = 256  # episode_attrs grows this many rows at a time

# Step keys from docs/contracts.md with the dtype the store keeps them in; everything else is an
# observation.
STEP_KEYS: dict[str, str] = {
    "action": "float32",
    "policy_action": "float32",
    "reward": "float32",
    "intervened": "bool",
    "success_prob": "float32",
    "policy_version": "int64",
    "timestamp": "float64",
    "is_first": "bool",
    "is_last": "bool",
    "is_terminal": "bool",
}
SOURCES = ("sim", "real", "demo", "intervention")
PLATFORMS = ("sim", "real")


class StoreError(Exception):
    """The store or an episode is not what it should be; the message names the path/key/value."""


class CommitError(StoreError):
    """Writing an episode failed part-way.

    The store still holds every earlier episode and nothing of this one.
    """


@dataclasses.dataclass(frozen=True)
class EpisodeInfo:
    """Per-episode attributes, kept as one JSON string per episode in `meta/episode_attrs`."""

    task: str
    source: Literal["sim", "real", "demo", "intervention"]  # what produced the episode
    success: bool
    # Where it ran; `robot-rl replay` starts real episodes differently.
    platform: Literal["sim", "real"] = "sim"
    operator: str = ""
    start_time: float = 0.0  # unix seconds of the first observation
    config_hash: str = ""
    robot_calibration_id: str = ""
    camera_calibration_id: str = ""
    seed: int | None = None
    # Enough to restart the episode: {"sim_state": encoded arrays} in the twin (see
    # recorder.encode_state), {"object_pose": [x, y, z, qw, qx, qy, qz]} where known on a real
    # robot.
    initial_state: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.task:
            raise ConfigError("task: must not be empty")
        if self.source not in SOURCES:
            raise ConfigError(f"source: {self.source!r} is not one of {list(SOURCES)}")
        if self.platform not in PLATFORMS:
            raise ConfigError(f"platform: {self.platform!r} is not one of {list(PLATFORMS)}")
        try:
            json.dumps(self.initial_state, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"initial_state: must be JSON without NaN/inf ({exc})") from exc


def _is_image(key: str, value: np.ndarray) -> bool:
    return key.startswith("image_") and value.dtype == np.uint8 and value.ndim == 4


def _store_dtype(key: str, value: np.ndarray) -> np.dtype:
    if key in STEP_KEYS:
        return np.dtype(STEP_KEYS[key])
    if np.issubdtype(value.dtype, np.floating):
        return np.dtype("float32")  # learning data is float32 (docs/contracts.md)
    return value.dtype


def validate_episode(episode: dict[str, np.ndarray], where: str = "episode") -> int:
    """Check the step-row contract; return T (the number of actions).

    Raises StoreError naming the key.
    """
    if not isinstance(episode, dict) or not episode:
        raise StoreError(f"{where}: expected a non-empty dict of arrays")
    missing = [k for k in STEP_KEYS if k not in episode]
    if missing:
        raise StoreError(f"{where}: missing step key(s) {missing}")
    rows = {k: np.shape(v)[0] if np.ndim(v) else 0 for k, v in episode.items()}
    n = rows["is_first"]
    bad = {k: r for k, r in rows.items() if r != n}
    if bad:
        raise StoreError(f"{where}: all arrays need {n} rows like 'is_first'; these differ: {bad}")
    if n < 2:
        raise StoreError(f"{where}: needs at least 2 rows (one action), got {n}")
    first, last, terminal = (
        np.asarray(episode[k], bool) for k in ("is_first", "is_last", "is_terminal")
    )
    if not first[0] or first[1:].any():
        raise StoreError(f"{where}: 'is_first' must be True on row 0 only")
    if not last[-1] or last[:-1].any():
        raise StoreError(f"{where}: 'is_last' must be True on the last row only")
    if terminal[:-1].any():
        raise StoreError(f"{where}: 'is_terminal' may be True only on the last row")
    for key in STEP_KEYS:
        ndim = 2 if key in ("action", "policy_action") else 1
        if np.ndim(episode[key]) != ndim:
            raise StoreError(
                f"{where}: '{key}' must have {ndim} dimension(s), "
                f"got shape {np.shape(episode[key])}"
            )
    if np.shape(episode["action"]) != np.shape(episode["policy_action"]):
        raise StoreError(f"{where}: 'action' and 'policy_action' shapes differ")
    return n - 1


class EpisodeStore:
    """A directory holding episodes.

    `open(path)` reads; `open(path, mode="a")` creates or appends (one writer).
    """

    def __init__(self, path: Path, root: Any, mode: str, lock_fd: int | None) -> None:
        from robot_rl.store.durable import DurableLocalStore

        self.path = path
        self.mode = mode
        self._root = root
        self._lock_fd = lock_fd
        self._durable = root.store if isinstance(root.store, DurableLocalStore) else None
        self._arrays: dict[str, Any] = {}
        self._ends = np.zeros(0, np.int64)
        self.refresh()

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path, mode: Literal["r", "a"] = "r", fsync: bool = True
    ) -> EpisodeStore:
        """`fsync` (writers only): make each commit survive power loss, at a cost per episode
        (docs/data.md); without it a commit survives a killed process, not a power cut."""
        import zarr

        from robot_rl.store.durable import DurableLocalStore

        path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if mode == "r" and not path.exists():
            raise StoreError(f"{path}: no such episode store")
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path}: not an episode store (a file, not a directory)")
        lock_fd = None
        store: Any = str(path)
        if mode == "a" and fsync:
            store = DurableLocalStore(path)
            store.make_dirs(path)
        if mode == "a":
            path.mkdir(parents=True, exist_ok=True)
            foreign = _foreign_entries(path)
            if foreign and not (path / "zarr.json").exists():
                raise StoreError(
                    f"{path}: directory exists, is not empty and is not an episode store "
                    f"(has {foreign})"
                )
            lock_fd = _lock_writer(path)
            try:
                _complete_skeleton(path, store)
            except BaseException:
                _unlock(lock_fd)
                raise
        try:
            root = zarr.open_group(store, mode="r" if mode == "r" else "r+", zarr_format=3)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError) as exc:
            _unlock(lock_fd)
            raise StoreError(f"{path}: not an episode store (no zarr v3 group: {exc})") from exc
        try:
            _check_format(path, root)
            store = cls(path, root, mode, lock_fd)
        except BaseException:
            _unlock(lock_fd)
            raise
        if mode == "a":
            store._truncate_uncommitted()
        return store

    def close(self) -> None:
        """A writer trims its arrays to the committed rows and unlocks.

        Plain zarr users then see exact lengths.
        """
        if self._lock_fd is not None:
            try:
                self._truncate_uncommitted()
            finally:
                _unlock(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """Re-read the committed episode ends (a reader sees episodes a writer committed since)."""
        try:
            ends_array = self._root["meta/episode_ends"]
        except KeyError as exc:
            raise StoreError(f"{self.path}: missing 'meta/episode_ends'") from exc
        ends = np.asarray(ends_array[:], np.int64)
        if ends.size and (np.any(np.diff(ends) <= 0) or ends[0] <= 0):
            raise StoreError(
                f"{self.path}: 'meta/episode_ends' is not strictly increasing: {ends.tolist()[:10]}"
            )
        self._ends = ends
        self._arrays = {}
        data = self._root["data"]
        for key, arr in data.arrays():
            if arr.shape[0] < self.num_steps:
                raise StoreError(
                    f"{self.path}: 'data/{key}' has {arr.shape[0]} rows, fewer than the "
                    f"committed {self.num_steps}"
                )
            self._arrays[key] = arr
        if ends.size:
            missing = [k for k in STEP_KEYS if k not in self._arrays]
            if missing:
                raise StoreError(
                    f"{self.path}: missing data array(s) {['data/' + k for k in missing]}"
                )

    # ---- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._ends.size)

    @property
    def num_steps(self) -> int:
        """Committed rows (T+1 per episode)."""
        return int(self._ends[-1]) if self._ends.size else 0

    @property
    def episode_ends(self) -> np.ndarray:
        return self._ends.copy()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(sorted(self._arrays))

    def _bounds(self, index: int) -> tuple[int, int]:
        n = len(self)
        if not -n <= index < n:
            raise StoreError(f"{self.path}: no episode {index}; the store holds {n} (0..{n - 1})")
        index %= n
        return (int(self._ends[index - 1]) if index else 0), int(self._ends[index])

    def episode(self, index: int, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Episode `index` as a flat dict of arrays with T+1 rows."""
        start, end = self._bounds(index)
        unknown = sorted(set(keys or ()) - set(self._arrays))
        if unknown:
            raise StoreError(f"{self.path}: no data key(s) {unknown}; keys are {list(self.keys)}")
        out = {}
        for key in keys or self.keys:
            arr = self._arrays[key]
            out[key] = (
                _read_frames(self.path, arr, start, end)
                if _fast_image_codec(arr)
                else arr[start:end]
            )
        return out

    def info(self, index: int) -> EpisodeInfo:
        self._bounds(index)
        return self.infos()[index]

    def infos(self) -> list[EpisodeInfo]:
        """Attributes of every committed episode."""
        raw = self._root["meta/episode_attrs"]
        if raw.shape[0] < len(self):
            raise StoreError(
                f"{self.path}: 'meta/episode_attrs' has {raw.shape[0]} rows "
                f"for {len(self)} episodes"
            )
        out = []
        for i, text in enumerate(raw[: len(self)] if len(self) else []):
            try:
                out.append(
                    from_dict(EpisodeInfo, json.loads(str(text)), f"meta/episode_attrs[{i}]")
                )
            except (ConfigError, json.JSONDecodeError) as exc:
                raise StoreError(f"{self.path}: episode {i} attributes: {exc}") from exc
        return out

    def select(
        self,
        *,
        success: bool | None = None,
        source: str | tuple[str, ...] | None = None,
        task: str | None = None,
        intervened: bool | None = None,
    ) -> list[int]:
        """Indices of the episodes that match every filter given.

        `intervened` asks whether an episode has any intervened step.
        """
        sources = (source,) if isinstance(source, str) else source
        for s in sources or ():
            if s not in SOURCES:
                raise StoreError(f"source filter: {s!r} is not one of {list(SOURCES)}")
        infos = self.infos()
        any_intervened = self._any_per_episode("intervened") if intervened is not None else None
        picked = []
        for i, info in enumerate(infos):
            if success is not None and info.success != success:
                continue
            if sources is not None and info.source not in sources:
                continue
            if task is not None and info.task != task:
                continue
            if any_intervened is not None and bool(any_intervened[i]) != intervened:
                continue
            picked.append(i)
        return picked

    def episodes(
        self, indices: list[int] | None = None, **filters: Any
    ) -> Iterator[dict[str, np.ndarray]]:
        """Episodes by index, or those `select(**filters)` picks, one dict at a time."""
        for i in self.select(**filters) if indices is None else indices:
            yield self.episode(i)

    def load_into(self, buffer: Any, keys: tuple[str, ...] | None = None, **filters: Any) -> int:
        """Add the episodes `select(**filters)` picks to a replay buffer; returns how many.

        Each goes through `buffer.add_episode`. Only the keys the buffer holds are read (its
        `obs_spec` plus the step keys), unless `keys` says otherwise.
        """
        if keys is None and hasattr(buffer, "obs_spec"):
            keys = tuple(sorted({*buffer.obs_spec, *STEP_KEYS} & set(self._arrays)))
        picked = self.select(**filters)
        for i in picked:
            buffer.add_episode(self.episode(i, keys))
        return len(picked)

    def _any_per_episode(self, key: str) -> np.ndarray:
        if not len(self):
            return np.zeros(0, bool)
        flags = np.asarray(self._arrays[key][: self.num_steps], bool)
        return np.logical_or.reduceat(flags, np.concatenate([[0], self._ends[:-1]]))

    def summary(self) -> dict[str, Any]:
        """Episodes, steps, success rate, intervention share and size on disk."""
        infos = self.infos()
        transitions = self.num_steps - len(self)
        intervened = (
            np.asarray(self._arrays["intervened"][: self.num_steps], bool)
            if len(self)
            else np.zeros(0)
        )
        last = (
            np.asarray(self._arrays["is_last"][: self.num_steps], bool)
            if len(self)
            else np.zeros(0)
        )
        return {
            "path": str(self.path),
            "episodes": len(self),
            "steps": transitions,
            "success_rate": float(np.mean([i.success for i in infos])) if infos else float("nan"),
            "intervention_share": float(intervened[~last].sum() / transitions)
            if transitions
            else float("nan"),
            "sources": {
                s: sum(i.source == s for i in infos)
                for s in SOURCES
                if any(i.source == s for i in infos)
            },
            "tasks": sorted({i.task for i in infos}),
            "keys": list(self.keys),
            "bytes_on_disk": _disk_bytes(self.path),
        }

    # ---- writing -------------------------------------------------------------------------------
    def config(self, config_hash: str) -> dict[str, Any]:
        """The config an episode's `config_hash` names, when its writer stored it."""
        configs = self._root["meta"].attrs.get("configs", {})
        if config_hash not in configs:
            raise StoreError(
                f"{self.path}: no config with hash {config_hash!r} stored (have {sorted(configs)})"
            )
        return configs[config_hash]

    def append(
        self,
        episode: dict[str, np.ndarray],
        info: EpisodeInfo,
        config: dict[str, Any] | None = None,
    ) -> int:
        """Commit one whole episode; returns its index.

        On failure raises CommitError and leaves the store as before. `config` (JSON-able, e.g. the
        env config) is stored once per `info.config_hash` for replay.
        """
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened read-only; open with mode='a' to append")
        index = len(self)
        where = f"{self.path}: episode {index} (task {info.task!r})"
        n_rows = validate_episode(episode, where) + 1
        self._check_keys(episode, where)
        if config is not None and not info.config_hash:
            raise StoreError(f"{where}: a config was given but info.config_hash is empty")
        try:
            if config is not None:
                self._store_config(info.config_hash, config)
            self._write(episode, info, n_rows)
        except Exception as exc:
            # Rows already written sit past the committed end: invisible, and overwritten by the
            # next append.
            self._reopen_arrays()
            self._drop_arrays_if_empty()
            raise CommitError(
                f"{where}, {n_rows - 1} steps, was not saved: {type(exc).__name__}: {exc}"
            ) from exc
        return index

    def _store_config(self, config_hash: str, config: dict[str, Any]) -> None:
        meta = self._root["meta"]
        configs = dict(meta.attrs.get("configs", {}))
        # Written before the commit point; an orphan entry is harmless.
        if config_hash not in configs:
            configs[config_hash] = config
            meta.attrs["configs"] = configs

    def _check_keys(self, episode: dict[str, np.ndarray], where: str) -> None:
        if not self._arrays:
            for key in episode:
                if not key.replace("_", "").isalnum():
                    raise StoreError(f"{where}: key {key!r} must be letters, digits and '_' only")
            return
        missing = sorted(set(self._arrays) - set(episode))
        extra = sorted(set(episode) - set(self._arrays))
        if missing or extra:
            raise StoreError(
                f"{where}: keys differ from the store's: missing {missing}, unexpected {extra}"
            )
        for key, arr in self._arrays.items():
            shape = np.shape(episode[key])[1:]
            if tuple(shape) != tuple(arr.shape[1:]):
                raise StoreError(
                    f"{where}: '{key}' rows have shape {shape}, the store's have {arr.shape[1:]}"
                )

    def _create_arrays(self, episode: dict[str, np.ndarray]) -> None:
        from zarr.codecs import BloscCodec

        data = self._root["data"]
        for key, value in episode.items():
            value = np.asarray(value)
            row_shape = value.shape[1:]
            if _is_image(key, value):
                # One frame per (inner) chunk, FRAMES_PER_SHARD frames per file, flat keys
                # "c.<shard>.0.0.0".
                data.create_array(
                    key,
                    shape=(0, *row_shape),
                    dtype="uint8",
                    chunks=(1, *row_shape),
                    shards=(FRAMES_PER_SHARD, *row_shape),
                    chunk_key_encoding={"name": "default", "separator": "."},
                    compressors=BloscCodec(**IMAGE_CODEC),
                )
            else:
                data.create_array(
                    key,
                    shape=(0, *row_shape),
                    dtype=_store_dtype(key, value),
                    chunks=(ROWS_PER_CHUNK, *row_shape),
                    fill_value=0,
                )
        self._reopen_arrays()

    def _reopen_arrays(self) -> None:
        self._arrays = {key: arr for key, arr in self._root["data"].arrays()}

    def _write(self, episode: dict[str, np.ndarray], info: EpisodeInfo, n_rows: int) -> None:
        from zarr.core.sync import sync

        if not self._arrays:
            self._create_arrays(episode)
        index, start = len(self), self.num_steps
        end = start + n_rows
        attrs, ends = self._root["meta/episode_attrs"], self._root["meta/episode_ends"]
        # Rows past the committed end are ignored by readers, so everything below is unseen until
        # step 4.
        # zarr's synchronous calls each carry a fixed overhead, so each phase is one gathered call.
        # 1. Image frames, straight into their shard files.
        images = {k: a for k, a in self._arrays.items() if _fast_image_codec(a) is not None}
        for key, arr in images.items():
            _write_frames(self.path, arr, start, np.asarray(episode[key]), self._durable)
        # 2. When full, grow the arrays a chunk's worth ahead (close() trims them to the committed
        #    end).
        grow = [
            (a, (_round_up(end, ROWS_PER_CHUNK), *a.shape[1:]))
            for a in self._arrays.values()
            if a.shape[0] < end
        ]
        grow += (
            [(attrs, (_round_up(index + 1, ATTRS_AHEAD),))] if attrs.shape[0] < index + 1 else []
        )
        if grow:
            sync(_gather([a.async_array.resize(shape) for a, shape in grow]))
        # 3. The other rows (straight into their chunk files where the layout allows), the
        #    attributes, and the new end: written into its chunk outside the array's shape.
        through_zarr = {}
        for key, arr in self._arrays.items():
            if key not in images:
                value = np.asarray(episode[key]).astype(arr.dtype, copy=False)
                if _rows_codec(arr) is not None:
                    _write_rows(self.path, arr, start, value, self._durable)
                else:
                    through_zarr[key] = value
        writes = [
            self._arrays[k].async_array.setitem(slice(start, end), v)
            for k, v in through_zarr.items()
        ]
        writes.append(attrs.async_array.setitem(index, json.dumps(to_dict(info), allow_nan=False)))
        writes.append(_with_length(ends, index + 1).setitem(index, end))
        sync(_gather(writes))
        self._sync_dirs()  # everything the commit marker points at is on disk before it
        # 4. The commit: one atomic replace of meta/episode_ends/zarr.json with the new length.
        ends.resize((index + 1,))
        self._sync_dirs()
        self._ends = np.append(self._ends, np.int64(end))

    def _sync_dirs(self) -> None:
        if self._durable is not None:
            self._durable.sync()

    def _truncate_uncommitted(self) -> None:
        """Drop rows past the committed end and zarr's temporary files.

        Such rows were grown ahead, or left by a writer that died.
        """
        for arr in self._arrays.values():
            if arr.shape[0] > self.num_steps:
                arr.resize((self.num_steps, *arr.shape[1:]))
        attrs = self._root["meta/episode_attrs"]
        if attrs.shape[0] > len(self):
            attrs.resize((len(self),))
        for tmp in self.path.rglob("*.partial"):
            tmp.unlink(missing_ok=True)
        self._reopen_arrays()
        self._drop_arrays_if_empty()

    def _drop_arrays_if_empty(self) -> None:
        """With no committed episode, drop the arrays: the first episode to commit defines the keys.

        An episode that failed, or whose writer died, must not define them.
        """
        if len(self) == 0:
            for child in (self.path / "data").iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
            self._arrays = {}


def _complete_skeleton(path: Path, store: Any) -> None:
    """Create the groups and meta arrays a writer needs.

    Finishes a creation that a killed writer left half done. The format attribute is written last,
    so a store that has it is complete.
    """
    import zarr

    from robot_rl.store.durable import DurableLocalStore

    try:
        root = zarr.open_group(store, mode="a", zarr_format=3)
    except (ValueError, TypeError, zarr.errors.ContainsArrayError) as exc:
        raise StoreError(f"{path}: not an episode store ({exc})") from exc
    if "robot_rl" in root.attrs:
        return
    if _foreign_entries(path) or dict(root.attrs):
        raise StoreError(
            f"{path}: a zarr group but not a robot_rl episode store "
            "(no 'robot_rl' format attribute)"
        )
    meta = root["meta"] if "meta" in root else root.create_group("meta", overwrite=True)
    if "episode_ends" not in meta:
        meta.create_array(
            "episode_ends", shape=(0,), dtype="int64", chunks=(ENDS_PER_CHUNK,), overwrite=True
        )
    if "episode_attrs" not in meta:
        meta.create_array(
            "episode_attrs", shape=(0,), dtype=str, chunks=(ENDS_PER_CHUNK,), overwrite=True
        )
    if "data" not in root:
        root.create_group("data", overwrite=True)
    root.attrs["robot_rl"] = {"format": FORMAT, "schema_version": SCHEMA_VERSION}
    if isinstance(root.store, DurableLocalStore):
        root.store.sync()


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


async def _gather(coroutines: list[Any]) -> None:
    await asyncio.gather(*coroutines)


def _with_length(arr: Any, length: int) -> Any:
    """An unpersisted async view of `arr` with `length` rows; it can write past the stored shape."""
    from zarr.core.array import AsyncArray

    a = arr.async_array
    shape = (length, *a.metadata.shape[1:])
    return AsyncArray(
        metadata=a.metadata.update_shape(shape), store_path=a.store_path, config=a.config
    )


def _fast_image_codec(arr: Any) -> tuple[Any, int] | None:
    """(numcodecs codec, frames per shard) when `arr` is an image array laid out by this module.

    That layout is one frame per inner chunk, in shards indexed at their end (bytes + crc32c), the
    frame codecs being bytes and one blosc or zstd compressor. Any other layout returns None and
    goes through zarr.
    """
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

    codecs = arr.metadata.codecs
    if not (arr.dtype == np.uint8 and len(codecs) == 1 and isinstance(codecs[0], ShardingCodec)):
        return None
    shard = codecs[0]
    inner = shard.codecs
    if (
        shard.chunk_shape != (1, *arr.shape[1:])
        or shard.index_location.value != "end"
        or [type(c) for c in shard.index_codecs] != [BytesCodec, Crc32cCodec]
        or len(inner) != 2
        or not isinstance(inner[0], BytesCodec)
    ):
        return None
    per_shard = arr.metadata.chunk_grid.chunk_shape[0]
    if isinstance(inner[1], ZstdCodec) and not inner[1].checksum:
        return numcodecs.Zstd(level=inner[1].level), per_shard
    if isinstance(inner[1], BloscCodec):
        c = inner[1]
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[c.shuffle.name]
        codec = numcodecs.Blosc(
            cname=c.cname.name,
            clevel=c.clevel,
            shuffle=shuffle,
            blocksize=c.blocksize,
            typesize=c.typesize,
        )
        return codec, per_shard
    return None


_NO_CHUNK = 2**64 - 1  # shard index entry of an absent inner chunk


def _shard_path(root: Path, arr: Any, shard: int) -> Path:
    return root / arr.path / arr.metadata.encode_chunk_key((shard, *(0,) * (arr.ndim - 1)))


def _read_shard(path: Path, per_shard: int) -> list[bytes | None]:
    """The encoded frames of one shard file (None where absent); the index is checked by crc32c."""
    import google_crc32c

    data = path.read_bytes()
    size = 16 * per_shard
    index, crc = data[-size - 4 : -4], data[-4:]
    if len(data) < size + 4 or google_crc32c.value(index) != int.from_bytes(crc, "little"):
        raise StoreError(f"{path}: shard index damaged (size or crc32c mismatch)")
    entries = np.frombuffer(index, "<u8").reshape(per_shard, 2)
    return [None if off == _NO_CHUNK else data[off : off + n] for off, n in entries.tolist()]


def _encode_shard(frames: list[bytes | None]) -> bytes:
    """A zarr v3 shard: encoded frames back to back, then the (offset, nbytes) index and crc32c."""
    import google_crc32c

    index = np.full((len(frames), 2), _NO_CHUNK, "<u8")
    offset = 0
    for j, payload in enumerate(frames):
        if payload is not None:
            index[j] = offset, len(payload)
            offset += len(payload)
    index_bytes = index.tobytes()
    crc = google_crc32c.value(index_bytes).to_bytes(4, "little")
    return b"".join(p for p in frames if p is not None) + index_bytes + crc


def _write_frames(
    root: Path, arr: Any, start: int, frames: np.ndarray, durable: DurableLocalStore | None
) -> None:
    """Write frames for rows start.. as zarr v3 shards: the bytes zarr's own pipeline would write.

    Going around zarr's per-chunk async pipeline and writing a shard per FRAMES_PER_SHARD frames
    instead of a file per frame is what keeps commits with camera images fast. A shard that also
    holds committed frames is rewritten whole and replaced atomically.
    """
    codec, per_shard = _fast_image_codec(arr)
    encoded = [codec.encode(frame) for frame in np.ascontiguousarray(frames, dtype=np.uint8)]
    end = start + len(encoded)
    for shard in range(start // per_shard, (end - 1) // per_shard + 1):
        first = shard * per_shard
        path = _shard_path(root, arr, shard)
        kept = (
            _read_shard(path, per_shard) if first < start and path.exists() else [None] * per_shard
        )
        chunks = [kept[j] if first + j < start else None for j in range(per_shard)]
        for row in range(max(start, first), min(end, first + per_shard)):
            chunks[row - first] = encoded[row - start]
        _write_file(path, _encode_shard(chunks), durable)


def _read_frames(root: Path, arr: Any, start: int, end: int) -> np.ndarray:
    """Rows start..end of an image array from its shard files.

    The reading side of _write_frames, faster than zarr's pipeline. A missing frame below the
    committed end is damage, not a fill value.
    """
    codec, per_shard = _fast_image_codec(arr)
    out = np.empty((end - start, *arr.shape[1:]), np.uint8)
    for shard in range(start // per_shard, (end - 1) // per_shard + 1):
        path = _shard_path(root, arr, shard)
        try:
            chunks = _read_shard(path, per_shard)
        except FileNotFoundError as exc:
            raise StoreError(
                f"{path}: shard {shard} of '{arr.path}' is missing from the committed data"
            ) from exc
        first = shard * per_shard
        for row in range(max(start, first), min(end, first + per_shard)):
            if chunks[row - first] is None:
                raise StoreError(
                    f"{path}: frame {row} of '{arr.path}' is missing from the committed data"
                )
            codec.decode(chunks[row - first], out=out[row - start])
    return out


def _rows_codec(arr: Any) -> Any:
    """The zstd codec when `arr` is a non-image array as this module creates it, else None.

    That is bytes + zstd, fill 0 and the default chunk keys; such arrays are written by _write_rows.
    """
    import numcodecs
    from zarr.codecs import BytesCodec, ZstdCodec

    codecs = arr.metadata.codecs
    if (
        len(codecs) == 2
        and isinstance(codecs[0], BytesCodec)
        and isinstance(codecs[1], ZstdCodec)
        and not codecs[1].checksum
        and arr.fill_value == 0
        and arr.chunks[1:] == arr.shape[1:]
        and arr.metadata.chunk_key_encoding.to_dict()["configuration"]["separator"] == "/"
    ):
        return numcodecs.Zstd(level=codecs[1].level)
    return None


def _write_rows(
    root: Path, arr: Any, start: int, values: np.ndarray, durable: DurableLocalStore | None
) -> None:
    """Write rows start.. of a non-image array into its chunk files.

    Read, merge, encode, replace atomically: cheaper in CPU than zarr's own setitem, which matters
    because a commit touches every non-image array. Rows of the chunk before `start` (committed)
    are kept, rows past the new ones reset to the fill value.
    """
    codec = _rows_codec(arr)
    rows = arr.chunks[0]
    dtype = np.dtype(arr.dtype).newbyteorder("<")  # the bytes codec stores little-endian
    end = start + len(values)
    for k in range(start // rows, (end - 1) // rows + 1):
        first = k * rows
        path = root / arr.path / arr.metadata.encode_chunk_key((k, *(0,) * (arr.ndim - 1)))
        chunk = np.zeros(arr.chunks, dtype)
        if first < start and path.exists():
            kept = np.frombuffer(codec.decode(path.read_bytes()), dtype).reshape(arr.chunks)
            chunk[: start - first] = kept[: start - first]
        lo, hi = max(start, first), min(end, first + rows)
        chunk[lo - first : hi - first] = values[lo - start : hi - start]
        _write_file(path, codec.encode(chunk), durable)


def _write_file(path: Path, payload: bytes, durable: DurableLocalStore | None) -> None:
    """Write-then-rename, named like zarr's temp files; a reopening writer deletes leftovers.

    Through `durable` when given: fsynced too.
    """
    if durable is not None:
        durable.put(path, payload)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_format(path: Path, root: Any) -> None:
    tag = root.attrs.get("robot_rl")
    if not isinstance(tag, dict) or tag.get("format") != FORMAT:
        raise StoreError(
            f"{path}: a zarr group but not a robot_rl episode store "
            "(no 'robot_rl' format attribute)"
        )
    version = tag.get("schema_version")
    if not isinstance(version, int):
        raise StoreError(f"{path}: schema_version missing or not an integer: {version!r}")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: written with episode-store schema version {version}; this robot_rl reads up "
            f"to {SCHEMA_VERSION}. Upgrade robot_rl to read it."
        )
    for name in ("meta", "data"):
        if name not in root:
            raise StoreError(f"{path}: missing group '{name}'")


def _foreign_entries(path: Path) -> list[str]:
    """Names in `path` that no episode store (or its crashed writer) would leave there."""
    ours = {"zarr.json", "meta", "data"}
    return sorted(
        p.name for p in path.iterdir() if p.name not in ours and not p.name.endswith(".partial")
    )[:5]


def _lock_writer(path: Path) -> int:
    """Lock the store directory itself; no lock file, as plain zarr warns about unknown files."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StoreError(f"{path}: another process is writing to this store") from exc
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
