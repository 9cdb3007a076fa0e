"""The zarr v3 episode store (docs/data.md): write whole episodes, read, filter, record steps."""

from robot_rl.store.episodes import (
    SCHEMA_VERSION,
    CommitError,
    EpisodeInfo,
    EpisodeStore,
    StoreError,
    validate_episode,
)
from robot_rl.store.recorder import EpisodeRecorder, decode_state, encode_state, run_episode

__all__ = [
    "SCHEMA_VERSION",
    "CommitError",
    "EpisodeInfo",
    "EpisodeRecorder",
    "EpisodeStore",
    "StoreError",
    "decode_state",
    "encode_state",
    "run_episode",
    "validate_episode",
]
