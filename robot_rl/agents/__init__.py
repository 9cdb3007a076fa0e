"""The learning core: the SAC agent, its networks and image encoders, replay buffers, checkpoints."""
