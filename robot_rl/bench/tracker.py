"""Marker tracker accuracy: object pose error vs the twin's truth, detection rate, latency.

Scripted pick_cube episodes in the twin with the marker cube rendered at 640x480 by the front
and wrist cameras (real-cell profile: the observation has no object pose). Each frame goes
through the tracker core (calibration/tracker.py) exactly as the `tracker` node runs it; the
twin's true cube pose is read only here, to score it. Latency is the core's time per image on
one thread (detection, pose, view choice), which the node adds to the image's age.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

CAMERAS = ("front", "wrist")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=3, help="scripted pick episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dictionary", default="DICT_4X4_50")
    parser.add_argument("--marker-size-mm", type=float, default=30.0)
    parser.add_argument(
        "--cameras", nargs="+", default=list(CAMERAS), help="twin cameras the tracker reads"
    )


def run(args: argparse.Namespace) -> dict:
    import cv2
    import torch

    import sim
    from calibration import transform as tf
    from calibration.camera_yaml import load_twin_camera
    from calibration.tracker import ObjectTracker, load_mounts, select_view
    from controllers.action import GRIPPER
    from robot_rl.loop.tracked_pose import tracker_config_for_twin
    from sim.cameras import DEFAULT_CAMERA_YAML
    from sim.experts import make_expert

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    size_m = args.marker_size_mm / 1000.0
    marker = {"dictionary": args.dictionary, "id": 0, "size_m": size_m}
    env = sim.make_env(
        "pick_cube",
        marker=marker,
        cameras=tuple(args.cameras),
        image_size=(480, 640),
        privileged_state=False,
    )
    config = tracker_config_for_twin(args.dictionary, 0, size_m, args.cameras)
    tracker = ObjectTracker(config, load_mounts(config))
    intrinsics = {c: load_twin_camera(DEFAULT_CAMERA_YAML, c).intrinsics for c in args.cameras}
    expert = make_expert(env)
    pos_mm, rot_deg, latency_ms = [], [], []
    seen = {"before_grasp": [0, 0], "all": [0, 0]}  # [frames with a pose, frames]
    chosen = dict.fromkeys(args.cameras, 0)
    successes = 0
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + episode)
        expert.reset()
        grasped = False
        for _ in range(env.unwrapped.config.max_episode_steps):
            T_world_hand = tf.from_pose7(obs["tcp_pose"])
            views = []
            for cam in args.cameras:
                t0 = time.perf_counter()
                m = tracker.measure(cam, obs[f"image_{cam}"], intrinsics[cam], T_world_hand)
                latency_ms.append((time.perf_counter() - t0) * 1e3)
                if m is not None:
                    views.append(m)
            best = select_view(views)
            truth = tf.from_pose7(env.unwrapped.task.object_pose(env.unwrapped.data))
            for key in ("all", "before_grasp") if not grasped else ("all",):
                seen[key][0] += best is not None
                seen[key][1] += 1
            if best is not None:
                chosen[best.camera] += 1
                dt, dr = tf.errors(best.T_world_object, truth)
                pos_mm.append(dt * 1e3)
                rot_deg.append(np.degrees(dr))
            action = expert.act(obs)
            grasped = grasped or action[GRIPPER] > 0
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                successes += bool(terminated)
                break
    env.close()

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 3) if values else float("nan")

    return {
        "cameras": list(args.cameras),
        "image_size": [640, 480],
        "dictionary": args.dictionary,
        "marker_size_mm": args.marker_size_mm,
        "episodes": args.episodes,
        "expert_successes": successes,
        "frames": seen["all"][1],
        "detection_rate_before_grasp": round(seen["before_grasp"][0] / seen["before_grasp"][1], 4),
        "detection_rate_all": round(seen["all"][0] / seen["all"][1], 4),
        "position_error_mm_p50": pct(pos_mm, 50),
        "position_error_mm_p99": pct(pos_mm, 99),
        "orientation_error_deg_p50": pct(rot_deg, 50),
        "orientation_error_deg_p99": pct(rot_deg, 99),
        "latency_ms_per_image_p50": pct(latency_ms, 50),
        "latency_ms_per_image_p99": pct(latency_ms, 99),
        "view_chosen": chosen,
    }
