"""n-step returns, vectorized: discounted reward sums, bootstrap discounts and offsets.

A segment starts at step t and runs for up to n steps. It stops early at the first step
whose episode ended (terminated or truncated) and at the last step that exists (the newest
written step of a stream, or the end of a sequence); it never crosses either. For a segment
of k steps ending at step t + k - 1:

* return   = sum_{j<k} gamma**j * r_{t+j}
* discount = 0 if step t+k-1 terminated, else gamma**k (truncation and a segment cut by the
  end of the data still bootstrap, from the next observation of step t+k-1)
* offset   = k - 1, so the bootstrap observation is `next_obs[t + offset]`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike


def nstep_window(
    rewards: ArrayLike,
    terminated: ArrayLike,
    truncated: ArrayLike,
    gamma: float,
    horizon: Optional[ArrayLike] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-step return of windows laid out along the last axis.

    Args:
        rewards: `[..., n]` rewards r_t ... r_{t+n-1} of each window.
        terminated: `[..., n]` bool, episode terminated at that step.
        truncated: `[..., n]` bool, episode truncated at that step.
        gamma: discount factor.
        horizon: `[...]` ints in [1, n], how many steps of each window exist (later ones are
            ignored, as if the data ended there); default n.

    Returns:
        `(returns, discounts, offsets)`, each of shape `[...]`: float32, float32, int64.

    >>> r, d, o = nstep_window([[1., 2., 4.]], [[False, True, False]], [[False, False, False]], 0.5)
    >>> r.tolist(), d.tolist(), o.tolist()
    ([2.0], [0.0], [1])
    """
    rewards = np.asarray(rewards, dtype=np.float32)
    terminated = np.asarray(terminated, dtype=bool)
    truncated = np.asarray(truncated, dtype=bool)
    if rewards.ndim == 0 or rewards.shape != terminated.shape or rewards.shape != truncated.shape:
        raise ValueError(
            f"rewards, terminated and truncated must share one shape [..., n], got "
            f"{rewards.shape}, {terminated.shape}, {truncated.shape}"
        )
    n = rewards.shape[-1]
    if n < 1:
        raise ValueError("windows must hold at least one step (last axis has length 0)")
    if horizon is not None:
        horizon = np.asarray(horizon)
        if horizon.shape != rewards.shape[:-1]:
            raise ValueError(f"horizon has shape {horizon.shape}, expected {rewards.shape[:-1]}")
        if horizon.size and (horizon.min() < 1 or horizon.max() > n):
            raise ValueError(f"horizon values must lie in [1, {n}], got range [{horizon.min()}, {horizon.max()}]")
    return window_returns(rewards, terminated, truncated, discount_powers(gamma, n), horizon)


def discount_powers(gamma: float, n: int) -> np.ndarray:
    """`gamma ** [0, 1, ..., n]` as float32 (the table `window_returns` reads)."""
    return (float(gamma) ** np.arange(n + 1, dtype=np.float64)).astype(np.float32)


def window_returns(
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    powers: np.ndarray,
    horizon: Optional[np.ndarray],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`nstep_window` without argument checks (the buffer's hot path).

    Takes float32 rewards and bool dones `[..., n]`, `powers = discount_powers(gamma, n)` and
    an optional int horizon `[...]`. About fifteen whole-batch numpy calls, whatever n is.
    """
    shape, n = rewards.shape[:-1], rewards.shape[-1]
    rewards, terminated, truncated = rewards.reshape(-1, n), terminated.reshape(-1, n), truncated.reshape(-1, n)
    stop = terminated | truncated
    stop[:, -1] = True
    offsets = stop.argmax(axis=1)  # first step that ends the episode (or the window's last step)
    if horizon is not None:  # ... or the last step that exists, if that comes first
        np.minimum(offsets, horizon.reshape(-1) - 1, out=offsets)
    include = np.arange(n) <= offsets[:, None]
    returns = (rewards * include) @ powers[:n]
    # A terminated step inside the segment can only be its last one.
    ended_by_termination = terminated.reshape(-1).take(np.arange(0, stop.size, n) + offsets)
    discounts = powers[1:].take(offsets) * ~ended_by_termination
    return returns.reshape(shape), discounts.reshape(shape), offsets.astype(np.int64, copy=False).reshape(shape)


def nstep_returns(
    rewards: ArrayLike,
    terminated: ArrayLike,
    truncated: ArrayLike,
    gamma: float,
    n_step: int,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-step return from every step of time-major sequences `[T, ...]` (e.g. `[T, n_envs]`).

    Segments never cross an episode end nor the end of the sequence (the last steps get
    shorter segments that bootstrap from their final `next_obs`).

    Returns:
        `(returns, discounts, offsets)` of shape `[T, ...]`; the bootstrap observation of step t
        is `next_obs[t + offsets[t]]`.

    >>> r, d, o = nstep_returns([1., 2., 3., 4.], [False, False, True, False], [False] * 4, 0.5, 2)
    >>> r.tolist(), d.tolist(), o.tolist()
    ([2.0, 3.5, 3.0, 4.0], [0.25, 0.0, 0.0, 0.5], [1, 1, 0, 0])
    """
    if not isinstance(n_step, (int, np.integer)) or n_step < 1:
        raise ValueError(f"n_step must be a positive integer, got {n_step!r}")
    rewards = np.asarray(rewards)
    terminated = np.asarray(terminated)
    truncated = np.asarray(truncated)
    if rewards.ndim == 0 or rewards.shape != terminated.shape or rewards.shape != truncated.shape:
        raise ValueError(
            f"rewards, terminated and truncated must share one shape [T, ...], got "
            f"{rewards.shape}, {terminated.shape}, {truncated.shape}"
        )
    T = rewards.shape[0]
    t = np.arange(T)
    window = np.minimum(t[:, None] + np.arange(n_step), T - 1)  # [T, n]; steps past T-1 are cut by the horizon

    def windows(x: np.ndarray) -> np.ndarray:
        return np.moveaxis(x[window], 1, -1)  # [T, n, ...] -> [T, ..., n]

    horizon = np.minimum(n_step, T - t).reshape((T,) + (1,) * (rewards.ndim - 1))
    horizon = np.broadcast_to(horizon, rewards.shape)
    return nstep_window(windows(rewards), windows(terminated), windows(truncated), gamma, horizon)
