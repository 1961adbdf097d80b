"""`PrioritizedReplayBuffer`: proportional prioritized replay (Schaul et al., 2016, "Prioritized
Experience Replay", arXiv:1511.05952), on top of `ReplayBuffer`'s storage and n-step returns.

Slot i (the flat `row * n_envs + env` index of `ReplayBuffer`) has priority
p_i = (|delta_i| + eps) ** alpha, kept in a `SumTree`. New transitions get the largest
priority seen so far. Sampling is stratified: the total is cut into `batch_size` equal
segments and one value is drawn uniformly in each, so P(i) = p_i / sum_k p_k. Importance
weights are w_i = (N * P(i)) ** -beta / max_j w_j, with N = len(buffer) and the max taken
over all stored slots (so it uses the min-tree): w_i = (p_i / p_min) ** -beta.

>>> import gymnasium as gym
>>> buf = PrioritizedReplayBuffer(8, gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), seed=0)
>>> for _ in range(4):
...     buf.add(np.zeros((1, 2)), [0], [1.0], np.zeros((1, 2)), [False], [False])
>>> buf.update_priorities(np.array([0, 1, 2, 3]), np.array([1.0, 1.0, 1.0, 3.0]))
>>> batch = buf.sample(2, beta=1.0)
>>> batch.indices.dtype, batch.weights.dtype
(dtype('int64'), dtype('float32'))
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike

from tlrl.buffers import _io
from tlrl.buffers.replay import ReplayBuffer
from tlrl.buffers.sum_tree import SumTree
from tlrl.core import Batch


def _check_non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay with n-step returns (see the module docstring).

    Args:
        capacity, observation_space, action_space, n_envs, n_step, gamma, seed: as `ReplayBuffer`.
        alpha: priority exponent (0 = uniform).
        beta: default importance-weight exponent (anneal it by setting `buffer.beta`).
        eps: added to |TD error| so that no priority is 0; must be > 0.
    """

    _KIND = "PrioritizedReplayBuffer"

    def __init__(
        self,
        capacity: int,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        n_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        seed: Optional[int] = None,
    ):
        super().__init__(capacity, observation_space, action_space, n_envs=n_envs, n_step=n_step, gamma=gamma, seed=seed)
        self._alpha = _check_non_negative("alpha", alpha)
        self.beta = beta
        self._eps = _check_non_negative("eps", eps)
        if self._eps == 0:
            raise ValueError("eps must be > 0 so that every stored transition can be sampled")
        self._tree = SumTree(self.capacity)
        self._max_priority = 1.0

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def eps(self) -> float:
        return self._eps

    @property
    def beta(self) -> float:
        """Default importance-weight exponent of `sample`."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _check_non_negative("beta", value)

    @property
    def max_priority(self) -> float:
        """Priority given to new transitions: the largest stored priority seen so far (starts at 1)."""
        return self._max_priority

    @property
    def priorities(self) -> np.ndarray:
        """Read-only view of the stored priorities (p + eps) ** alpha, `[capacity]`, by slot."""
        return self._tree.priorities

    def add(
        self,
        obs: Any,
        action: Any = None,
        reward: Any = None,
        next_obs: Any = None,
        terminated: Any = None,
        truncated: Any = None,
    ) -> None:
        """As `ReplayBuffer.add`; the new slots get the max priority seen so far."""
        row = self._pos
        super().add(obs, action, reward, next_obs, terminated, truncated)
        self._tree.update_range(row * self._n_envs, np.full(self._n_envs, self._max_priority))

    def sample(self, batch_size: int, beta: Optional[float] = None) -> Batch:
        """`batch_size` transitions drawn with P(i) proportional to priority, stratified over the total.

        Args:
            batch_size: transitions to draw, with replacement (it may exceed `len(self)`).
            beta: importance-weight exponent for this call (default `self.beta`).

        Returns:
            A `Batch` as `ReplayBuffer.sample`, with `weights` the normalized importance weights.
        """
        beta = self._beta if beta is None else _check_non_negative("beta", beta)
        self._check_batch_size(batch_size)
        total = self._tree.total
        values = (np.arange(batch_size) + self._rng.random(batch_size)) * (total / batch_size)
        indices = self._tree.find_prefix_sum(values)
        # (N * P(i)) ** -beta / max_j (N * P(j)) ** -beta == (p_i / p_min) ** -beta
        weights = (self._tree.priorities.take(indices) / self._tree.min) ** -beta
        return self._gather(indices, weights.astype(np.float32))

    def update_priorities(self, indices: ArrayLike, priorities: ArrayLike) -> None:
        """Set the priorities of sampled slots from their |TD errors|.

        Args:
            indices: `Batch.indices` of the sampled transitions (1-D ints, each < len(self)).
            priorities: |TD error| per index, finite and >= 0; stored as (p + eps) ** alpha.
        """
        idx = np.asarray(indices)
        p = np.asarray(priorities, dtype=np.float64)
        if idx.ndim != 1 or p.shape != idx.shape:
            raise ValueError(f"indices and priorities must be 1-D of the same length, got shapes {idx.shape} and {p.shape}")
        if idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= len(self):
            raise ValueError(f"indices must lie in [0, {len(self)}) (the stored slots), got range [{idx.min()}, {idx.max()}]")
        if not np.isfinite(p).all() or p.min() < 0:
            raise ValueError("priorities must be finite and >= 0 (pass |TD error|)")
        stored = (p + self._eps) ** self._alpha
        self._tree.update(idx, stored)
        self._max_priority = max(self._max_priority, float(stored.max()))

    # --- files (ReplayBuffer hooks) ---

    def _extra_config(self) -> Dict[str, Any]:
        return {"alpha": self._alpha, "beta": self._beta, "eps": self._eps}

    def _extra_arrays(self) -> Dict[str, np.ndarray]:
        return {"priorities": np.asarray(self._tree.priorities), "max_priority": np.array(self._max_priority)}

    def _restore_extra(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: str) -> None:
        leaves = _io.expect(arrays, "priorities", np.zeros(self.capacity), path)
        max_priority = _io.expect(arrays, "max_priority", np.array(1.0), path)
        stored = len(self)
        if not (np.isfinite(leaves).all() and (leaves[:stored] >= 0).all() and (leaves[stored:] == 0).all()):
            raise ValueError(f"{path!r}: priorities must be finite, >= 0 on the {stored} stored slots and 0 elsewhere")
        # Every tree node is the float sum (min) of its two children, so rebuilding from the
        # leaves reproduces the saved tree bit for bit.
        self._tree.update(np.arange(stored), leaves[:stored])
        self._max_priority = float(max_priority)
