"""Where torch runs: one resolution of `auto | cpu | cuda | cuda:N | mps`; host -> device copies.

Configs hold the device as a name (`sac.device`, `actor_device`, the reward node's `device`, the
benches' `--device`) so that a config or checkpoint written on a GPU server still reads on a laptop;
the name is resolved once, where the agent or model is built.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from controllers.config import ConfigError

_NAME = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_name(name: str, option: str) -> None:
    """Raise a ConfigError naming `option` unless `name` is a device name this stack accepts."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{option}: {name!r} is not a device; use auto (CUDA when present, else CPU), cpu, "
            "cuda, cuda:N (the N-th GPU) or mps"
        )


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(requested: str = "auto", option: str = "device") -> torch.device:
    """The torch device for `requested`: `auto` picks cuda, else mps, else cpu; an explicit device
    that this machine lacks is a ConfigError naming `option`."""
    check_device_name(requested, option)
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{option}: {requested!r} asked for, but torch sees no CUDA GPU here (CPU-only "
                "torch build, no driver, or CUDA_VISIBLE_DEVICES empty); set it to auto or cpu, "
                "or run on the GPU machine"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"{option}: {requested!r} asked for, but this machine has {count} CUDA GPU(s) "
                f"(cuda:0 to cuda:{count - 1}); pick one of those or auto"
            )
    if device.type == "mps" and not _mps_available():
        raise ConfigError(
            f"{option}: 'mps' asked for, but torch sees no Apple-silicon GPU here; set it to auto "
            "or cpu"
        )
    return device


def to_device(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on `device`. To a CUDA device the copy goes from page-locked memory
    without waiting for it, so the host can gather the next inputs while the copy runs; a tensor
    already on `device` is returned as it is."""
    if isinstance(array, torch.Tensor):
        return array.to(device, non_blocking=True)
    tensor = torch.as_tensor(np.asarray(array))
    if device.type != "cuda":
        return tensor.to(device)
    # pin_memory's block stays reserved until the asynchronous copy out of it has finished
    return tensor.pin_memory().to(device, non_blocking=True)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (timings of asynchronous GPU work need it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe(device: torch.device) -> str:
    """The device and, for a GPU, its model name, for benchmark records."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
