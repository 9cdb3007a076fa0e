"""The MuJoCo twin of the cell: `sim.make_env(task, config)` gives a gymnasium env.

Tasks: pick_cube, peg_insert. Config: sim.config.EnvConfig (YAML: config/sim_<task>.yaml).
Scripted experts: sim.experts.make_expert(env), sim.experts.evaluate(task, episodes, seed).
"""

from __future__ import annotations

import logging
from typing import Any

from controllers.config import from_dict, to_dict
from sim.config import EnvConfig, RandomizationConfig, load_env_config

__all__ = ["EnvConfig", "RandomizationConfig", "load_env_config", "make_env"]

# With MUJOCO_GL=egl, `import mujoco` loads PyOpenGL, which logs at INFO that its optional C
# speed-ups (OpenGL_accelerate) are missing; rendering is correct without them, so only that
# logger is quieted, here, before any module of the twin imports mujoco.
logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)


def make_env(
    task: str,
    config: EnvConfig | dict[str, Any] | None = None,
    render_mode: str | None = None,
    **overrides: Any,
):
    """A twin env for `task`; `config` as dataclass or mapping, top-level keys overridable by name.

    Example: make_env("pick_cube", cameras=("front", "wrist"), dense_reward=True).
    """
    from sim.env import PandaEnv  # mujoco is imported only when an env is made
    from sim.tasks import make_task

    if isinstance(config, EnvConfig):
        data = to_dict(config)
    elif config is None or isinstance(config, dict):
        data = dict(config or {})
    else:
        raise TypeError(
            f"config: expected EnvConfig, a mapping or None, got {type(config).__name__}"
        )
    data.update(overrides)
    env_config = from_dict(EnvConfig, data)
    return PandaEnv(make_task(task, env_config.marker), env_config, render_mode=render_mode)
