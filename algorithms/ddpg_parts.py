"""The networks and losses of DDPG and TD3 (`algorithms/ddpg.py`, `algorithms/td3.py`): pure parts, no agent.

- `Actor`: mu(s), features -> MLP -> tanh scaled to the Box bounds (`tlrl.modules.DeterministicHead`), or
  another head (SAC: `tlrl.modules.SquashedGaussianHead`).
- `Critics`: `n` independent Q_i(s, a), with `a` rescaled to [-1, 1] (TD3 uses two).
- `critic_loss`, `actor_loss`: the mean squared TD error and the deterministic policy gradient objective.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import gymnasium as gym
import tensorflow as tf

from tlrl.layers import Sequential
from tlrl.layers import initializers as init
from tlrl.modules import ContinuousQ, DeterministicHead, make_torso, mlp
from tlrl.modules.torsos import is_image_space


def _features(space: gym.Space):
    """Observation -> flat features before the hidden layers: flatten (Box), CNN (images), per-key (Dict)."""
    return None if isinstance(space, gym.spaces.Box) and not is_image_space(space) else make_torso(space, hidden=())


class Actor(tf.Module):
    """mu(s): features -> MLP(net_arch) -> tanh scaled to the action bounds. Returns [B, action_dim]
    (with another `head`, what that head returns)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.spaces.Box, net_arch: Sequence[int],
                 activation: str, name: str = "actor", head: Optional[tf.Module] = None):
        super().__init__(name=name)
        features, body = _features(observation_space), mlp(net_arch, activation, w_init=init.glorot_uniform())
        self.torso = body if features is None else Sequential([features, body])
        self.head = DeterministicHead(action_space) if head is None else head

    def __call__(self, obs) -> tf.Tensor:
        return self.head(self.torso(obs))


class Critics(tf.Module):
    """`n` independent critics Q_i(s, a); `a` is the action rescaled to [-1, 1]. Returns a list of [B]."""

    def __init__(self, observation_space: gym.Space, net_arch: Sequence[int], activation: str, n: int,
                 name: str = "critics"):
        super().__init__(name=name)
        self.qs = [ContinuousQ(net_arch, activation, torso=_features(observation_space), name=f"q{i}")
                   for i in range(n)]

    def __call__(self, obs, action) -> List[tf.Tensor]:
        return [q(obs, action) for q in self.qs]


def critic_loss(q_values: Sequence[tf.Tensor], target: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Sum over critics of the mean squared TD error to the (fixed) target y. Shapes: [B] each."""
    loss = tf.add_n([tf.reduce_mean(tf.square(q - target)) for q in q_values])
    return loss, {"critic_loss": loss, "q_mean": tf.reduce_mean(q_values[0])}


def actor_loss(q_of_mu: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Deterministic policy gradient objective: maximize Q(s, mu(s)), i.e. minimize its negative mean."""
    loss = -tf.reduce_mean(q_of_mu)
    return loss, {"actor_loss": loss}
