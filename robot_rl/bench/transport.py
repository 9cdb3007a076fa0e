"""Transport throughput and latency: learner here, one actor in another process, TCP sockets.

Also the cost of the actor's spool per fsync policy (`spool_push_us`): one message of 2 KB or
200 KB pushed, median over `--spool-pushes`, in a temporary folder (name its file system).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import statistics
import tempfile
import time

import numpy as np

STATE_KEYS = {
    "tcp_pose": 7,
    "tcp_vel": 6,
    "gripper_width": 1,
    "joint_pos": 7,
    "joint_vel": 7,
    "wrench": 6,
    "object_pose": 7,
    "action": 7,
    "policy_action": 7,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-steps", type=int, default=200_000, help="state transitions to send"
    )
    parser.add_argument(
        "--image-steps", type=int, default=10_000, help="two-camera transitions to send"
    )
    parser.add_argument("--batch", type=int, default=64, help="steps per transitions message")
    parser.add_argument("--publishes", type=int, default=30, help="weight publishes to time")
    parser.add_argument(
        "--spool-pushes", type=int, default=200, help="spool pushes timed per policy and size"
    )
    parser.add_argument(
        "--only-spool", action="store_true", help="time the spool only (no sockets, no actor)"
    )


def step_rows(rows: int, images: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A batch of RLDS-style step rows as the actor sends them (docs/contracts.md)."""
    batch = {k: rng.standard_normal((rows, n)).astype(np.float32) for k, n in STATE_KEYS.items()}
    batch.update(
        reward=np.zeros(rows, np.float32),
        success_prob=np.full(rows, np.nan, np.float32),
        intervened=np.zeros(rows, bool),
        is_first=np.zeros(rows, bool),
        is_last=np.zeros(rows, bool),
        is_terminal=np.zeros(rows, bool),
        policy_version=np.zeros(rows, np.int64),
        timestamp=np.zeros(rows, np.float64),
        episode_id=np.zeros(rows, np.int64),
        step=np.arange(rows, dtype=np.int64),
    )
    if images:
        for cam in ("front", "wrist"):
            batch[f"image_{cam}"] = rng.integers(0, 256, (rows, 128, 128, 3), dtype=np.uint8)
    return batch


def actor_parameters(
    obs_dim: int = 55, action_dim: int = 7, hidden: int = 256
) -> dict[str, np.ndarray]:
    """Same shapes as the SAC actor MLP [256, 256] with LayerNorm and a mean/log-std head."""
    rng = np.random.default_rng(0)
    shapes = {
        "l0.weight": (hidden, obs_dim),
        "l0.bias": (hidden,),
        "ln0.weight": (hidden,),
        "ln0.bias": (hidden,),
        "l1.weight": (hidden, hidden),
        "l1.bias": (hidden,),
        "ln1.weight": (hidden,),
        "ln1.bias": (hidden,),
        "head.weight": (2 * action_dim, hidden),
        "head.bias": (2 * action_dim,),
    }
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def _actor(endpoint: str, spool: str, plan: dict, out: mp.Queue) -> None:
    from robot_rl.transport.channels import ActorClient

    client = ActorClient(endpoint, "bench-actor", "be", spool).start()
    rng = np.random.default_rng(1)
    assert client.flush(30) and _wait_connected(client)
    for name, steps, images in (
        ("state", plan["state_steps"], False),
        ("image", plan["image_steps"], True),
    ):
        batch = step_rows(plan["batch"], images, rng)
        for _ in range(steps // plan["batch"]):
            client.send("transitions", batch)
            while (
                client.unacked() > 256
            ):  # the learner sets the pace; do not spool a benchmark to disk
                time.sleep(0.0005)
        client.flush(120)
        out.put((name, "done"))
    # Weights: note the wall time each new version is swapped in.
    swaps = {}
    deadline = time.monotonic() + plan["publishes"] * 1.0 + 10
    while len(swaps) < plan["publishes"] and time.monotonic() < deadline:
        weights = client.take_weights()
        if weights is not None:
            swaps[weights.version] = time.time()
        time.sleep(0.0002)
    out.put(("weights", swaps))
    # Per-step overhead of the actor loop's transport work: append a step row, send every `batch`
    # steps, check for new weights.
    single = step_rows(1, False, rng)
    times = []
    for _ in range(5):
        rows: list[dict[str, np.ndarray]] = []
        t0 = time.perf_counter()
        for _ in range(2000):
            rows.append({k: v[0] for k, v in single.items()})
            if len(rows) == plan["batch"]:
                client.send("transitions", {k: np.stack([r[k] for r in rows]) for k in rows[0]})
                rows.clear()
            client.take_weights()
        times.append((time.perf_counter() - t0) / 2000 * 1e3)
    client.flush(30)
    out.put(("overhead", statistics.median(times)))
    client.close()


def _wait_connected(client, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not client.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    return client.connected


def spool_push_us(pushes: int) -> dict[str, dict[str, float]]:
    """Median µs to spool one message, per fsync policy and message size."""
    from robot_rl.transport.journal import FSYNC_POLICIES
    from robot_rl.transport.spool import Spool

    out: dict[str, dict[str, float]] = {}
    for policy in FSYNC_POLICIES:
        out[policy] = {}
        for label, size in (("2KB", 2_000), ("200KB", 200_000)):
            frames = [b"h" * 100, np.random.default_rng(0).bytes(size - 100)]
            with tempfile.TemporaryDirectory(prefix="bench-spool-") as tmp:
                spool = Spool(tmp, 1 << 40, fsync=policy)
                times = []
                for seq in range(pushes):
                    t0 = time.perf_counter()
                    path = spool.push(1, seq, frames)
                    times.append((time.perf_counter() - t0) * 1e6)
                    spool.remove(path)  # acknowledged: keeps the folder as small as in use
            out[policy][label] = round(statistics.median(times), 1)
    return out


def run(args: argparse.Namespace) -> dict:
    from robot_rl.transport.channels import LearnerServer

    spool = {"spool_push_us": spool_push_us(args.spool_pushes)}
    if args.only_spool:
        return spool

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    server = LearnerServer(endpoint, "be").start()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    plan = {
        "state_steps": args.state_steps,
        "image_steps": args.image_steps,
        "batch": args.batch,
        "publishes": args.publishes,
    }
    with tempfile.TemporaryDirectory() as spool:
        proc = ctx.Process(target=_actor, args=(endpoint, spool, plan, out))
        proc.start()
        result = {}
        for name in ("state", "image"):
            rows, first, last = 0, None, None
            expected = (plan[f"{name}_steps"] // args.batch) * args.batch
            while rows < expected:
                got = server.receive()
                if not got:
                    time.sleep(0.0005)
                    continue
                now = time.perf_counter()
                first = first if first is not None else now
                rows += sum(len(m.arrays["reward"]) for m in got)
                last = now
            assert out.get(timeout=120) == (name, "done")
            # The first message's rows are not counted: timing starts when it arrives.
            result[f"{'transitions' if name == 'state' else 'image_transitions'}_per_s"] = round(
                (rows - args.batch) / (last - first), 1
            )
        params = actor_parameters()
        sent = {}
        for version in range(1, args.publishes + 1):
            sent[version] = time.time()
            server.publish_weights(params, version)
            time.sleep(0.1)  # let each one land before the next, so none is superseded
        swaps = out.get(timeout=60)[1]
        latencies = [(swaps[v] - sent[v]) * 1e3 for v in sent if v in swaps]
        overhead = out.get(timeout=120)[1]
        proc.join(30)
    server.close()
    result.update(
        weights_publish_ms=round(statistics.median(latencies), 2),
        weights_publish_ms_p90=round(float(np.percentile(latencies, 90)), 2),
        weights_bytes=int(sum(a.nbytes for a in params.values())),
        actor_overhead_ms=round(overhead, 4),
        batch_steps=args.batch,
        **spool,
    )
    return result
