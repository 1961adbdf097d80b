"""SAC: Soft Actor-Critic (Haarnoja et al., 2018, "Soft Actor-Critic Algorithms and Applications",
https://arxiv.org/abs/1812.05905). Twin soft Q critics with Polyak targets, a tanh-squashed Gaussian
policy and a learned entropy temperature alpha, off-policy, for Box actions:

    a~, logp  = tanh(mu(s) + sigma(s) eps), log pi(a~|s)          (eps ~ N(0, I), reparameterized)
    y         = r + discount * (min_i Q'_i(s', a'~) - alpha logp')  (discount = gamma, 0 if terminated)
    L_Q       = 0.5 sum_i mean (Q_i(s, a) - y)^2,   L_pi = mean (alpha logp - min_i Q_i(s, a~))
    L_alpha   = -mean log(alpha) (logp + target_entropy)            (ent_coef "auto"; target "auto": -dim A)

As Stable-Baselines3 (names, defaults, order): each gradient step uses one sample of pi(s) and alpha as
it was before the step for the critic, actor and alpha updates, in that order; the target critics follow
every `target_update_interval` gradient steps (counted over the whole run). The policy acts in [-1, 1],
rescaled to the Box bounds; the critics see actions in [-1, 1]. Built from public parts only: DDPG's
`Actor` (with `tlrl.modules.SquashedGaussianHead`) and `Critics`, `tlrl.off_policy`, `tlrl.optim.Adam`,
`tlrl.modules.polyak_update`, `tlrl.schedules`, `tlrl.compiled.compile_fixed`, `tlrl.spaces`.

Speed (as DDPG): one `update` is one XLA call running its k gradient steps and, with the new weights, the
Gaussian of pi(current obs), so `explore` samples in numpy with no TF call.

>>> agent = SAC("Pendulum-v1", seed=0, learning_starts=64, batch_size=32, net_arch=[32, 32])
>>> _ = agent.learn(96)
>>> agent.act(agent.observation_space.sample(), deterministic=True).shape
(1,)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar, Dict, List, Optional, Tuple, Union

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.agent import BaseAgent
from tlrl.algorithms.ddpg import DDPG
from tlrl.algorithms.ddpg_parts import Actor, Critics
from tlrl.compiled import compile_fixed
from tlrl.core import Extras, Metrics
from tlrl.hyperparams import auto_start, require
from tlrl.modules import SquashedGaussianHead, polyak_update
from tlrl.off_policy import OffPolicyConfig, ReplayStore, gradient_steps, replay_plan
from tlrl.optim import Adam
from tlrl.schedules import make_schedule
from tlrl.spaces import obs_signature, tf_env_actions, to_env_actions, to_tf_obs, zeros_batch


@dataclasses.dataclass
class SACConfig(OffPolicyConfig):
    """Hyperparameters of SAC (SB3's names and defaults); replay fields: `OffPolicyConfig`."""

    learning_rate: Union[float, str, Callable[[float], float]] = 3e-4
    """Adam step size of the actor, the critics and alpha: a number, 'lin_<start>' or a callable of progress."""
    tau: float = 0.005
    """Polyak coefficient of the target critics (1 = hard copy)."""
    ent_coef: Union[str, float] = "auto"
    """Entropy temperature alpha: a number (fixed), 'auto' (learned, from 1) or 'auto_<start>' (e.g. 'auto_0.1')."""
    target_update_interval: int = 1
    """Gradient steps between target critic updates."""
    target_entropy: Union[str, float] = "auto"
    """Entropy alpha is tuned toward: a number or 'auto' (-dim of the action space)."""
    net_arch: Tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and of each critic."""
    activation: str = "relu"
    """Hidden-layer activation of the networks."""
    jit_compile: bool = True
    """XLA-compile the update (acting is a plain graph: cheaper to call)."""

    RANGES: ClassVar[Dict[str, str]] = {**OffPolicyConfig.RANGES, "learning_rate": "(0, inf)", "tau": "(0, 1]",
                                        "ent_coef": "[0, inf)", "target_entropy": "(-inf, inf)"}
    #: Fields that take SB3's "auto" (`tlrl.hyperparams.auto_start`).
    AUTO: ClassVar[Tuple[str, ...]] = ("ent_coef", "target_entropy")

    def validate(self) -> None:
        super().validate()
        require(self.target_update_interval >= 1,
                f"target_update_interval must be at least 1 (gradient steps), got {self.target_update_interval}")
        require(not isinstance(self.ent_coef, str) or auto_start(self.ent_coef, "ent_coef") != 0.0,
                f"ent_coef 'auto_<start>' needs a start above 0 (alpha is learned as log alpha), got {self.ent_coef!r}")
        require(not isinstance(self.target_entropy, str) or self.target_entropy == "auto",
                f"target_entropy must be a number or 'auto' (-dim of the action space), got {self.target_entropy!r}")
        require(len(self.net_arch) > 0 and all(int(h) > 0 for h in self.net_arch),
                f"net_arch must be a non-empty list of positive layer sizes, got {self.net_arch}")


class SAC(BaseAgent):
    """Soft Actor-Critic (Haarnoja et al., 2018) for Box action spaces.

    Args:
        env: a Gymnasium env id, "package.module:Class", a factory, or an env instance.
        seed: seeds numpy (exploration, replay), TF (the update's samples) and the envs.
        **hyperparameters: fields of `SACConfig`.

    Attributes:
        actor: features -> MLP -> (mean, log_std) of the Gaussian before the tanh.
        critic, critic_target: the twin critics and their Polyak copies.
        log_alpha: the log entropy temperature (fixed for a numeric `ent_coef`); `target_entropy` its target.
    """

    Config = SACConfig
    #: What `update` reports: averages over its gradient steps, then the norm of the online weights after them.
    METRICS = ("critic_loss", "actor_loss", "ent_coef", "ent_coef_loss", "entropy", "q_mean", "weight_norm")
    #: Gradient steps per call up to which the update is unrolled rather than looped.
    UNROLL = 2

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        DDPG.check_spaces(self, observation_space, action_space)  # a flat Box with finite bounds; the same words

    def build(self) -> None:
        c, obs_space, act_space = self.config, self.observation_space, self.action_space
        dim = int(act_space.shape[0])
        low, high = act_space.low.astype(np.float32), act_space.high.astype(np.float32)
        self.center, self.half = (high + low) / 2.0, (high - low) / 2.0  # [-1, 1] <-> the Box bounds
        self.actor = Actor(obs_space, act_space, c.net_arch, c.activation, head=SquashedGaussianHead(dim))
        self.critic = Critics(obs_space, c.net_arch, c.activation, 2)
        self.critic_target = Critics(obs_space, c.net_arch, c.activation, 2, name="critic_target")
        dummy_obs, dummy_act = zeros_batch(obs_space, 1), tf.zeros([1, dim])
        self.actor(dummy_obs), self.critic(dummy_obs, dummy_act), self.critic_target(dummy_obs, dummy_act)
        polyak_update(self.critic_target.trainable_variables, self.critic.trainable_variables, 1.0)
        self.auto_alpha = isinstance(c.ent_coef, str)
        alpha = (auto_start(c.ent_coef, "ent_coef") or 1.0) if self.auto_alpha else float(c.ent_coef)
        self.log_alpha = tf.Variable(math.log(alpha) if alpha > 0 else -np.inf, dtype=tf.float32, name="log_alpha")
        self.target_entropy = -float(dim) if c.target_entropy == "auto" else float(c.target_entropy)
        self.lr_schedule = make_schedule(c.learning_rate, "learning_rate")
        lr = self.lr_schedule(0.0)
        self.optimizers = {name: Adam(lr, name=f"{name}_adam") for name in ("critic", "actor", "alpha")}
        for name, variables in (("critic", self.critic.trainable_variables),
                                ("actor", self.actor.trainable_variables), ("alpha", [self.log_alpha])):
            self.optimizers[name].build(variables)
        self.gradient_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="gradient_updates")
        self._update_call: Optional[Callable] = None  # compiled by the first update: actors never trace it
        self._policy_call = compile_fixed(self.actor.__call__, [obs_signature(obs_space)])  # no XLA: 0.2 vs 1.8 ms
        self._fused = None  # (obs object, (mean, log_std) of pi(obs)) from the last update, for the next explore
        self.plan = replay_plan(c)
        self.store = ReplayStore(c, obs_space, act_space, self.n_envs, self.rng)  # last: the rng order

    # --- the update: k gradient steps in one compiled call ---
    def _gradient_step(self, obs, action, reward, next_obs, discount) -> Dict[str, tf.Tensor]:
        c, opt = self.config, self.optimizers
        alpha = tf.exp(self.log_alpha)  # before this step's alpha update, for all three losses (SB3)
        noise, next_noise = self.tf_rng.normal(tf.shape(action)), self.tf_rng.normal(tf.shape(action))
        next_action, next_logp = SquashedGaussianHead.sample(*self.actor(next_obs), next_noise)
        next_q = tf.reduce_min(tf.stack(self.critic_target(next_obs, next_action)), axis=0)
        y = tf.stop_gradient(reward + discount * (next_q - alpha * next_logp))
        critic_vars, actor_vars = self.critic.trainable_variables, self.actor.trainable_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(critic_vars)
            qs = self.critic(obs, (action - self.center) / self.half)
            critic_loss = 0.5 * tf.add_n([tf.reduce_mean(tf.square(q - y)) for q in qs])
        opt["critic"].apply(tape.gradient(critic_loss, critic_vars), critic_vars)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(actor_vars)
            pi_action, logp = SquashedGaussianHead.sample(*self.actor(obs), noise)
            min_q = tf.reduce_min(tf.stack(self.critic(obs, pi_action)), axis=0)
            actor_loss = tf.reduce_mean(alpha * logp - min_q)
        opt["actor"].apply(tape.gradient(actor_loss, actor_vars), actor_vars)
        logp, alpha_loss = tf.stop_gradient(logp), tf.constant(0.0)
        if self.auto_alpha:  # L_alpha and its gradient in log alpha, -mean(logp + target), applied by Adam
            alpha_loss = -self.log_alpha * tf.reduce_mean(logp + self.target_entropy)
            opt["alpha"].apply([-tf.reduce_mean(logp + self.target_entropy)], [self.log_alpha])
        n, every = self.gradient_updates.assign_add(1), c.target_update_interval
        polyak_update(self.critic_target.trainable_variables, critic_vars,
                      c.tau if every == 1 else tf.where((n - 1) % every == 0, c.tau, 0.0))
        return {"critic_loss": critic_loss, "actor_loss": actor_loss, "ent_coef": alpha, "ent_coef_loss": alpha_loss,
                "entropy": -tf.reduce_mean(logp), "q_mean": tf.reduce_mean(qs[0])}

    def _update(self, obs, action, reward, next_obs, discount, current_obs, learning_rate):
        """k gradient steps on batches [k, B, ...] (k static: unrolled up to `UNROLL`, a loop above); returns the
        metrics (averages, then the weight norm, in `METRICS` order) and pi's (mean, log_std) for current_obs."""
        for optimizer in self.optimizers.values():
            optimizer.learning_rate.assign(learning_rate)
        k, keys = int(reward.shape[0]), self.METRICS[:-1]
        sums = {key: tf.constant(0.0) for key in keys}
        for i in (range(k) if k <= self.UNROLL else tf.range(k)):
            at = lambda x: x[i]  # noqa: E731
            m = self._gradient_step(tf.nest.map_structure(at, obs), action[i], reward[i],
                                    tf.nest.map_structure(at, next_obs), discount[i])
            sums = {key: sums[key] + m[key] for key in keys}
        weight_norm = tf.linalg.global_norm(self.actor.trainable_variables + self.critic.trainable_variables)
        return tf.stack([sums[key] / k for key in keys] + [weight_norm]), self.actor(current_obs)

    def update(self, obs) -> Metrics:
        """`gradient_steps` gradient steps in one compiled call, which also computes pi(obs) for the next `explore`
        (on a zeros batch, unused, when `obs` is None: the envs are remote)."""
        c, space = self.config, self.observation_space
        k, lr = gradient_steps(c, self.n_envs), float(self.lr_schedule(self.progress))
        if self._update_call is None:
            lead = [k, c.batch_size]
            self._update_call = compile_fixed(self._update, [
                obs_signature(space, lead), tf.TensorSpec(lead + [self.action_space.shape[0]], tf.float32),
                tf.TensorSpec(lead, tf.float32), obs_signature(space, lead), tf.TensorSpec(lead, tf.float32),
                obs_signature(space, [self.n_envs]), tf.TensorSpec([], tf.float32)],
                jit_compile=c.jit_compile, autograph=True)
        b = self.store.sample_stacked(k, c.batch_size)  # [k, B, ...] arrays, cast for TF
        current = zeros_batch(space, self.n_envs) if obs is None else to_tf_obs(space, obs)
        metrics, (mean, log_std) = self._update_call(b.obs, b.action.astype(np.float32, copy=False), b.reward,
                                                     b.next_obs, b.discount, current, np.float32(lr))
        self._fused = None if obs is None else (obs, (mean.numpy(), log_std.numpy()))
        self.n_updates += 1
        return dict(zip(self.METRICS, metrics.numpy().tolist()), learning_rate=lr)

    # --- acting ---
    def _actions(self, mean: np.ndarray, log_std: np.ndarray, deterministic: bool) -> np.ndarray:
        """tanh(mean) or tanh(mean + std * noise) (noise from the agent's seeded `rng`), in the env's units."""
        u = mean if deterministic else mean + np.exp(log_std) * self.rng.standard_normal(mean.shape, np.float32)
        return to_env_actions(self.action_space, self.center + self.half * np.tanh(u))

    def _gaussian(self, obs) -> Tuple[np.ndarray, np.ndarray]:
        mean, log_std = self._policy_call(to_tf_obs(self.observation_space, obs))
        return mean.numpy(), log_std.numpy()

    def explore(self, obs) -> Tuple[np.ndarray, Extras]:
        """A sample of pi(.|s) for all envs; its Gaussian usually comes from the last update call."""
        fused, self._fused = self._fused, None  # used once: an observation seen again goes through the policy
        return self._actions(*(fused[1] if fused is not None and fused[0] is obs else self._gaussian(obs)),
                             deterministic=False), {}

    def act_batch(self, obs, deterministic: bool) -> np.ndarray:
        """tanh(mean) with deterministic=True, else a sample of the policy."""
        return self._actions(*self._gaussian(obs), deterministic=deterministic)

    def acting_variables(self) -> List[tf.Variable]:
        return list(self.actor.trainable_variables)

    def weights_changed(self) -> None:
        self._fused = None  # computed with the old weights

    def policy_graph(self, obs) -> tf.Tensor:
        """tanh(mean) rescaled to the bounds, in the action space's dtype."""
        mean, _ = self.actor(obs)
        return tf_env_actions(self.action_space, self.center + self.half * SquashedGaussianHead.mode(mean))

    def trackables(self) -> Dict[str, tf.Module]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "log_alpha": self.log_alpha, "gradient_updates": self.gradient_updates,
                **{f"{name}_optimizer": opt for name, opt in self.optimizers.items()}}
