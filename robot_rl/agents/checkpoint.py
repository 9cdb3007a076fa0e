"""Checkpoints: weights as safetensors, optimiser states beside them, config and counters as JSON.

A checkpoint is a directory:
    weights.safetensors   every module of the agent ("critic.net.0.weight", ...) and log_alpha
    optim.safetensors     optimiser state tensors ("critic_opt.3.exp_avg", ...)
    optim.json            optimiser param_groups (learning rates, betas, ...)
    config.json           the run's full config and observation spec
    state.json            counters (critic/actor steps, skipped updates) and the caller's state
    replay/<name>.npz     the replay buffers the caller hands over (a learner's online and
                          offline buffers: their filled rows, no pickle), when it does
It is written to a temporary sibling and renamed into place, so a crash never leaves half a
checkpoint: weights, counters and buffers are always of one moment. Loading refuses a
checkpoint whose config or tensor shapes differ from the agent's, naming each difference; the
device is not part of that comparison: tensors are written from host memory and read straight
onto the loading agent's device, so a GPU learner's checkpoint resumes on a CPU and back. Nothing
is unpickled. `load_weights` starts another run's agent from a checkpoint (weights and optimiser
moments, no counters, no buffers) where `policy_differences` finds nothing that reads or acts
differently.

config.json holds the writer's run config (a RunConfig, from the `train`/`demo` job or the
`learner`) under "run": its `task`, `env`, `sac` and `tracker` (where the run has one) are all
`read_checkpoint_info` needs to rebuild the policy and its env.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file, save_file

from controllers.config import from_dict, to_dict
from robot_rl.agents.replay_buffer import ObsSpec, ReplayBuffer
from robot_rl.agents.sac import Policy, SACAgent, SACConfig, split_keys

REPLAY_DIR = "replay"
CHECKPOINT_FILES = (
    "weights.safetensors",
    "optim.safetensors",
    "optim.json",
    "config.json",
    "state.json",
)
# config keys a resume may change: where a run trains, not what it trains (a checkpoint loads
# onto any device), and where its agent started from (a resume loads its own checkpoint instead)
RESUME_FREE_KEYS = ("run.sac.device", "run.learner.init_checkpoint")


class CheckpointMismatch(ValueError):
    """The checkpoint does not fit this agent/run; the message lists what differs."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about the run that wrote it: enough to rebuild its policy and env."""

    path: Path
    task: str
    env: dict[str, Any]  # the run's env overrides, as sim.make_env takes them
    sac: SACConfig
    obs_spec: ObsSpec
    policy_version: int  # critic updates behind the weights: the version the learner publishes
    # the run's `tracker` section (robot_rl.loop.tracked_pose), None: the twin's own object_pose
    tracker: dict[str, Any] | None = None


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Read config.json and state.json of any checkpoint the stack writes (see the module doc)."""
    path = Path(path)
    for name in ("config.json", "state.json", "weights.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path}: not a checkpoint directory (no {name}); give the checkpoint folder a "
                "training run wrote, e.g. runs/<name>/checkpoint"
            )
    config = json.loads((path / "config.json").read_text())
    if "run" not in config or "obs_spec" not in config:
        raise CheckpointMismatch(
            f"{path / 'config.json'}: has no 'run' section with an 'obs_spec' beside it; it was "
            "not written by robot-rl train, learner or demo, so there is no run config to rebuild "
            "the policy from; evaluate a checkpoint of one of those"
        )
    run = config["run"]
    sac = from_dict(SACConfig, run.get("sac", {}), "run.sac")
    spec = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in config["obs_spec"].items()}
    counters = json.loads((path / "state.json").read_text())["agent"]
    return CheckpointInfo(
        path,
        run["task"],
        run.get("env", {}),
        sac,
        spec,
        int(counters["critic_steps"]),
        run.get("tracker"),
    )


def load_policy(info: CheckpointInfo, device: str = "cpu") -> Policy:
    """The checkpoint's policy (what an actor runs) with its weights on `device` (a device name,
    see robot_rl.agents.device); no optimiser state is read."""
    policy = Policy(info.obs_spec, replace(info.sac, device=device))
    weights = load_numpy(str(info.path / "weights.safetensors"))
    missing = sorted(k for k in policy.state_dict() if k not in weights)
    if missing:
        raise CheckpointMismatch(
            f"checkpoint {info.path}: weights.safetensors lacks the policy tensors {missing}"
        )
    policy.load_actor_parameters({k: weights[k] for k in policy.state_dict()})
    return policy


def layout_differences(want: ObsSpec, have: ObsSpec, keys: Sequence[str]) -> list[str]:
    """One line per key of `keys` that is missing from `have` or differs in shape or dtype."""
    out = []
    for key in keys:
        (shape, dtype) = want[key]
        if key not in have:
            out.append(f"{key}: checkpoint {shape} {dtype}, env has no such key")
        elif have[key] != (tuple(shape), np.dtype(dtype)):
            out.append(f"{key}: checkpoint {shape} {dtype}, env {have[key][0]} {have[key][1]}")
    return out


# what shapes the networks or gives their inputs and outputs their meaning: a checkpoint that
# differs in any of these cannot start another run's agent (hyperparameters of the updates may
# differ); image settings count only where the policy reads images
NETWORK_KEYS = (
    "hidden",
    "layer_norm",
    "num_critics",
    "gripper",
    "arm_action_dims",
    "normalize_proprio",
    "relative_positions",
)
IMAGE_KEYS = ("backbone", "num_spatial_features", "embed_dim", "dtype")


def policy_differences(info: CheckpointInfo, obs_spec: ObsSpec, sac: SACConfig) -> list[str]:
    """Why the checkpoint's networks cannot start an agent of `obs_spec` and `sac`: one line per
    observation key read in another order, shape or dtype, and per differing NETWORK_KEYS setting
    (the action layout among them)."""
    saved_proprio, saved_images = split_keys(info.sac, info.obs_spec)
    proprio, images = split_keys(sac, obs_spec)
    out = []
    for name, saved, current in (
        ("proprio keys", saved_proprio, proprio),
        ("image keys", saved_images, images),
    ):
        if saved != current:
            out.append(f"{name}: checkpoint reads {list(saved)}, this run {list(current)}")
    relative = [k for pair in info.sac.relative_positions for k in pair]
    read = dict.fromkeys((*saved_proprio, *relative, *saved_images))
    out += layout_differences(info.obs_spec, obs_spec, list(read))
    keys = [f"sac.{k}" for k in NETWORK_KEYS]
    if saved_images or images:
        keys += [f"sac.image.{k}" for k in IMAGE_KEYS]
    saved_sac = json.loads(json.dumps(to_dict(info.sac)))
    current_sac = json.loads(json.dumps(to_dict(sac)))
    out += [
        d
        for d in config_differences({"sac": saved_sac}, {"sac": current_sac})
        if d.split(":", 1)[0] in keys
    ]
    return out


def _weights(agent: SACAgent) -> dict[str, torch.Tensor]:
    out = {
        f"{name}.{k}": v
        for name, mod in agent.modules().items()
        for k, v in mod.state_dict().items()
    }
    out["log_alpha"] = agent.log_alpha.detach()
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def _optim_tensors(agent: SACAgent) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, groups = {}, {}
    for name, opt in agent.optimizers().items():
        sd = opt.state_dict()
        for idx, state in sd["state"].items():
            for k, v in state.items():
                tensors[f"{name}.{idx}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
        groups[name] = sd["param_groups"]
    return tensors, groups


def save_checkpoint(
    path: str | Path,
    agent: SACAgent,
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    buffers: Mapping[str, ReplayBuffer] | None = None,
) -> Path:
    """Write a checkpoint directory at `path` (replacing an older one at the same path)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(_weights(agent), str(tmp / "weights.safetensors"))
    tensors, groups = _optim_tensors(agent)
    save_file(tensors, str(tmp / "optim.safetensors"))
    (tmp / "optim.json").write_text(json.dumps(groups))
    (tmp / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
    counters = {
        "critic_steps": agent.critic_steps,
        "actor_steps": agent.actor_steps,
        "skipped_updates": agent.skipped_updates,
    }
    (tmp / "state.json").write_text(json.dumps({"agent": counters, "run": state or {}}, indent=1))
    if buffers:
        (tmp / REPLAY_DIR).mkdir()
        for name, buffer in buffers.items():
            buffer.save(tmp / REPLAY_DIR / f"{name}.npz")
    if path.exists():
        old = path.with_name(path.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old)
    else:
        tmp.rename(path)
    return path


def load_buffers(
    path: str | Path, devices: Mapping[str, torch.device] | None = None
) -> dict[str, ReplayBuffer]:
    """The replay buffers saved with the checkpoint at `path` by name (none: an empty dict)."""
    folder = Path(path) / REPLAY_DIR
    return {f.stem: ReplayBuffer.load(f, devices) for f in sorted(folder.glob("*.npz"))}


def config_differences(saved: Any, current: Any, where: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like configs."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for k in sorted(set(saved) | set(current)):
            key = f"{where}.{k}" if where else str(k)
            if k not in saved:
                out.append(f"{key}: not in checkpoint, this run has {current[k]!r}")
            elif k not in current:
                out.append(f"{key}: checkpoint has {saved[k]!r}, this run has no such key")
            else:
                out += config_differences(saved[k], current[k], key)
        return out
    if isinstance(saved, (list, tuple)) and isinstance(current, (list, tuple)):
        saved, current = list(saved), list(current)
    return (
        [] if saved == current else [f"{where}: checkpoint has {saved!r}, this run has {current!r}"]
    )


def load_checkpoint(path: str | Path, agent: SACAgent, config: dict[str, Any]) -> dict[str, Any]:
    """Load weights, optimiser states and counters into `agent`; return the caller's saved state.

    `config` must equal the saved one (JSON round-trip); otherwise CheckpointMismatch lists the
    differing keys. Tensor names and shapes are checked the same way before anything is loaded.
    """
    path = Path(path)
    _check_files(path, CHECKPOINT_FILES)
    saved_config = json.loads((path / "config.json").read_text())
    diffs = [
        d
        for d in config_differences(saved_config, json.loads(json.dumps(config)))
        if not d.startswith(tuple(k + ":" for k in RESUME_FREE_KEYS))
    ]
    if diffs:
        raise CheckpointMismatch(
            f"checkpoint {path} was made with a different config:\n  " + "\n  ".join(diffs)
        )
    _load_modules(path, agent)
    groups = json.loads((path / "optim.json").read_text())
    _load_optimizers(path, agent, groups)
    counters = json.loads((path / "state.json").read_text())
    agent.critic_steps = counters["agent"]["critic_steps"]
    agent.actor_steps = counters["agent"]["actor_steps"]
    agent.skipped_updates = counters["agent"]["skipped_updates"]
    return counters["run"]


def load_weights(path: str | Path, agent: SACAgent) -> None:
    """Start `agent` from the checkpoint at `path`: every network (policy, critics, targets, the
    proprio normaliser's fitted statistics), the temperature and the optimisers' moments; the
    agent keeps its own learning rates, counters and (empty) buffers. The caller checks first
    that the checkpoint fits (policy_differences); tensor names and shapes are checked here.

    The moments come along because a fresh Adam's first steps have about the learning rate's size
    in every parameter whatever its gradient (bias correction), a jolt to a trained policy; the
    saved moments carry each parameter's gradient scale into the first updates.
    """
    path = Path(path)
    _check_files(path, CHECKPOINT_FILES)
    _load_modules(path, agent)
    _load_optimizers(
        path, agent, {n: o.state_dict()["param_groups"] for n, o in agent.optimizers().items()}
    )


def _check_files(path: Path, names: Sequence[str]) -> None:
    for name in names:
        if not (path / name).is_file():
            raise FileNotFoundError(f"checkpoint {path}: missing {name}")


def _load_modules(path: Path, agent: SACAgent) -> None:
    """Every module's tensors and log_alpha, after checking names and shapes."""
    dev = agent.device
    weights = load_file(str(path / "weights.safetensors"), device=str(dev))
    own = _weights(agent)
    diffs = [f"{k}: missing in checkpoint" for k in own if k not in weights]
    diffs += [f"{k}: in checkpoint but not in this agent" for k in weights if k not in own]
    diffs += [
        f"{k}: checkpoint shape {tuple(weights[k].shape)}, agent shape {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if diffs:
        raise CheckpointMismatch(
            f"checkpoint {path} does not fit this agent:\n  " + "\n  ".join(diffs)
        )
    for name, mod in agent.modules().items():
        prefix = name + "."
        mod.load_state_dict(
            {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        )
    with torch.no_grad():
        agent.log_alpha.copy_(weights["log_alpha"])


def _load_optimizers(path: Path, agent: SACAgent, groups: dict[str, Any]) -> None:
    """The saved optimiser states, with the parameter groups (learning rates, betas) `groups`."""
    dev = agent.device
    # Adam keeps its `step` counters on the host (capturable off), its moments beside the weights
    tensors = load_file(str(path / "optim.safetensors"))
    for name, opt in agent.optimizers().items():
        sd = opt.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, v in tensors.items():
            opt_name, idx, field = key.split(".", 2)
            if opt_name == name:
                state.setdefault(int(idx), {})[field] = v.to(dev) if field != "step" else v
        if len(groups[name]) != len(sd["param_groups"]):
            raise CheckpointMismatch(
                f"checkpoint {path}: optimiser {name} has a different number of parameter groups"
            )
        opt.load_state_dict({"state": state, "param_groups": groups[name]})
