"""Reward from pixels: a trained success classifier (default), CLIP-style VLM back ends, metrics.

Every reward model has `predict_proba(observation) -> float32 (B,)` reading `image_<camera>` keys,
`cameras` (the camera names it reads), `state_keys` (robot-state keys it also reads, e.g.
`tcp_pose`) and `threshold` (probability at or above which a frame is success).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_model(directory: str | Path, device: str = "cpu") -> Any:
    """The reward model in `directory`: trained classifier (classifier.yaml), run on `device` (a
    device name, see robot_rl.agents.device), or VLM (vlm.yaml, on the CPU)."""
    from robot_rl.reward import classifier, vlm

    directory = Path(directory)
    if (directory / classifier.CONFIG_FILE).is_file():
        return classifier.SuccessClassifier.load(directory, device=device)
    if (directory / vlm.CONFIG_FILE).is_file():
        return vlm.load(directory)
    raise FileNotFoundError(
        f"{directory}: no {classifier.CONFIG_FILE} or {vlm.CONFIG_FILE}; "
        "give a directory written by "
        "`robot-rl reward train`, `reward probe` or `reward zero-shot`"
    )
