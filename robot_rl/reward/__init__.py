"""Reward from pixels: a trained success classifier (default), CLIP-style VLM back ends, metrics."""
