"""Scalar summaries in TensorBoard's event-file format, without TensorFlow or tensorboard installed.

File: records of [uint64 length][masked crc32c of length][Event protobuf][masked crc32c of data].
Event: wall_time (1, double), step (2, int64), file_version (3, string) or summary (5, message);
Summary.Value: tag (1, string), simple_value (2, float). The protobuf is encoded by hand below.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + body


class EventWriter:
    """Appends scalar summaries to `<directory>/events.out.tfevents.<time>.<host>`."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        self._fh = open(self.path, "ab")
        self._write(_event(time.time(), 0, _field_bytes(3, b"brain.Event:2")))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        summary = b"".join(
            _field_bytes(
                1, _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value))
            )
            for tag, value in values.items()
        )
        self._write(_event(time.time(), step, _field_bytes(5, summary)))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def _write(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._fh.write(
            header
            + struct.pack("<I", _masked_crc(header))
            + data
            + struct.pack("<I", _masked_crc(data))
        )
