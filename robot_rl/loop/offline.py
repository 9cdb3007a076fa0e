"""Stored episodes for the learner's offline buffer: the run config's `offline` section.

`select_offline` opens every store an entry names, checks it against what the agent reads and
picks the episodes that match, before a single episode is read; `preload` then feeds them to the
learner. Demonstrations count whole; other episodes only for their intervened stretches, so one
without an intervened step is not picked. Every problem is a ConfigError naming the entry and
the store. An entry that picks nothing is an error, not a warning: a run that silently trains
without the demonstrations its config names wastes robot time, and the fix (the path or the
filter) is in the config. The stores are only read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controllers.config import ConfigError
from robot_rl.agents.replay_buffer import ObsSpec
from robot_rl.loop.run_config import OfflineStoreConfig
from robot_rl.store import EpisodeStore, StoreError
from robot_rl.store.episodes import STEP_KEYS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineSelection:
    """The episodes of one store an `offline` entry picks."""

    where: str  # "offline[i]", for messages
    store: Path
    indices: tuple[int, ...]
    demos: tuple[bool, ...]  # per episode: a demonstration (else only its intervened stretches)


def find_stores(path: Path, where: str) -> list[Path]:
    """`path` itself when it is an episode store, else the stores directly inside it."""
    if not path.exists():
        raise ConfigError(
            f"{where}.store: {path} does not exist; give an episode store (e.g. a run's "
            "episodes/actor-0.zarr) or a folder of them"
        )
    if (path / "zarr.json").is_file():
        return [path]
    stores = sorted(p for p in path.iterdir() if (p / "zarr.json").is_file())
    if not stores:
        raise ConfigError(
            f"{where}.store: {path} is neither an episode store nor a folder holding any; give "
            "the store itself or the folder its stores are in"
        )
    return stores


def _check_store(
    store: EpisodeStore, first: int, where: str, obs_spec: ObsSpec, action_dim: int
) -> None:
    """The store holds what the agent reads, in the agent's shapes (read from one episode)."""
    missing = sorted(set(obs_spec) - set(store.keys))
    if missing:
        raise ConfigError(
            f"{where}: {store.path} lacks the observation key(s) {missing} the policy reads (it "
            f"holds {list(store.keys)}); use a store recorded with this run's env config "
            "(cameras, proprio keys) or remove it from the offline section"
        )
    episode = store.episode(first, (*obs_spec, "action"))
    if episode["action"].shape[1] != action_dim:
        raise ConfigError(
            f"{where}: {store.path} holds {episode['action'].shape[1]}-dimensional actions, the "
            f"agent acts in {action_dim} dimensions; this store is from another robot or action "
            "contract: remove it from the offline section"
        )
    wrong = [
        f"{k}: store {episode[k].shape[1:]}, policy {shape}"
        for k, (shape, _) in obs_spec.items()
        if episode[k].shape[1:] != tuple(shape)
    ]
    if wrong:
        raise ConfigError(
            f"{where}: {store.path} holds observations of other shapes than the policy reads ("
            + "; ".join(wrong)
            + "); use a store recorded with this run's env config (image size, cameras)"
        )


def select_offline(
    entries: list[OfflineStoreConfig], task: str, obs_spec: ObsSpec, action_dim: int
) -> list[OfflineSelection]:
    """The episodes every entry picks (episodes of `task` only), every store checked first."""
    out = []
    for n, entry in enumerate(entries):
        where = f"offline[{n}]"
        source = tuple(entry.source) if entry.source is not None else None
        held: dict[tuple[str, str, bool], int] = {}
        picked = 0
        for path in find_stores(Path(entry.store), where):
            try:
                with EpisodeStore.open(path) as store:
                    infos = store.infos()
                    for info in infos:
                        kind = (info.task, info.source, info.success)
                        held[kind] = held.get(kind, 0) + 1
                    intervened = set(store.select(task=task, intervened=True))
                    indices = [
                        i
                        for i in store.select(task=task, source=source, success=entry.success)
                        if infos[i].source == "demo" or i in intervened
                    ]
                    if indices:
                        _check_store(store, indices[0], where, obs_spec, action_dim)
            except StoreError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            demos = tuple(infos[i].source == "demo" for i in indices)
            out.append(OfflineSelection(where, path, tuple(indices), demos))
            picked += len(indices)
        if not picked:
            have = ", ".join(
                f"{count} {t}/{s}/{'success' if ok else 'failure'}"
                for (t, s, ok), count in sorted(held.items())
            )
            raise ConfigError(
                f"{where}: no episode in {entry.store} matches task {task!r}, source "
                f"{list(source) if source else 'any'}, success "
                f"{'any' if entry.success is None else entry.success} (it holds "
                f"{have or 'no episode'}, as task/source/outcome; only demonstrations and "
                "episodes with intervened steps count); fix the path or the filter"
            )
    return out


def preload(
    entries: list[OfflineStoreConfig],
    task: str,
    obs_spec: ObsSpec,
    action_dim: int,
    add: Callable[[str, dict, bool], int],
) -> list[dict]:
    """Feed every picked episode to `add(stream, episode, is_demonstration)` (which returns the
    rows it put into the offline buffer), one stream per store; a report per store."""
    report = []
    for sel in select_offline(entries, task, obs_spec, action_dim):
        rows = 0
        with EpisodeStore.open(sel.store) as store:
            for index, demo in zip(sel.indices, sel.demos):
                episode = store.episode(index, (*obs_spec, *STEP_KEYS))
                rows += add(f"preload:{sel.store}", episode, demo)
        log.info(
            "%s: preloaded %d episodes (%d demonstrations) as %d offline rows from %s",
            sel.where,
            len(sel.indices),
            sum(sel.demos),
            rows,
            sel.store,
        )
        report.append(
            {
                "store": str(sel.store),
                "episodes": len(sel.indices),
                "demos": sum(sel.demos),
                "rows": rows,
            }
        )
    return report
