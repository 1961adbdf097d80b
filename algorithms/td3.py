"""TD3: Twin Delayed Deep Deterministic policy gradient.

Fujimoto, van Hoof & Meger (2018), "Addressing Function Approximation Error in Actor-Critic
Methods", ICML. https://arxiv.org/abs/1802.09477

DDPG (`algorithms/ddpg.py`) with three changes, made here through DDPG's hooks:

1. Clipped double-Q learning: two critics, and the target takes the smaller of the two
   target critics, y = r + discount * min_i Q'_i(s', a~).
2. Target policy smoothing: a~ = clip(mu'(s') + clip(eps, -c, c), low, high), eps ~ N(0, sigma~),
   with sigma~ = `target_policy_noise` and c = `target_noise_clip` (in units of half the action
   range, as the [-1, 1] actions of the paper and SB3).
3. Delayed policy updates: the actor and the target nets are updated once every
   `policy_delay` critic updates.

>>> agent = TD3("Pendulum-v1", seed=0, learning_starts=64, batch_size=32, net_arch=[32, 32])
>>> _ = agent.learn(96)
>>> len(agent.critic.qs)
2
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tlrl.algorithms.ddpg import DDPG, DDPGConfig
from tlrl.hyperparams import require


@dataclasses.dataclass
class TD3Config(DDPGConfig):
    """Hyperparameters of TD3: DDPG's plus the three below (defaults: the paper's and SB3's)."""

    policy_delay: int = 2
    """Critic updates per actor (and target network) update."""
    target_policy_noise: float = 0.2
    """Std of the smoothing noise added to the target action, in units of half the action range."""
    target_noise_clip: float = 0.5
    """The smoothing noise is clipped to +-this (same units)."""
    n_critics: int = 2
    """Number of critics; the target uses their minimum."""

    RANGES: ClassVar[Dict[str, str]] = {**DDPGConfig.RANGES, "target_policy_noise": "[0, inf)",
                                        "target_noise_clip": "[0, inf)"}

    def validate(self) -> None:
        super().validate()
        require(self.policy_delay >= 1, f"policy_delay must be at least 1, got {self.policy_delay}")
        require(self.n_critics >= 1, f"n_critics must be at least 1, got {self.n_critics}")


class TD3(DDPG):
    """Twin Delayed DDPG (Fujimoto et al., 2018) for Box action spaces; same API as `DDPG`."""

    Config = TD3Config

    def _n_critics(self) -> int:
        return self.config.n_critics

    def _policy_delay(self) -> int:
        return self.config.policy_delay

    def _next_q(self, next_obs) -> tf.Tensor:
        """min_i Q'_i(s', clip(mu'(s') + clip(eps, -c, c))), in the critics' [-1, 1] action units; [B]."""
        c = self.config
        a = self._scale(self.actor_target(next_obs))  # [B, action_dim] in [-1, 1]
        eps = self.tf_rng.normal(tf.shape(a)) * c.target_policy_noise
        a = tf.clip_by_value(a + tf.clip_by_value(eps, -c.target_noise_clip, c.target_noise_clip), -1.0, 1.0)
        return tf.reduce_min(tf.stack(self.critic_target(next_obs, a), axis=0), axis=0)
