"""Small builders shared by the buffer tests."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

BOX1 = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
DISCRETE = gym.spaces.Discrete(3)


def add_steps(buf, rewards, terminated, truncated, actions=None):
    """Add a [T, n_envs] sequence to `buf`, encoding obs = 10 t + env and next_obs = obs + 0.5."""
    rewards = np.asarray(rewards, np.float32)
    T, n_envs = rewards.shape
    for t in range(T):
        obs = (10.0 * t + np.arange(n_envs, dtype=np.float32))[:, None]
        action = np.full(n_envs, t % 3) if actions is None else actions[t]
        buf.add(obs, action, rewards[t], obs + 0.5, terminated[t], truncated[t])


def flags(T, n_envs, *where):
    """A [T, n_envs] bool array, True at the (t, env) pairs given."""
    out = np.zeros((T, n_envs), bool)
    for t, e in where:
        out[t, e] = True
    return out
