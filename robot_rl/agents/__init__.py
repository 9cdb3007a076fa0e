"""Agents: the SAC learner (robot_rl.agents.sac)."""
