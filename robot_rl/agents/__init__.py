"""The learning core: SAC agent, its networks and image encoders, replay buffers, checkpoints."""
