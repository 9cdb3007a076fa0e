"""Wire protocol: round trips; malformed, truncated, oversized, wrong-version input is rejected."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_rl.transport.protocol import (
    PROTOCOL_VERSION,
    Limits,
    Message,
    ProtocolError,
    VersionMismatch,
    config_hash,
    decode,
    encode,
    weights_checksum,
)


def _steps(rows: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "tcp_pose": rng.standard_normal((rows, 7)).astype(np.float32),
        "image_front": rng.integers(0, 255, (rows, 8, 8, 3), dtype=np.uint8),
        "action": rng.standard_normal((rows, 7)).astype(np.float32),
        "intervened": rng.random(rows) > 0.5,
        "policy_version": np.arange(rows, dtype=np.int64),
        "timestamp": rng.random(rows),
    }


def _message(**kw) -> Message:
    base = dict(
        kind="transitions",
        actor_id="actor-0",
        config_hash="ab12",
        session=7,
        seq=3,
        policy_version=11,
        arrays=_steps(),
        meta={"episode_id": 4, "note": "x", "ok": True},
    )
    base.update(kw)
    return Message(**base)


def test_round_trip_keeps_every_field_and_array():
    msg = _message()
    got = decode([bytes(f) for f in encode(msg)])
    assert (got.kind, got.actor_id, got.config_hash, got.session, got.seq, got.policy_version) == (
        "transitions",
        "actor-0",
        "ab12",
        7,
        3,
        11,
    )
    assert got.meta == msg.meta
    assert list(got.arrays) == list(msg.arrays)
    for name, array in msg.arrays.items():
        assert got.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(got.arrays[name], array)


def test_empty_and_zero_row_arrays_round_trip():
    msg = _message(arrays={"a": np.zeros((0, 3), np.float32), "b": np.float64(2.5)})
    got = decode(encode(msg))
    assert got.arrays["a"].shape == (0, 3)
    assert got.arrays["b"].shape == () and got.arrays["b"] == 2.5


def test_big_endian_input_is_sent_little_endian():
    msg = _message(arrays={"x": np.arange(4, dtype=">f8")})
    got = decode(encode(msg))
    assert got.arrays["x"].dtype.str == "<f8"
    np.testing.assert_array_equal(got.arrays["x"], [0, 1, 2, 3])


@pytest.mark.parametrize(
    "array", [np.array(["a"]), np.array([object()]), np.zeros(2, np.complex64)]
)
def test_encode_refuses_dtypes_outside_the_whitelist(array):
    with pytest.raises(ProtocolError, match="not allowed"):
        encode(_message(arrays={"bad": array}))


def _with_header(frames, **changes):
    header = msgpack.unpackb(frames[0])
    header.update(changes)
    return [msgpack.packb(header), *frames[1:]]


def test_wrong_version_names_both_versions():
    frames = _with_header(encode(_message()), protocol=PROTOCOL_VERSION + 1)
    with pytest.raises(
        VersionMismatch,
        match=f"peer speaks v{PROTOCOL_VERSION + 1}, this side speaks v{PROTOCOL_VERSION}",
    ):
        decode(frames)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"kind": "hello"}, "unknown message kind"),
        ({"actor_id": ""}, "actor_id"),
        ({"actor_id": "a" * 65}, "actor_id"),
        ({"config_hash": "XYZ"}, "config_hash"),
        ({"seq": -1}, "'seq'"),
        ({"seq": 2**63}, "'seq'"),
        ({"session": 1.5}, "'session'"),
        ({"policy_version": True}, "'policy_version'"),
        ({"meta": {"k": [1, 2]}}, "meta 'k'"),
        ({"meta": []}, "'meta' must be a map"),
        ({"arrays": [["x", "|O", [1]]]}, "dtype"),
        ({"arrays": {}}, "'arrays' must be a list"),
        ({"extra": 1}, "unexpected"),
    ],
)
def test_bad_header_fields_are_named(changes, reason):
    frames = encode(_message(arrays={}))
    announced = changes.get("arrays")
    buffers = [b"\0" * 8] * len(announced) if isinstance(announced, list) else []
    with pytest.raises(ProtocolError, match=reason):
        decode(_with_header(frames, **changes) + buffers)


def test_truncated_buffer_and_missing_frame_are_rejected():
    frames = [bytes(f) for f in encode(_message())]
    with pytest.raises(ProtocolError, match="needs .* bytes, frame has"):
        decode([frames[0], frames[1][:-1], *frames[2:]])
    with pytest.raises(ProtocolError, match="buffer frames arrived"):
        decode(frames[:-1])
    with pytest.raises(ProtocolError, match="not valid msgpack"):
        decode([frames[0][:-3], *frames[1:]])


def test_size_limits_are_enforced():
    frames = encode(_message(arrays={"x": np.zeros(1000, np.float64)}))
    with pytest.raises(ProtocolError, match="byte limit"):
        decode(frames, Limits(max_message_bytes=4000))
    with pytest.raises(ProtocolError, match="header of"):
        decode([b"\x00" * 70_000])


def test_bool_buffer_with_other_bytes_is_rejected():
    frames = encode(_message(arrays={"flag": np.array([True, False])}))
    with pytest.raises(ProtocolError, match="bool buffer"):
        decode([frames[0], b"\x01\x07"])


def test_weights_checksum_detects_a_flipped_bit_and_config_hash_is_order_free():
    params = {"w": np.ones((3, 3), np.float32), "b": np.zeros(3, np.float32)}
    before = weights_checksum(params)
    params["w"][1, 1] = np.nextafter(np.float32(1), np.float32(2))
    assert weights_checksum(params) != before
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


# --- fuzzing: every random input is either decoded into a valid Message or raises ProtocolError ---

_ok_frames = [bytes(f) for f in encode(_message())]
_ok_header = msgpack.unpackb(_ok_frames[0])


def _mutate(data: bytes, positions: list[int], values: list[int]) -> bytes:
    buf = bytearray(data)
    for pos, val in zip(positions, values):
        if buf:
            buf[pos % len(buf)] = val
    return bytes(buf)


_header_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

_random_messages = st.one_of(
    # raw garbage frames
    st.lists(st.binary(max_size=200), min_size=0, max_size=5),
    # a valid message with bytes flipped in a frame
    st.tuples(
        st.integers(0, len(_ok_frames) - 1),
        st.lists(st.integers(0, 10**6), min_size=1, max_size=8),
        st.lists(st.integers(0, 255), min_size=1, max_size=8),
    ).map(lambda t: [_mutate(f, t[1], t[2]) if i == t[0] else f for i, f in enumerate(_ok_frames)]),
    # a valid message truncated or with frames dropped/duplicated
    st.tuples(st.integers(0, len(_ok_frames) - 1), st.integers(0, 400)).map(
        lambda t: [f[: t[1]] if i == t[0] else f for i, f in enumerate(_ok_frames)]
    ),
    st.lists(st.sampled_from(_ok_frames), max_size=8),
    # a valid header with some fields replaced by random values (and random buffer frames)
    st.tuples(
        st.dictionaries(
            st.sampled_from(sorted(_ok_header) + ["other"]), _header_values, max_size=4
        ),
        st.lists(st.sampled_from(sorted(_ok_header)), max_size=2),
        st.lists(st.binary(max_size=64), max_size=3),
    ).map(
        lambda t: [
            msgpack.packb(
                {**{k: v for k, v in _ok_header.items() if k not in t[1]}, **t[0]},
                use_bin_type=True,
            ),
            *t[2],
        ]
    ),
)


def _valid(msg: Message) -> bool:
    return msg.kind in ("heartbeat", "transitions", "ack", "weights", "stats", "reject") and all(
        isinstance(a, np.ndarray) and a.dtype != object for a in msg.arrays.values()
    )


@pytest.mark.slow  # 30 s idle; the socket-level test sends 10,000 bad messages in the fast suite
@settings(
    max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(_random_messages)
def test_fuzz_random_messages_never_escape_protocol_error(frames):
    try:
        msg = decode(frames, Limits(max_message_bytes=1 << 20))
    except ProtocolError as exc:
        assert str(exc)  # every rejection carries a reason
    else:
        assert _valid(msg)
