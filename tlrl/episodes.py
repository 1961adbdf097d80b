"""Bookkeeping of vector-env episodes: returns and lengths, and the true next observation.

With `AutoresetMode.SAME_STEP` (what `tlrl.envs.make_vector_env` uses), the observation
returned for an env whose episode just ended is already the first of the next episode;
the true final observation is in `info["final_obs"]`. `true_next_obs` puts it back, so a
stored transition never spans an episode boundary.
"""
from __future__ import annotations

from collections import deque
from typing import Deque, List, Mapping

import numpy as np


def true_next_obs(next_obs, info: Mapping, done: np.ndarray):
    """`next_obs` with the rows of finished envs replaced by their final observation."""
    if not np.any(done):
        return next_obs
    final = info["final_obs"]
    idx = np.flatnonzero(done)
    if isinstance(next_obs, Mapping):
        out = {k: np.array(v, copy=True) for k, v in next_obs.items()}
        for i in idx:
            for k in out:
                out[k][i] = final[i][k]
        return out
    out = np.array(next_obs, copy=True)
    for i in idx:
        out[i] = final[i]
    return out


class EpisodeTracker:
    """Running returns/lengths per env; keeps the last `window` finished episodes."""

    def __init__(self, n_envs: int, window: int = 100):
        self.returns = np.zeros(n_envs, np.float64)
        self.lengths = np.zeros(n_envs, np.int64)
        self.finished_returns: Deque[float] = deque(maxlen=window)
        self.finished_lengths: Deque[int] = deque(maxlen=window)
        self.episodes = 0

    def update(self, rewards: np.ndarray, done: np.ndarray) -> List[float]:
        """Add one vector step; return the returns of episodes that ended in it."""
        self.returns += rewards
        self.lengths += 1
        ended = []
        for i in np.flatnonzero(done):
            ended.append(float(self.returns[i]))
            self.finished_returns.append(float(self.returns[i]))
            self.finished_lengths.append(int(self.lengths[i]))
            self.returns[i] = 0.0
            self.lengths[i] = 0
            self.episodes += 1
        return ended

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.finished_returns)) if self.finished_returns else float("nan")
