"""A video of one episode: cameras side by side, action, reward and intervention drawn on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALE = 2  # 128x128 cameras are too small to read text on
INTERVENTION_BGR = (0, 0, 255)  # red frame while a human acts
POLICY_BGR = (0, 200, 0)


def overlay_frames(episode: dict[str, np.ndarray], cameras: list[str] | None = None) -> np.ndarray:
    """(T+1, H, W, 3) uint8 RGB: cameras side by side, text panel, red border when intervened."""
    import cv2

    keys = (
        [f"image_{c}" for c in cameras]
        if cameras
        else sorted(k for k in episode if k.startswith("image_"))
    )
    missing = [k for k in keys if k not in episode]
    if not keys or missing:
        have = sorted(k[len("image_") :] for k in episode if k.startswith("image_"))
        raise ValueError(
            f"no camera images to show (asked for {missing or 'any'}; the episode has {have})"
        )
    frames = []
    for t in range(len(episode["is_first"])):
        tiles = [np.asarray(episode[k][t]) for k in keys]
        height = max(tile.shape[0] for tile in tiles)
        tiles = [
            cv2.resize(tile, (tile.shape[1] * height // tile.shape[0], height)) for tile in tiles
        ]
        image = cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR)
        image = cv2.resize(
            image, (image.shape[1] * SCALE, image.shape[0] * SCALE), interpolation=cv2.INTER_NEAREST
        )
        panel = np.zeros((64, image.shape[1], 3), np.uint8)
        intervened = bool(episode["intervened"][t])
        last = bool(episode["is_last"][t])
        action = " ".join(f"{v:+.2f}" for v in episode["action"][t])
        lines = [
            f"t={t}  reward={float(episode['reward'][t]):.2f}  "
            f"p(success)={float(episode['success_prob'][t]):.2f}"
            + ("  END" + (" (terminal)" if episode["is_terminal"][t] else "") if last else ""),
            f"action {action}" if not last else "",
            ("HUMAN" if intervened else "policy") + f"  v{int(episode['policy_version'][t])}",
        ]
        for i, text in enumerate(lines):
            color = INTERVENTION_BGR if (i == 2 and intervened) else (255, 255, 255)
            cv2.putText(
                panel, text, (6, 18 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA
            )
        frame = np.concatenate([image, panel], axis=0)
        border = INTERVENTION_BGR if intervened else POLICY_BGR
        cv2.rectangle(frame, (0, 0), (frame.shape[1] - 1, image.shape[0] - 1), border, 3)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return np.stack(frames)


def write_video(frames: np.ndarray, path: str | Path, fps: float = 10.0) -> Path:
    """Write RGB frames as .mp4 (OpenCV's bundled mp4v encoder) or .gif (Pillow) by the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        import imageio.v3 as iio

        iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    elif path.suffix == ".mp4":
        import cv2

        h, w = frames.shape[1:3]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot open an mp4 writer here; write a .gif instead")
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    else:
        raise ValueError(f"{path}: video suffix must be .mp4 or .gif, got {path.suffix!r}")
    return path
