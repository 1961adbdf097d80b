"""Policy heads (features -> `tfp` distribution) and value heads.

Policy heads: `CategoricalHead` (Discrete), `MultiCategoricalHead`
(MultiDiscrete), `GaussianHead` (Box, state-independent or state-dependent
log-std), `SquashedGaussianHead` (Box, tanh of a Gaussian, SAC style),
`DeterministicHead` (Box, tanh-squashed to the bounds, DDPG style).
Value heads: `ValueHead` V(s), `QHead` Q(s, .) with optional dueling form,
`ContinuousQ` Q(s, a).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tlrl.layers import Dense
from tlrl.layers import initializers as init
from tlrl.modules.torsos import as_module, mlp

tfd = tfp.distributions


class CategoricalHead(tf.Module):
    """Logits for `n` discrete actions -> `tfd.Categorical`."""

    def __init__(self, n: int, *, w_init=None, name: Optional[str] = None):
        super().__init__(name=name or "categorical_head")
        self.n = int(n)
        self.logits = Dense(self.n, w_init=w_init or init.orthogonal(0.01), name="logits")

    @tf.Module.with_name_scope
    def __call__(self, features) -> tfd.Distribution:
        return tfd.Categorical(logits=self.logits(features))


class MultiCategoricalHead(tf.Module):
    """One Categorical per dimension of a MultiDiscrete space.

    Logits are padded to the largest dimension with a very negative value, so the
    result is a single `Independent(Categorical)` over `[batch, len(nvec)]`: the flat logits
    `[B, sum(nvec)]` gathered at `gather_index` `[D, max_n]`, plus `padding_mask` (0 or -1e9).
    """

    def __init__(self, nvec: Sequence[int], *, w_init=None, name: Optional[str] = None):
        super().__init__(name=name or "multi_categorical_head")
        self.nvec = [int(n) for n in np.asarray(nvec).reshape(-1)]
        self.max_n = max(self.nvec)
        self.logits = Dense(sum(self.nvec), w_init=w_init or init.orthogonal(0.01), name="logits")
        mask = np.full([len(self.nvec), self.max_n], -1e9, np.float32)
        self.gather_index = np.zeros([len(self.nvec), self.max_n], np.int32)
        offset = 0
        for d, n in enumerate(self.nvec):
            mask[d, :n] = 0.0
            self.gather_index[d, :n] = np.arange(offset, offset + n)
            offset += n
        self.padding_mask = tf.constant(mask)

    @tf.Module.with_name_scope
    def __call__(self, features) -> tfd.Distribution:
        flat = self.logits(features)  # [B, sum(nvec)]
        logits = tf.gather(flat, self.gather_index, axis=-1) + self.padding_mask  # [B, D, max_n]
        return tfd.Independent(tfd.Categorical(logits=logits), reinterpreted_batch_ndims=1)


class GaussianHead(tf.Module):
    """Diagonal Gaussian over a Box action; log-std state-independent (a variable) or state-dependent (a layer).

    Samples are not clipped here: clip to the bounds when stepping the env.
    """

    def __init__(self, dim: int, *, state_dependent_std: bool = False, log_std_init: float = 0.0,
                 w_init=None, name: Optional[str] = None):
        super().__init__(name=name or "gaussian_head")
        self.dim = int(dim)
        self.state_dependent_std = state_dependent_std
        self.mean = Dense(self.dim, w_init=w_init or init.orthogonal(0.01), name="mean")
        if state_dependent_std:
            self.log_std_layer = Dense(self.dim, w_init=init.orthogonal(0.01), b_init=init.constant(log_std_init),
                                       name="log_std")
        else:
            with self.name_scope:
                self.log_std = tf.Variable(tf.fill([self.dim], float(log_std_init)), name="log_std")

    @tf.Module.with_name_scope
    def __call__(self, features) -> tfd.Distribution:
        loc = self.mean(features)
        if self.state_dependent_std:
            log_std = tf.clip_by_value(self.log_std_layer(features), -20.0, 2.0)
        else:
            log_std = tf.broadcast_to(self.log_std, tf.shape(loc))
        return tfd.Independent(tfd.Normal(loc, tf.exp(log_std)), reinterpreted_batch_ndims=1)


class SquashedGaussianHead(tf.Module):
    """tanh of a diagonal Gaussian with state-dependent log-std (SAC: Haarnoja et al., 2018, appendix C).

    `head(features)` gives `(mean, log_std)` of the Gaussian before the tanh, log-std clipped to
    `log_std_bounds` (SB3's [-20, 2]); `sample` and `mode` turn them into actions in [-1, 1]
    (rescale to the Box bounds outside). The noise is the caller's, so the caller's seeded generator
    decides every sample.

    >>> import tensorflow as tf
    >>> head = SquashedGaussianHead(2)
    >>> action, log_prob = head.sample(*head(tf.zeros([3, 4])), tf.zeros([3, 2]))
    >>> action.shape, log_prob.shape
    (TensorShape([3, 2]), TensorShape([3]))
    """

    def __init__(self, dim: int, *, log_std_bounds=(-20.0, 2.0), w_init=None, name: Optional[str] = None):
        super().__init__(name=name or "squashed_gaussian_head")
        self.dim, self.log_std_bounds = int(dim), (float(log_std_bounds[0]), float(log_std_bounds[1]))
        self.mean = Dense(self.dim, w_init=w_init, name="mean")
        self.log_std = Dense(self.dim, w_init=w_init, name="log_std")

    @tf.Module.with_name_scope
    def __call__(self, features) -> Tuple[tf.Tensor, tf.Tensor]:
        return self.mean(features), tf.clip_by_value(self.log_std(features), *self.log_std_bounds)

    @staticmethod
    def sample(mean: tf.Tensor, log_std: tf.Tensor, noise: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """`tanh(mean + exp(log_std) * noise)` (noise ~ N(0, I), reparameterized) and its log-density [B]:
        the Gaussian's minus sum log(1 - tanh(u)^2), written stably as 2 (log 2 - u - softplus(-2u))."""
        u = mean + tf.exp(log_std) * noise
        gaussian = -0.5 * tf.square(noise) - log_std - 0.5 * np.log(2.0 * np.pi)
        squash = 2.0 * (np.log(2.0) - u - tf.nn.softplus(-2.0 * u))
        return tf.tanh(u), tf.reduce_sum(gaussian - squash, axis=-1)

    @staticmethod
    def mode(mean: tf.Tensor) -> tf.Tensor:
        """The deterministic action `tanh(mean)`."""
        return tf.tanh(mean)


class DeterministicHead(tf.Module):
    """Deterministic action in the Box bounds (DDPG style); returns a tensor `[batch, prod(shape)]`.

    With `t = tanh(x)`, the action is `low * (1 - t) / 2 + high * (1 + t) / 2`: `t = -1` gives `low`
    and `t = 1` gives `high` exactly (the form `low + (t + 1) / 2 * (high - low)` can miss `high` by
    a rounding error), and a final clip keeps rounding from ever leaving the bounds.
    """

    def __init__(self, space: gym.spaces.Box, *, w_init=None, name: Optional[str] = None):
        super().__init__(name=name or "deterministic_head")
        _require_bounded_box(space)
        self.low = tf.constant(space.low.reshape(-1), tf.float32)
        self.high = tf.constant(space.high.reshape(-1), tf.float32)
        self.layer = Dense(int(np.prod(space.shape)), "tanh", w_init=w_init, name="action")

    @tf.Module.with_name_scope
    def __call__(self, features) -> tf.Tensor:
        t = self.layer(features)
        action = self.low * (0.5 - 0.5 * t) + self.high * (0.5 + 0.5 * t)
        return tf.clip_by_value(action, self.low, self.high)


class ValueHead(tf.Module):
    """State value V(s): features -> [batch]."""

    def __init__(self, *, w_init=None, name: Optional[str] = None):
        super().__init__(name=name or "value_head")
        self.layer = Dense(1, w_init=w_init or init.orthogonal(1.0), name="value")

    @tf.Module.with_name_scope
    def __call__(self, features) -> tf.Tensor:
        return tf.squeeze(self.layer(features), -1)


class QHead(tf.Module):
    """Q(s, .) for `n` discrete actions; `dueling=True` gives V(s) + A(s, a) - mean_a A(s, a) (Wang et al., 2016)."""

    def __init__(self, n: int, *, dueling: bool = False, w_init=None, name: Optional[str] = None):
        super().__init__(name=name or "q_head")
        self.n, self.dueling = int(n), dueling
        self.advantage = Dense(self.n, w_init=w_init, name="q" if not dueling else "advantage")
        if dueling:
            self.value = Dense(1, w_init=w_init, name="value")

    @tf.Module.with_name_scope
    def __call__(self, features) -> tf.Tensor:
        a = self.advantage(features)
        if not self.dueling:
            return a
        return self.value(features) + a - tf.reduce_mean(a, axis=-1, keepdims=True)


class ContinuousQ(tf.Module):
    """Q(s, a) for continuous actions: `net(concat(torso(s), a)) -> [batch]`.

    Args:
        hidden: sizes of the MLP after the concatenation.
        torso: optional observation torso; by default the observation is used as is (flattened).
    """

    def __init__(self, hidden: Sequence[int] = (256, 256), activation="relu", *, torso: Optional[Callable] = None,
                 name: Optional[str] = None):
        super().__init__(name=name or "continuous_q")
        self.torso = as_module(torso) if torso is not None else None
        self.net = mlp(hidden, activation, w_init=init.glorot_uniform(), name="q_mlp")
        self.out = Dense(1, name="q")

    @tf.Module.with_name_scope
    def __call__(self, obs, action) -> tf.Tensor:
        features = self.torso(obs) if self.torso is not None else tf.reshape(obs, [tf.shape(obs)[0], -1])
        x = tf.concat([tf.cast(features, tf.float32), tf.cast(action, tf.float32)], axis=-1)
        return tf.squeeze(self.out(self.net(x)), -1)


def _require_bounded_box(space) -> None:
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"This head needs a Box action space, got {space}")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(f"This head needs finite action bounds, got low={space.low}, high={space.high}")


def make_policy_head(action_space: gym.Space, **kwargs) -> tf.Module:
    """The stochastic policy head for an action space (Discrete, MultiDiscrete, Box)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(int(action_space.n))
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return MultiCategoricalHead(action_space.nvec)
    if isinstance(action_space, gym.spaces.Box):
        return GaussianHead(int(np.prod(action_space.shape)), **kwargs)
    raise TypeError(f"No policy head for action space {action_space}; supported: Discrete, MultiDiscrete, Box")
