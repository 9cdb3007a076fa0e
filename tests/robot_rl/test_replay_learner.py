"""Replay buffer: episodes and interleaved per-stream rows, wrap-around, RLIF reward, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.config import ConfigError
from robot_rl.agents.replay_buffer import ReplayBuffer, concat_batches, sample_symmetric

SPEC = {
    "t": ((1,), np.float32),
    "episode": ((1,), np.float32),
    "image_front": ((4, 4, 3), np.uint8),
}


def episode(ep_id: int, T: int, terminal: bool = True, intervened=None, grip=None) -> dict:
    t = np.arange(T + 1, dtype=np.float32)
    ep = {
        "t": t[:, None],
        "episode": np.full((T + 1, 1), ep_id, np.float32),
        "image_front": np.broadcast_to(
            (t % 256).astype(np.uint8)[:, None, None, None], (T + 1, 4, 4, 3)
        ).copy(),
        "action": np.zeros((T + 1, 7), np.float32),
        "reward": np.zeros(T + 1, np.float32),
        "intervened": np.zeros(T + 1, bool) if intervened is None else np.asarray(intervened, bool),
        "is_first": t == 0,
        "is_last": t == T,
        "is_terminal": (t == T) & terminal,
    }
    ep["action"][:T, 0] = t[:T] / (T + 1)
    if grip is not None:
        ep["action"][:T, 6] = grip
    ep["reward"][T - 1] = 1.0 if terminal else 0.0
    return ep


def rows_of(ep: dict, start: int, stop: int) -> dict:
    return {k: v[start:stop] for k, v in ep.items()}


def check_consistent(batch: dict) -> None:
    """Every sampled transition pairs o_t with o_{t+1} of the same episode."""
    np.testing.assert_array_equal(batch["next_obs"]["t"], batch["obs"]["t"] + 1)
    np.testing.assert_array_equal(batch["next_obs"]["episode"], batch["obs"]["episode"])


def test_episode_gives_T_transitions_with_next_obs_and_done():
    buf = ReplayBuffer(100, SPEC)
    buf.add_episode(episode(0, 5, terminal=True))
    buf.add_episode(episode(1, 4, terminal=False))
    assert buf.size == 9  # is_last rows are not transitions
    b = buf.gather(np.flatnonzero(buf.valid))
    check_consistent(b)
    # done only on the transition into the terminal last row of the terminated episode
    last_of_ep0 = (b["obs"]["episode"][:, 0] == 0) & (b["obs"]["t"][:, 0] == 4)
    np.testing.assert_array_equal(b["done"] == 1.0, last_of_ep0)
    assert b["reward"].sum() == 1.0
    np.testing.assert_array_equal(b["next_obs"]["image_front"][:, 0, 0, 0], b["obs"]["t"][:, 0] + 1)


def test_interleaved_streams_equal_whole_episodes():
    eps = [episode(i, 6 + i) for i in range(3)]
    whole = ReplayBuffer(100, SPEC)
    for ep in eps:
        whole.add_episode(ep)
    streamed = ReplayBuffer(100, SPEC)
    cursors = [0, 0, 0]
    rng = np.random.default_rng(0)
    while any(c < len(ep["t"]) for c, ep in zip(cursors, eps)):
        i = int(rng.integers(3))
        if cursors[i] >= len(eps[i]["t"]):
            continue
        n = int(rng.integers(1, 4))
        streamed.add_rows(f"actor-{i}", rows_of(eps[i], cursors[i], cursors[i] + n))
        cursors[i] += n
    assert streamed.size == whole.size == sum(len(ep["t"]) - 1 for ep in eps)

    def key(b):
        return sorted(zip(b["obs"]["episode"][:, 0], b["obs"]["t"][:, 0], b["done"], b["reward"]))

    bs, bw = (
        streamed.gather(np.flatnonzero(streamed.valid)),
        whole.gather(np.flatnonzero(whole.valid)),
    )
    check_consistent(bs)
    assert key(bs) == key(bw)


def test_latest_row_waits_for_its_successor():
    buf = ReplayBuffer(100, SPEC)
    ep = episode(0, 5)
    buf.add_rows("a", rows_of(ep, 0, 1))
    assert buf.size == 0
    buf.add_rows("a", rows_of(ep, 1, 2))
    assert buf.size == 1
    buf.add_rows("a", rows_of(ep, 2, 6))
    assert buf.size == 5 and "a" not in buf.streams  # closed by is_last


def test_wraparound_drops_transitions_whose_next_row_was_overwritten():
    buf = ReplayBuffer(25, SPEC)
    rng = np.random.default_rng(1)
    for i in range(20):
        buf.add_episode(episode(i, int(rng.integers(2, 9))))
        filled = min(buf.rows_written, buf.capacity)
        assert buf.size <= filled
        check_consistent(buf.sample(64, rng))
    # only rows of the newest episodes remain
    assert buf.gather(np.flatnonzero(buf.valid))["obs"]["episode"].min() >= 15


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 5)), min_size=1, max_size=40),
    st.integers(8, 40),
)
def test_random_interleavings_keep_transitions_consistent(chunks, capacity):
    buf = ReplayBuffer(capacity, SPEC)
    eps = {i: episode(10 * i, 7) for i in range(3)}
    cursor = {i: 0 for i in range(3)}
    count = {i: 0 for i in range(3)}
    for i, n in chunks:
        ep = eps[i]
        stop = min(cursor[i] + n, len(ep["t"]))
        buf.add_rows(str(i), rows_of(ep, cursor[i], stop))
        cursor[i] = stop
        if cursor[i] == len(ep["t"]):  # next episode of this stream
            count[i] += 1
            eps[i], cursor[i] = episode(10 * i + count[i], 7), 0
        if buf.size:
            check_consistent(buf.gather(np.flatnonzero(buf.valid)))
        assert buf.size <= capacity


def test_rlif_reward_marks_the_transition_before_a_takeover():
    intervened = [0, 0, 1, 1, 0, 0, 0]
    ep = episode(0, 6, terminal=True, intervened=intervened)
    for mode, expect in (("rlif", [0, -1, 0, 0, 0, 0]), ("rlif+task", [0, -1, 0, 0, 0, 1])):
        buf = ReplayBuffer(50, SPEC, reward_mode=mode)
        buf.add_episode(ep)
        b = buf.gather(np.flatnonzero(buf.valid))
        order = np.argsort(b["obs"]["t"][:, 0])
        np.testing.assert_array_equal(b["reward"][order], expect)


def test_prev_gripper_tracks_the_command_in_force():
    grip = np.array([-1, 0, 1, 1, 0, -1], np.float32)  # open, stay, close, close, stay, open
    buf = ReplayBuffer(50, SPEC)
    ep = episode(0, 6, grip=grip)
    buf.add_rows("a", rows_of(ep, 0, 3))
    buf.add_rows("a", rows_of(ep, 3, 7))  # state carried across chunks
    b = buf.gather(np.flatnonzero(buf.valid))
    order = np.argsort(b["obs"]["t"][:, 0])
    np.testing.assert_array_equal(b["prev_gripper"][order], [-1, -1, -1, 1, 1, 1])


def test_symmetric_sampling_takes_half_from_each():
    online, offline = ReplayBuffer(50, SPEC), ReplayBuffer(50, SPEC)
    online.add_episode(episode(1, 5))
    offline.add_episode(episode(2, 5))
    b = sample_symmetric(online, offline, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(b["obs"]["episode"][:, 0], [1] * 5 + [2] * 5)
    assert concat_batches(b, b)["next_obs"]["t"].shape == (20, 1)


def test_save_load_roundtrip(tmp_path):
    buf = ReplayBuffer(60, SPEC, reward_mode="rlif+task")
    for i in range(6):
        buf.add_episode(episode(i, 5))
    buf.add_rows("open", rows_of(episode(9, 5), 0, 3))
    buf.save(tmp_path / "buf.npz")
    back = ReplayBuffer.load(tmp_path / "buf.npz")
    assert back.size == buf.size and back.reward_mode == "rlif+task" and back.streams == buf.streams
    idx = np.flatnonzero(buf.valid)
    for k in ("action", "reward", "done"):
        np.testing.assert_array_equal(back.gather(idx)[k], buf.gather(idx)[k])
    back.add_rows("open", rows_of(episode(9, 5), 3, 6))  # the open stream continues after loading
    assert back.size == buf.size + 3


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda ep: ep.pop("image_front"), "image_front"),
        (lambda ep: ep.pop("reward"), "reward"),
        (lambda ep: ep["action"].__setitem__((1, 2), 1.5), "action.*outside"),
        (lambda ep: ep["action"].__setitem__((1, 2), np.nan), "action.*outside"),
        (lambda ep: ep.__setitem__("reward", np.zeros((6, 2), np.float32)), "reward.*shape"),
        (lambda ep: ep["reward"].__setitem__(2, np.inf), "reward.*NaN"),
        (lambda ep: ep.__setitem__("t", np.zeros((6, 2), np.float32)), "'t'.*shape"),
    ],
)
def test_bad_rows_raise_errors_naming_the_key(mutate, match):
    buf = ReplayBuffer(50, SPEC)
    ep = episode(0, 5)
    mutate(ep)
    with pytest.raises((KeyError, ValueError), match=match):
        buf.add_episode(ep)
    assert buf.rows_written == 0


def test_stream_must_start_episodes_with_is_first():
    buf = ReplayBuffer(50, SPEC)
    ep = episode(0, 5)
    with pytest.raises(ValueError, match="row 0 must be is_first"):
        buf.add_rows("a", rows_of(ep, 1, 3))
    buf.add_rows("a", rows_of(ep, 0, 3))
    with pytest.raises(ValueError, match="is_first inside an open episode"):
        buf.add_rows("a", rows_of(ep, 0, 1))


def test_config_errors():
    with pytest.raises(ConfigError, match="reserved"):
        ReplayBuffer(10, {"reward": ((1,), np.float32)})
    with pytest.raises(ConfigError, match="reward_mode"):
        ReplayBuffer(10, SPEC, reward_mode="dense")
    with pytest.raises(ValueError, match="no complete transition"):
        ReplayBuffer(10, SPEC).sample(4, np.random.default_rng(0))


def test_n_step_sums_discounted_rewards_and_stops_at_episode_ends():
    buf = ReplayBuffer(100, SPEC)
    ep = episode(0, 6, terminal=True)
    ep["reward"][:6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    buf.add_episode(ep)
    truncated = episode(1, 4, terminal=False)
    buf.add_episode(truncated)
    b = buf.gather(np.flatnonzero(buf.valid), n_step=3, discount=0.5)
    t, e = b["obs"]["t"][:, 0], b["obs"]["episode"][:, 0]
    np.testing.assert_array_equal(b["steps"], np.minimum(3, np.where(e == 0, 6, 4) - t))
    np.testing.assert_array_equal(b["next_obs"]["t"][:, 0], t + b["steps"])
    np.testing.assert_array_equal(b["next_obs"]["episode"], b["obs"]["episode"])
    first = (e == 0) & (t == 0)
    assert b["reward"][first][0] == pytest.approx(1.0 + 0.5 * 2.0 + 0.25 * 3.0)
    near_end = (e == 0) & (t == 4)  # two steps left: 5 + 0.5 * 6, ending in the terminal row
    assert b["reward"][near_end][0] == pytest.approx(5.0 + 0.5 * 6.0)
    # chains that reach the terminal row
    np.testing.assert_array_equal(b["done"] == 1.0, (e == 0) & (t >= 3))
    assert not b["done"][e == 1].any()  # a time-limit end bootstraps


def test_n_step_stops_at_the_newest_row_of_an_open_stream_and_counts_toggles():
    buf = ReplayBuffer(100, SPEC)
    ep = episode(0, 8, grip=np.array([0, 1, 1, 0, -1, 1, 0, 0], np.float32))
    buf.add_rows("a", rows_of(ep, 0, 5))  # rows 0..4 arrived; row 4's successor not yet
    b = buf.gather(np.flatnonzero(buf.valid), n_step=3, discount=0.5)
    t = b["obs"]["t"][:, 0]
    np.testing.assert_array_equal(b["steps"], np.minimum(3, 4 - t))
    # row 1 closes (open before): discounted by its place in each chain
    np.testing.assert_allclose(b["grasp_toggles"], [{0: 0.5, 1: 1.0}.get(int(x), 0.0) for x in t])
    buf.add_rows("a", rows_of(ep, 5, 9))  # the rest: row 4 opens, row 5 closes again
    b = buf.gather(np.flatnonzero(buf.valid), n_step=3, discount=0.5)
    t = b["obs"]["t"][:, 0]
    np.testing.assert_array_equal(b["steps"], np.minimum(3, 8 - t))
    expected = {0: 0.5, 1: 1.0, 2: 0.25, 3: 0.5 + 0.25, 4: 1.0 + 0.5, 5: 1.0}
    np.testing.assert_allclose(b["grasp_toggles"], [expected.get(int(x), 0.0) for x in t])
    one = buf.gather(np.flatnonzero(buf.valid))
    np.testing.assert_array_equal(one["steps"], 1)
    np.testing.assert_array_equal(one["grasp_toggles"], np.isin(one["obs"]["t"][:, 0], [1, 4, 5]))
    with pytest.raises(ValueError, match="discount"):
        buf.gather(np.flatnonzero(buf.valid), n_step=3)
