"""Tasks of the twin by name."""

from __future__ import annotations

from controllers.config import ConfigError
from sim.tasks.base import Task
from sim.tasks.peg_insert import PegInsert
from sim.tasks.pick_cube import PickCube

TASKS: dict[str, type[Task]] = {"pick_cube": PickCube, "peg_insert": PegInsert}


def make_task(name: str) -> Task:
    """A fresh task object; unknown names raise ConfigError listing the known ones."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]()
