"""SAC learner speed: updates/s (state, cached image features, full images), batching, act latency.

Batch 256, 2 critics, [256, 256] LayerNorm MLPs; figures are medians over repeats. One update =
one critic step (+ the discrete gripper critic) + one actor step + one temperature step
(critic_actor_ratio 1).
`*_bf16`: the same with `sac.matmul_dtype: bfloat16`, on GPUs and CPUs with native bf16 only.
`--device` picks where the agent runs (auto: CUDA when present); `act_ms_*` are the actor's policy
inference on that device.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

STATE_SPEC = {
    "tcp_pose": (7,),
    "tcp_vel": (6,),
    "gripper_width": (1,),
    "joint_pos": (7,),
    "joint_vel": (7,),
    "wrench": (6,),
    "object_pose": (7,),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N"
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repeats; the median is reported"
    )
    parser.add_argument(
        "--image-updates", type=int, default=1, help="updates per repeat on the full image path"
    )


def _episode(spec: dict, T: int, rng: np.random.Generator) -> dict:
    ep = {}
    for k, (shape, dtype) in spec.items():
        if np.dtype(dtype) == np.uint8:
            ep[k] = rng.integers(0, 255, (T + 1, *shape), dtype=np.uint8)
        else:
            ep[k] = rng.standard_normal((T + 1, *shape)).astype(dtype)
    ep.update(
        action=rng.uniform(-1, 1, (T + 1, 7)).astype(np.float32),
        reward=np.zeros(T + 1, np.float32),
        intervened=np.zeros(T + 1, bool),
        is_first=np.arange(T + 1) == 0,
        is_last=np.arange(T + 1) == T,
        is_terminal=np.arange(T + 1) == T,
    )
    return ep


def _rate(fn, n: int, repeats: int) -> float:
    """Median calls per second of `fn` over `repeats` timings of `n` calls each."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def run(args: argparse.Namespace) -> dict:
    import torch

    from controllers.config import from_dict
    from robot_rl.agents.device import describe, resolve_device
    from robot_rl.agents.replay_buffer import ReplayBuffer
    from robot_rl.agents.sac import SACAgent, SACConfig, build_backbone, native_bf16

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    B, R = args.batch, args.repeats
    device = resolve_device(args.device, "--device")
    out: dict[str, float | int | str] = {
        "batch": B,
        "threads": args.threads,
        "device": describe(device),
    }
    bf16 = device.type == "cuda" or (device.type == "cpu" and native_bf16())

    def config(**overrides) -> SACConfig:
        return from_dict(SACConfig, {"device": str(device), **overrides})

    # state path
    spec = {k: (s, np.float32) for k, s in STATE_SPEC.items()}
    buf = ReplayBuffer(20_000, spec)
    for _ in range(100):
        buf.add_episode(_episode(spec, 100, rng))
    out["sample_ms"] = round(1000 / _rate(lambda: buf.sample(B, rng), 50, R), 3)
    variants = {
        "updates_per_s_state": {},
        "updates_per_s_state_continuous_gripper": {"gripper": "continuous"},
    }
    if bf16:
        variants["updates_per_s_state_bf16"] = {"matmul_dtype": "bfloat16"}
    for name, overrides in variants.items():
        agent = SACAgent(spec, config(**overrides))
        batches = [buf.sample(B, rng) for _ in range(8)]
        it = iter(range(10**9))

        def step(agent=agent, batches=batches, it=it):
            return agent.update(batches[next(it) % 8])

        _rate(step, 5, 1)  # warm-up
        out[name] = round(_rate(step, 30, R), 1)
    obs = {k: v[0] for k, v in batches[0]["obs"].items()}
    agent = SACAgent(spec, config())
    out["act_ms_state"] = round(1000 / _rate(lambda: agent.act(obs, False), 200, R), 3)

    # image paths: two 128x128 cameras + the same proprio
    img_spec = dict(
        spec, image_front=((128, 128, 3), np.uint8), image_wrist=((128, 128, 3), np.uint8)
    )
    backbone = build_backbone(from_dict(SACConfig, {}).image)
    cached = SACAgent(img_spec, config(image={"cache_shifts": 4}), backbone=backbone)
    cbuf = ReplayBuffer(5_000, cached.storage_spec(), devices=cached.storage_devices(5_000))
    t0 = time.perf_counter()
    frames = 0
    for _ in range(4):
        ep = _episode(img_spec, 50, rng)
        cbuf.add_episode(cached.to_storage(ep))
        frames += 2 * 51
    out["cache_ms_per_frame"] = round(
        1000 * (time.perf_counter() - t0) / frames, 2
    )  # 4 backbone passes each
    out["sample_ms_image_cached"] = round(1000 / _rate(lambda: cbuf.sample(B, rng), 20, R), 3)
    batches = [cbuf.sample(B, rng) for _ in range(4)]
    cached_variants = {"updates_per_s_image_cached": cached}
    if bf16:
        cached_variants["updates_per_s_image_cached_bf16"] = SACAgent(
            img_spec,
            config(image={"cache_shifts": 4}, matmul_dtype="bfloat16"),
            backbone=backbone,
        )
    for name, learner in cached_variants.items():
        it = iter(range(10**9))

        def step(learner=learner, it=it):
            return learner.update(batches[next(it) % 4])

        _rate(step, 2, 1)
        out[name] = round(_rate(step, 10, R), 2)

    full = SACAgent(img_spec, config(), backbone=backbone)
    ibuf = ReplayBuffer(2_000, img_spec)
    for _ in range(8):
        ibuf.add_episode(_episode(img_spec, 50, rng))
    out["sample_ms_image"] = round(1000 / _rate(lambda: ibuf.sample(B, rng), 5, R), 3)
    batch = ibuf.sample(B, rng)
    full.update(batch)  # warm-up
    out["updates_per_s_image"] = round(
        _rate(lambda: full.update(batch), args.image_updates, max(1, R // 2)), 3
    )
    img_obs = {k: v[0] for k, v in batch["obs"].items()}
    out["act_ms_image"] = round(1000 / _rate(lambda: full.act(img_obs, False), 20, R), 2)
    return out
