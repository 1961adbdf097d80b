"""Generalized Advantage Estimation (Schulman et al., 2016, "High-Dimensional Continuous
Control Using Generalized Advantage Estimation", arXiv:1506.02438), episode-aware.

With V' the value of what follows step t:
    V' = 0                 if step t terminated (the MDP ended),
    V' = final_values[t]   if step t was truncated (the value of the true final observation),
    V' = values[t+1]       otherwise (last_value after the last step),
    delta_t = r_t + gamma * V' - values[t]
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   done_t = terminated | truncated
so the lambda-chain never crosses an episode boundary, and returns = A + values.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike


def gae(
    rewards: ArrayLike,
    values: ArrayLike,
    last_value: ArrayLike,
    terminated: ArrayLike,
    truncated: ArrayLike,
    final_values: Optional[ArrayLike],
    gamma: float,
    lam: float,
) -> Tuple[np.ndarray, np.ndarray]:
    """Advantages and returns of a time-major rollout.

    Args:
        rewards: `[T, n_envs]` rewards.
        values: `[T, n_envs]` V(obs_t).
        last_value: `[n_envs]` V of the observation after the last step.
        terminated: `[T, n_envs]` bool.
        truncated: `[T, n_envs]` bool.
        final_values: `[T, n_envs]` V(true final obs), read where truncated and not terminated;
            may be None if no step is truncated.
        gamma: discount factor.
        lam: GAE lambda.

    Returns:
        `(advantages, returns)`, float32 `[T, n_envs]`.

    >>> adv, ret = gae([[1.], [1.], [1.]], [[0.], [0.], [0.]], [10.], [[False]] * 3,
    ...                [[False], [True], [False]], [[0.], [2.], [0.]], gamma=0.5, lam=1.0)
    >>> adv[:, 0].tolist()
    [2.0, 2.0, 6.0]
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    last_value = np.asarray(last_value, dtype=np.float64)
    terminated = np.asarray(terminated, dtype=bool)
    truncated = np.asarray(truncated, dtype=bool)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be [T, n_envs], got shape {rewards.shape}")
    for name, arr in (("values", values), ("terminated", terminated), ("truncated", truncated)):
        if arr.shape != rewards.shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {rewards.shape} like rewards")
    if last_value.shape != rewards.shape[1:]:
        raise ValueError(f"last_value has shape {last_value.shape}, expected {rewards.shape[1:]}")
    bootstrap_final = truncated & ~terminated
    if final_values is None:
        if bootstrap_final.any():
            raise ValueError("final_values is required: some steps are truncated, and they bootstrap from V(final obs)")
        final_values = np.zeros_like(values)
    final_values = np.asarray(final_values, dtype=np.float64)
    if final_values.shape != rewards.shape:
        raise ValueError(f"final_values has shape {final_values.shape}, expected {rewards.shape}")

    next_values = np.concatenate([values[1:], last_value[None]], axis=0)
    next_values = np.where(bootstrap_final, final_values, next_values)
    next_values = np.where(terminated, 0.0, next_values)
    deltas = rewards + gamma * next_values - values
    carry = gamma * lam * ~(terminated | truncated)
    advantages = np.empty_like(deltas)
    running = np.zeros(rewards.shape[1:])
    for t in range(rewards.shape[0] - 1, -1, -1):  # the recursion is sequential in time, vectorized over envs
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages.astype(np.float32), (advantages + values).astype(np.float32)
