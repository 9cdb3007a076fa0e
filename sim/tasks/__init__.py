"""Tasks of the twin by name."""

from __future__ import annotations

from controllers.config import ConfigError
from sim.config import MarkerConfig
from sim.tasks.base import Task
from sim.tasks.peg_insert import PegInsert
from sim.tasks.pick_cube import PickCube

TASKS: dict[str, type[Task]] = {"pick_cube": PickCube, "peg_insert": PegInsert}


def make_task(name: str, marker: MarkerConfig | None = None) -> Task:
    """A fresh task object; unknown names raise ConfigError listing the known ones."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    if marker is None:
        return TASKS[name]()
    if name != "pick_cube":
        raise ConfigError(
            f"marker: only pick_cube renders a marker, not {name!r}; remove `marker:`"
        )
    return PickCube(marker)
