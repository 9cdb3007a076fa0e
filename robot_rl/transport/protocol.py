"""Wire protocol v1: one msgpack header frame followed by one raw buffer frame per array.

Everything that arrives is validated here before anything else sees it: header keys and
types, protocol version, dtype whitelist, shapes against buffer sizes, size limits. Nothing
is ever unpickled. See docs/protocol.md for the frame layout.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1

KINDS = ("heartbeat", "transitions", "ack", "weights", "stats", "reject")

# Little-endian fixed-size numeric dtypes only: no objects, strings, structs or datetimes.
ALLOWED_DTYPES = frozenset(
    ["|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"]
)

HEADER_KEYS = frozenset(
    [
        "kind",
        "protocol",
        "config_hash",
        "actor_id",
        "session",
        "seq",
        "policy_version",
        "arrays",
        "meta",
    ]
)

_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
_HASH = re.compile(r"^[0-9a-f]{0,64}$")
_INT64_MAX = 2**63 - 1

if sys.byteorder != "little":  # the wire is little-endian and arrays are sent as raw memory
    raise ImportError("robot_rl.transport needs a little-endian host")


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text says what is wrong."""


class VersionMismatch(ProtocolError):
    """The peer speaks another protocol version."""

    def __init__(self, theirs: object, ours: int = PROTOCOL_VERSION):
        super().__init__(
            f"protocol version mismatch: peer speaks v{theirs}, this side speaks v{ours}"
        )
        self.theirs = theirs
        self.ours = ours


@dataclass(frozen=True)
class Limits:
    """Size limits applied to every received message."""

    max_header_bytes: int = 64 * 1024
    max_arrays: int = 256
    max_ndim: int = 6
    max_message_bytes: int = 256 * 1024 * 1024
    max_meta_items: int = 64
    max_meta_str: int = 4096


DEFAULT_LIMITS = Limits()

Scalar = bool | int | float | str | None


@dataclass
class Message:
    """One protocol message: header fields, named arrays and small scalar metadata."""

    kind: str
    actor_id: str
    config_hash: str = ""
    session: int = 0
    seq: int = 0
    policy_version: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Scalar] = field(default_factory=dict)


def encode(msg: Message) -> list[bytes | memoryview]:
    """Frames for `msg`: header, then each array's little-endian bytes (no copy if contiguous)."""
    specs = []
    buffers: list[bytes | memoryview] = []
    for name, array in msg.arrays.items():
        array = np.asarray(array)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        if array.dtype.str not in ALLOWED_DTYPES:
            raise ProtocolError(f"array {name!r}: dtype {array.dtype} is not allowed on the wire")
        specs.append([name, array.dtype.str, list(array.shape)])
        buffers.append(memoryview(array).cast("B") if array.size else b"")
    header = {
        "kind": msg.kind,
        "protocol": PROTOCOL_VERSION,
        "config_hash": msg.config_hash,
        "actor_id": msg.actor_id,
        "session": int(msg.session),
        "seq": int(msg.seq),
        "policy_version": int(msg.policy_version),
        "arrays": specs,
        "meta": dict(msg.meta),
    }
    return [msgpack.packb(header, use_bin_type=True), *buffers]


def decode(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Message:
    """Validate and decode frames (bytes, memoryview or zmq.Frame); arrays view the frame memory."""
    if not frames:
        raise ProtocolError("empty message")
    head = memoryview(frames[0])
    if head.nbytes > limits.max_header_bytes:
        raise ProtocolError(
            f"header of {head.nbytes} bytes exceeds the {limits.max_header_bytes}-byte limit"
        )
    try:
        header = msgpack.unpackb(head, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several types for garbage; all mean "not a header"
        raise ProtocolError(f"header is not valid msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a map, got {type(header).__name__}")
    # The version is checked first so that a peer of another version gets a precise answer.
    if "protocol" not in header:
        raise ProtocolError("header has no 'protocol' field")
    version = header["protocol"]
    if type(version) is not int:
        raise ProtocolError(f"header field 'protocol' must be an integer, got {_short(version)}")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(version)
    keys = set(header)
    if keys != HEADER_KEYS:
        missing, extra = sorted(HEADER_KEYS - keys), sorted(map(str, keys - HEADER_KEYS))
        raise ProtocolError(f"header keys wrong: missing {missing}, unexpected {extra}")

    kind = header["kind"]
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {_short(kind)}; expected one of {list(KINDS)}")
    actor_id = header["actor_id"]
    if not isinstance(actor_id, str) or not _NAME.match(actor_id):
        raise ProtocolError(
            f"actor_id {_short(actor_id)} is not 1-64 characters of [A-Za-z0-9_.:/-]"
        )
    config_hash = header["config_hash"]
    if not isinstance(config_hash, str) or not _HASH.match(config_hash):
        raise ProtocolError(
            f"config_hash {_short(config_hash)} is not up to 64 lowercase hex digits"
        )
    for key in ("session", "seq", "policy_version"):
        value = header[key]
        if type(value) is not int or not 0 <= value <= _INT64_MAX:
            raise ProtocolError(
                f"header field {key!r} must be an integer in [0, 2**63), got {_short(value)}"
            )
    meta = _check_meta(header["meta"], limits)

    specs = header["arrays"]
    if not isinstance(specs, list):
        raise ProtocolError(f"header field 'arrays' must be a list, got {type(specs).__name__}")
    if len(specs) > limits.max_arrays:
        raise ProtocolError(f"{len(specs)} arrays exceed the limit of {limits.max_arrays}")
    if len(frames) != len(specs) + 1:
        raise ProtocolError(
            f"header announces {len(specs)} arrays but {len(frames) - 1} buffer frames arrived"
        )
    arrays: dict[str, np.ndarray] = {}
    total = head.nbytes
    for index, (spec, frame) in enumerate(zip(specs, frames[1:])):
        name, dtype, shape = _check_spec(spec, index, limits)
        if name in arrays:
            raise ProtocolError(f"array name {name!r} appears twice")
        buf = memoryview(frame)
        expected = math.prod(shape) * dtype.itemsize
        if buf.nbytes != expected:
            raise ProtocolError(
                f"array {name!r}: shape {tuple(shape)} {dtype} needs {expected} bytes, "
                f"frame has {buf.nbytes}"
            )
        total += expected
        if total > limits.max_message_bytes:
            raise ProtocolError(f"message exceeds the {limits.max_message_bytes}-byte limit")
        array = (
            np.frombuffer(buf, dtype=dtype).reshape(shape) if expected else np.zeros(shape, dtype)
        )
        if dtype == np.bool_ and expected and array.view(np.uint8).max() > 1:
            raise ProtocolError(f"array {name!r}: bool buffer holds bytes other than 0 and 1")
        arrays[name] = array
    return Message(
        kind=kind,
        actor_id=actor_id,
        config_hash=config_hash,
        session=header["session"],
        seq=header["seq"],
        policy_version=header["policy_version"],
        arrays=arrays,
        meta=meta,
    )


def weights_checksum(arrays: dict[str, np.ndarray]) -> str:
    """BLAKE2b over names, dtypes, shapes and bytes, in sorted name order."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        array = array if array.flags.c_contiguous else array.copy(order="C")
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(memoryview(array).cast("B") if array.size else b"")
    return digest.hexdigest()


def config_hash(config: Any) -> str:
    """Stable short hash of a config (dict or plain data) both sides compare before talking."""
    packed = msgpack.packb(_canonical(config), use_bin_type=True)
    return hashlib.blake2b(packed, digest_size=8).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return [
            [str(k), _canonical(v)] for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
        ]
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _check_spec(spec: Any, index: int, limits: Limits) -> tuple[str, np.dtype, list[int]]:
    if not isinstance(spec, list) or len(spec) != 3:
        raise ProtocolError(f"array spec #{index} must be [name, dtype, shape], got {_short(spec)}")
    name, dtype, shape = spec
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProtocolError(
            f"array spec #{index}: name {_short(name)} is not 1-64 characters of [A-Za-z0-9_.:/-]"
        )
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise ProtocolError(
            f"array {name!r}: dtype {_short(dtype)} not in {sorted(ALLOWED_DTYPES)}"
        )
    if not isinstance(shape, list) or len(shape) > limits.max_ndim:
        raise ProtocolError(
            f"array {name!r}: shape {_short(shape)} must be a list of "
            f"at most {limits.max_ndim} sizes"
        )
    for size in shape:
        if type(size) is not int or not 0 <= size <= limits.max_message_bytes:
            raise ProtocolError(f"array {name!r}: bad dimension {_short(size)} in shape")
    return name, np.dtype(dtype), shape


def _check_meta(meta: Any, limits: Limits) -> dict[str, Scalar]:
    if not isinstance(meta, dict):
        raise ProtocolError(f"header field 'meta' must be a map, got {type(meta).__name__}")
    if len(meta) > limits.max_meta_items:
        raise ProtocolError(f"meta has {len(meta)} items, limit {limits.max_meta_items}")
    for key, value in meta.items():
        if not isinstance(key, str) or not _NAME.match(key):
            raise ProtocolError(
                f"meta key {_short(key)} is not 1-64 characters of [A-Za-z0-9_.:/-]"
            )
        if value is None or type(value) in (bool, float):
            continue
        if type(value) is int:
            if not -(2**63) <= value <= _INT64_MAX:
                raise ProtocolError(f"meta {key!r}: integer {value} out of int64 range")
        elif type(value) is str:
            if len(value) > limits.max_meta_str:
                raise ProtocolError(
                    f"meta {key!r}: string of {len(value)} characters exceeds {limits.max_meta_str}"
                )
        else:
            raise ProtocolError(f"meta {key!r}: {type(value).__name__} values are not allowed")
    return meta


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
