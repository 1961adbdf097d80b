"""The space boundary, written once: what crosses between Gymnasium spaces, numpy and TF.

- Observations enter networks as float32, except uint8 images (the CNN torso scales them) and
  Discrete observations (int32: the torso one-hots them). `obs_signature` gives the
  `tf.TensorSpec`s, `to_tf_obs` casts a numpy batch, `zeros_batch` builds the dummy batch
  that creates a network's variables.
- Actions leave the policy as a batch and enter the env through `to_env_actions` (Box
  clipped to the bounds, every space cast to its dtype) or, for one env, `to_env_action`.
- `random_actions` draws uniform actions for all envs from a seeded numpy generator (no TF call).

>>> import gymnasium as gym, numpy as np
>>> space = gym.spaces.Box(-1.0, 1.0, (2,))
>>> to_env_actions(space, np.array([[3.0, -0.5]])).tolist()
[[1.0, -0.5]]
>>> obs_signature(gym.spaces.Discrete(4))
TensorSpec(shape=(None,), dtype=tf.int32, name=None)
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import gymnasium as gym
import numpy as np
import tensorflow as tf


def tf_dtype(space: gym.Space) -> tf.DType:
    """The dtype observations of `space` enter a network with: uint8 stays uint8, Discrete is int32, else float32."""
    dtype = np.dtype(space.dtype)
    if dtype == np.uint8:
        return tf.uint8
    if dtype.kind in "iub":
        return tf.int32 if isinstance(space, gym.spaces.Discrete) else tf.float32
    return tf.float32


def obs_signature(space: gym.Space, lead: Sequence[Optional[int]] = (None,)):
    """A `tf.TensorSpec` (or dict of them) for batches of observations of `space` with leading dims `lead`."""
    if isinstance(space, gym.spaces.Dict):
        return {k: obs_signature(s, lead) for k, s in space.spaces.items()}
    return tf.TensorSpec(list(lead) + list(space.shape), tf_dtype(space))


def to_tf_obs(space: gym.Space, obs):
    """Cast a numpy batch of observations (leading dims kept) to the dtypes of `obs_signature`."""
    if isinstance(space, gym.spaces.Dict):
        return {k: to_tf_obs(s, obs[k]) for k, s in space.spaces.items()}
    return np.asarray(obs, tf_dtype(space).as_numpy_dtype)


def zeros_batch(space: gym.Space, n: int = 1):
    """A batch of `n` zero observations of `space`, cast for TF (to create a network's variables)."""
    if isinstance(space, gym.spaces.Dict):
        return {k: zeros_batch(s, n) for k, s in space.spaces.items()}
    return np.zeros((n,) + tuple(space.shape), tf_dtype(space).as_numpy_dtype)


def is_single_obs(space: gym.Space, obs) -> bool:
    """Whether `obs` is one observation of `space` (not a batch with a leading dimension)."""
    if isinstance(space, gym.spaces.Dict):
        key = next(iter(space.spaces))
        return np.shape(obs[key]) == space.spaces[key].shape
    return np.shape(obs) == space.shape


def batch_of_one(obs):
    """One observation as a batch of one (leading dimension 1)."""
    if isinstance(obs, Mapping):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


def to_env_actions(space: gym.Space, actions) -> np.ndarray:
    """A batch of policy actions as a vector env takes them: Box clipped to its bounds; every space in its dtype."""
    if isinstance(space, gym.spaces.Box):
        actions = np.reshape(actions, (-1,) + space.shape)
        return np.clip(actions, space.low, space.high).astype(space.dtype, copy=False)
    return np.asarray(actions).astype(space.dtype, copy=False)


def tf_env_actions(space: gym.Space, actions: tf.Tensor) -> tf.Tensor:
    """`to_env_actions` in TF, for exported policies: Box reshaped and clipped to its (float32) bounds;
    discrete actions counted from 0 shifted by the space's `start`; every space cast to its dtype."""
    dtype = tf.as_dtype(space.dtype)
    if isinstance(space, gym.spaces.Box):
        actions = tf.reshape(actions, [-1, *space.shape])
        return tf.cast(tf.clip_by_value(actions, space.low.astype(np.float32), space.high.astype(np.float32)), dtype)
    start = np.asarray(getattr(space, "start", 0), np.int64)
    return tf.cast(tf.cast(actions, tf.int64) + start, dtype)


def to_env_action(space: gym.Space, action):
    """One policy action as `env.step` takes it (a Python int for Discrete)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(action)
    return to_env_actions(space, np.asarray(action)[None])[0]


def random_actions(space: gym.Space, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` uniform random actions of `space`, drawn from `rng` (reproducible, no TF call)."""
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=n).astype(space.dtype)
    if isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"Cannot draw uniform random actions from an unbounded Box {space}")
        return rng.uniform(low, high, size=(n,) + space.shape).astype(space.dtype)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return (space.start + rng.integers(0, space.nvec, size=(n,) + space.shape)).astype(space.dtype)
    if isinstance(space, gym.spaces.MultiBinary):
        return rng.integers(0, 2, size=(n,) + space.shape).astype(space.dtype)
    raise TypeError(f"No uniform random actions for action space {space}")
