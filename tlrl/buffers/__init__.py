"""Replay, prioritized and rollout buffers (numpy, preallocated, vectorized).

- `ReplayBuffer`: uniform replay for vector envs, n-step returns, `.npz` save/load.
- `PrioritizedReplayBuffer`: proportional prioritized replay on the same storage.
- `SumTree`: batched sum/min trees behind the prioritized buffer.
- `RolloutBuffer` and `gae`: on-policy rollouts with episode-aware GAE(lambda).
- `nstep_returns` / `nstep_window`: the n-step return math, usable on its own.
"""
from tlrl.buffers.gae import gae
from tlrl.buffers.nstep import nstep_returns, nstep_window
from tlrl.buffers.prioritized import PrioritizedReplayBuffer
from tlrl.buffers.replay import ReplayBuffer
from tlrl.buffers.rollout import RolloutBuffer
from tlrl.buffers.sum_tree import SumTree

__all__ = [
    "ReplayBuffer",
    "PrioritizedReplayBuffer",
    "SumTree",
    "RolloutBuffer",
    "gae",
    "nstep_returns",
    "nstep_window",
]
