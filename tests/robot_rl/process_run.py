"""The small run config the multi-process tests (kill/restart, chaos) train the twin with."""

from __future__ import annotations

from dataclasses import replace

from robot_rl.agents.sac import SACConfig
from robot_rl.loop.run_config import LearnerConfig, RunConfig, TransportConfig


def small_run(final_eval_episodes: int = 50, journal_fsync: str = "always") -> RunConfig:
    """Two actors, 15-step episodes, tiny networks, fast heartbeats; no step or time budget."""
    transport = TransportConfig(heartbeat_s=0.1, peer_timeout_s=1.0, resend_after_s=0.5)
    return RunConfig(
        num_actors=2,
        demos=2,
        total_env_steps=10**7,
        max_wall_s=10**5,
        final_eval_episodes=final_eval_episodes,
        env={"max_episode_steps": 15},
        eval_every_episodes=3,
        sac=SACConfig(hidden=(32, 32)),
        learner=LearnerConfig(
            batch_size=32,
            learning_starts=20,
            publish_every=5,
            checkpoint_every=20,
            progress_every_s=1.0,
        ),
        transport=replace(transport, batch_steps=5, journal_fsync=journal_fsync),
    )
