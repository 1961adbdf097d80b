"""Replay, prioritized and rollout buffers (numpy, preallocated, vectorized)."""
