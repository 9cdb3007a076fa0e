"""Benchmarks behind `robot-rl bench NAME --json`; each module has `run(args) -> dict`."""
