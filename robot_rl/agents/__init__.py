"""The learning core: SAC agent, networks and image encoders, replay buffers, checkpoints."""
