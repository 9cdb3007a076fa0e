"""What the learner accepts inside a well-formed message: the payload schema of `transitions` and
`stats`, checked completely (names, types, ranks, shapes, dtypes, finite values, declared bounds)
before a message is journaled, so that nothing the buffers or counters cannot take is ever kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.transport.protocol import Message, ProtocolError

ArraySpec = dict[str, tuple[tuple[int, ...], np.dtype]]  # name -> (shape of one row, dtype)

MODES = ("train", "eval", "demo")
FLAGS = ("intervened", "is_first", "is_last", "is_terminal")
COUNT_MAX = 10**12  # episode ids, steps, versions: anything larger is not from a real actor

# meta key -> (accepted Python types, check of the value or None); every key is optional
_INT = (int,)
_NUMBER = (int, float)
_META: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "transitions": {
        "first_unacked": (_INT, "count"),
        "episode_id": (_INT, "count"),
        "mode": ((str,), "mode"),
    },
    "stats": {
        "first_unacked": (_INT, "count"),
        "episode_id": (_INT, "count"),
        "mode": ((str,), "mode"),
        "steps": (_INT, "count"),
        "return": (_NUMBER, "finite"),
        "success": ((bool,), ""),
        "takeovers": (_INT, "count"),
        "intervened_steps": (_INT, "count"),
    },
}


def step_arrays() -> frozenset[str]:
    """Names of the non-observation arrays a transitions message may carry."""
    return frozenset(_step_arrays(1))


class PayloadError(ProtocolError):
    """A well-formed message whose content the learner cannot take; the text says what."""


@dataclass(frozen=True)
class PayloadSchema:
    """The arrays and metadata of a `transitions` or `stats` message the learner stores.

    obs: the observation keys the learner's buffers hold, with the shape of one row and the dtype;
    floats must be finite and within +-obs_abs_max, integers within their stored dtype's range.
    """

    obs: ArraySpec
    action_dim: int
    max_rows: int
    obs_abs_max: float = 1e6
    reward_abs_max: float = 1e4

    def step_keys(self) -> frozenset[str]:
        """Names of every array a transitions message may carry."""
        return frozenset(self.obs) | frozenset(_step_arrays(self.action_dim))

    def check(self, msg: Message) -> int:
        """Rows in `msg` (0 for stats) if the learner can take all of it; else PayloadError."""
        if msg.kind not in _META:
            raise PayloadError(f"actors send transitions or stats, not {msg.kind!r}")
        _check_meta(msg.kind, msg.meta)
        if msg.kind == "stats":
            if msg.arrays:
                raise PayloadError(f"stats carry no arrays, got {sorted(msg.arrays)}")
            return 0
        return self._check_rows(msg.arrays)

    def _check_rows(self, arrays: dict[str, np.ndarray]) -> int:
        steps = _step_arrays(self.action_dim)
        unknown = sorted(set(arrays) - set(self.obs) - set(steps))
        if unknown:
            raise PayloadError(f"arrays {unknown} are not stored by this learner")
        required = [*self.obs, *(k for k, s in steps.items() if s[2])]
        missing = [k for k in required if k not in arrays]
        if missing:
            raise PayloadError(f"transitions lack arrays {missing}")
        n = arrays["is_first"].shape[0] if arrays["is_first"].ndim else -1
        if not 1 <= n <= self.max_rows:
            raise PayloadError(f"'is_first' holds {n} rows; 1 to {self.max_rows} are accepted")
        for name, array in arrays.items():
            if name in self.obs:
                shape, dtype = self.obs[name]
                _check_array(name, array, (n, *shape), dtype, self.obs_abs_max, nan=False)
            else:
                row_shape, dtype, _, bound, nan = steps[name]
                bound = self.reward_abs_max if name == "reward" else bound
                # every integer step array is a count: versions, episode ids, step indices
                _check_array(name, array, (n, *row_shape), dtype, bound, nan, low=0)
        return n


def _step_arrays(action_dim: int) -> dict[str, tuple[tuple[int, ...], np.dtype, bool, float, bool]]:
    """name -> (row shape, dtype, required, bound on |value|, NaN allowed)."""
    f4, i8, b1 = np.dtype(np.float32), np.dtype(np.int64), np.dtype(bool)
    return {
        "action": ((action_dim,), f4, True, 1.0, False),
        "reward": ((), f4, True, np.inf, False),  # bounded by PayloadSchema.reward_abs_max
        **{flag: ((), b1, True, np.inf, False) for flag in FLAGS},
        "policy_action": ((action_dim,), f4, False, 1e6, False),
        "success_prob": ((), f4, False, 1.0, True),  # NaN: no reward model scored the step
        "policy_version": ((), i8, False, COUNT_MAX, False),
        "timestamp": ((), np.dtype(np.float64), False, 1e12, False),
        "episode_id": ((), i8, False, COUNT_MAX, False),
        "step": ((), i8, False, COUNT_MAX, False),
    }


def _check_array(
    name: str,
    array: np.ndarray,
    shape: tuple[int, ...],
    dtype: np.dtype,
    bound: float,
    nan: bool,
    low: float = -np.inf,
) -> None:
    if array.shape != shape and not (name == "reward" and array.shape == (*shape, 1)):
        raise PayloadError(f"array {name!r} has shape {array.shape}, expected {shape}")
    if dtype.kind == "b":
        if array.dtype.kind != "b":
            raise PayloadError(f"array {name!r} is {array.dtype}, expected bool")
        return
    if array.dtype.kind not in ("f" if dtype.kind == "f" else "iu"):
        raise PayloadError(f"array {name!r} is {array.dtype}, expected {dtype}")
    if not array.size:
        return
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(info.min, -bound, low), min(info.max, bound)
        if array.min() < low or array.max() > high:
            raise PayloadError(f"array {name!r} holds integers outside [{low:g}, {high:g}]")
        return
    values = array.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if nan:
        finite |= np.isnan(values)
    if not finite.all():
        raise PayloadError(f"array {name!r} holds NaN or inf")
    if np.nanmax(np.abs(values), initial=0.0) > bound:
        raise PayloadError(f"array {name!r} holds values beyond +-{bound:g}")


def _check_meta(kind: str, meta: dict[str, Any]) -> None:
    allowed = _META[kind]
    for key, value in meta.items():
        if key not in allowed:
            raise PayloadError(f"{kind} meta {key!r} is not part of the protocol")
        types, check = allowed[key]
        if type(value) not in types:
            raise PayloadError(f"{kind} meta {key!r} must be {types[0].__name__}")
        if check == "count" and not 0 <= value <= COUNT_MAX:
            raise PayloadError(f"{kind} meta {key!r} = {value} is not a count")
        if check == "finite" and not abs(value) <= 1e12:
            raise PayloadError(f"{kind} meta {key!r} is not a finite number")
        if check == "mode" and value not in MODES:
            raise PayloadError(f"{kind} meta 'mode' must be one of {list(MODES)}")
