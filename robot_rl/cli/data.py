"""`robot-rl data info|video`: what an episode store holds, and a video of one episode."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect an episode store (info, video)")
    cmds = p.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    info = cmds.add_parser(
        "info", help="episodes, steps, success rate, intervention share, size on disk"
    )
    info.add_argument("store", help="episode store")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run_info)
    video = cmds.add_parser(
        "video", help="mp4 or gif of an episode's cameras with action/reward/intervention"
    )
    video.add_argument("store", help="episode store")
    video.add_argument(
        "--episode", type=int, required=True, help="episode index (negative counts from the end)"
    )
    video.add_argument("--out", help="output .mp4 or .gif (default: episode_<N>.mp4)")
    video.add_argument("--cameras", help="comma-separated cameras (default: all)")
    video.add_argument(
        "--fps", type=float, default=10.0, help="frames per second (default 10, the control rate)"
    )
    video.set_defaults(func=run_video)


def run_info(args: argparse.Namespace) -> int:
    from robot_rl.store import EpisodeStore, StoreError

    try:
        with EpisodeStore.open(args.store) as store:
            summary = store.summary()
    except StoreError as exc:
        raise SystemExit(f"robot-rl data info: {exc}") from exc
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"store               {summary['path']}")
    print(f"episodes            {summary['episodes']}")
    print(f"steps               {summary['steps']}")
    print(f"success rate        {summary['success_rate']:.1%}")
    print(f"intervention share  {summary['intervention_share']:.1%}")
    print(
        f"sources             {', '.join(f'{k} {v}' for k, v in summary['sources'].items()) or '-'}"
    )
    print(f"tasks               {', '.join(summary['tasks']) or '-'}")
    print(f"size on disk        {summary['bytes_on_disk'] / 1e6:.1f} MB")
    print(f"keys                {' '.join(summary['keys'])}")
    return 0


def run_video(args: argparse.Namespace) -> int:
    from robot_rl.store import EpisodeStore, StoreError
    from robot_rl.store.video import overlay_frames, write_video

    out = args.out or f"episode_{args.episode}.mp4"
    cameras = [c for c in args.cameras.split(",") if c] if args.cameras else None
    try:
        with EpisodeStore.open(args.store) as store:
            frames = overlay_frames(store.episode(args.episode), cameras)
        path = write_video(frames, out, args.fps)
    except (StoreError, ValueError, OSError) as exc:
        raise SystemExit(f"robot-rl data video: {exc}") from exc
    print(f"wrote {path} ({len(frames)} frames)")
    return 0
