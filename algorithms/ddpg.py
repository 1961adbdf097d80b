"""DDPG: Deep Deterministic Policy Gradient (Lillicrap et al., 2016, "Continuous control with deep
reinforcement learning", ICLR, https://arxiv.org/abs/1509.02971). An actor mu(s) and a critic Q(s, a), off-policy:

    y      = r + discount * Q'(s', mu'(s'))          (discount = gamma**n, 0 if terminated)
    L_Q    = mean (Q(s, a) - y)^2,   L_mu = -mean Q(s, mu(s))
    theta' <- (1 - tau) theta' + tau theta          (Polyak averaging of the target nets)

Exploration adds Gaussian or Ornstein-Uhlenbeck noise (`tlrl.noise`) to mu(s). TD3 (`td3.py`) is
this class with twin critics, delayed actor updates and target policy smoothing, through the
hooks `_n_critics`, `_policy_delay` and `_next_q`. As in Stable-Baselines3, the critic sees
actions rescaled to [-1, 1] and noise scales are in units of half the action range.
Bootstrapping is on truncation (the true final observation), never on termination. The networks
and losses are in `ddpg_parts.py`.

Speed: one `update` is one XLA-compiled call running `gradient_steps` gradient steps (unrolled
up to `UNROLL`, a loop above) and, in the same call, mu(s) for the envs' current observations
with the new weights, so the next `explore` needs no TF call. `scripts/bench_ddpg_update.py`
has the measurements (threads, oneDNN vs XLA, bf16, fused vs separate acting).

>>> agent = DDPG("Pendulum-v1", seed=0, learning_starts=64, batch_size=32, net_arch=[32, 32])
>>> _ = agent.learn(96)
>>> agent.act(agent.observation_space.sample(), deterministic=True).shape
(1,)
"""
from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar, Dict, List, Mapping, Optional, Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.agent import BaseAgent
from tlrl.algorithms.ddpg_parts import Actor, Critics, actor_loss, critic_loss  # noqa: F401 - public
from tlrl.compiled import compile_fixed
from tlrl.core import Extras, Metrics, Transition
from tlrl.hyperparams import require
from tlrl.modules import polyak_update
from tlrl.noise import ActionNoise, make_action_noise
from tlrl.off_policy import OffPolicyConfig, ReplayStore, gradient_steps, replay_plan
from tlrl.optim import Adam
from tlrl.spaces import obs_signature, tf_env_actions, to_env_actions, to_tf_obs, zeros_batch


@dataclasses.dataclass
class DDPGConfig(OffPolicyConfig):
    """Hyperparameters of DDPG (SB3's defaults, except the exploration noise); replay fields: `OffPolicyConfig`."""

    learning_rate: float = 1e-3
    """Adam step size of both the actor and the critic."""
    tau: float = 0.005
    """Polyak coefficient of the target networks (1 = hard copy)."""
    action_noise: Optional[str] = "normal"
    """Exploration noise: "normal" (Gaussian), "ornstein-uhlenbeck" or None (SB3's default is None)."""
    noise_sigma: float = 0.1
    """Scale of the exploration noise, in units of half the action range."""
    noise_theta: float = 0.15
    """Mean-reversion rate of Ornstein-Uhlenbeck noise."""
    noise_dt: float = 1e-2
    """Time step of Ornstein-Uhlenbeck noise."""
    net_arch: Tuple[int, ...] = (400, 300)
    """Hidden layer sizes of the actor and of the critic."""
    activation: str = "relu"
    """Hidden-layer activation of both networks."""
    jit_compile: bool = True
    """XLA-compile the update and the policy (faster on CPU for these small networks; see the benchmark)."""

    RANGES: ClassVar[Dict[str, str]] = {
        **OffPolicyConfig.RANGES, "learning_rate": "(0, inf)", "tau": "(0, 1]", "noise_sigma": "[0, inf)",
        "noise_theta": "[0, inf)", "noise_dt": "(0, inf)"}

    def validate(self) -> None:
        super().validate()
        require(self.action_noise is None or self.action_noise.lower().replace("_", "-") in
                ("normal", "ornstein-uhlenbeck", "ou"),
                f"action_noise must be 'normal', 'ornstein-uhlenbeck' or None, got {self.action_noise!r}")
        require(len(self.net_arch) > 0 and all(int(h) > 0 for h in self.net_arch),
                f"net_arch must be a non-empty list of positive layer sizes, got {self.net_arch}")


class DDPG(BaseAgent):
    """Deep Deterministic Policy Gradient (Lillicrap et al., 2016) for Box action spaces.

    Args:
        env: a Gymnasium env id, "package.module:Class", a factory, or an env instance.
        seed: seeds numpy, TF, the envs, the replay buffer and the exploration noise.
        **hyperparameters: fields of `DDPGConfig`.

    Attributes:
        actor, critic: the online networks; `actor_target`, `critic_target` their Polyak copies.
        noise: the exploration noise (`tlrl.noise.ActionNoise`) or None.
    """

    Config = DDPGConfig
    #: Compute mu(current obs) inside the update call (saves one TF call per env step; the benchmark turns it off).
    fused_acting: bool = True
    #: Gradient steps per call up to which the update is unrolled rather than looped.
    UNROLL = 2
    #: What `update` reports: averages over its gradient steps, then the global norm of the online weights after
    #: them (NaN or inf once a weight is: `tlrl.finite` stops training on it).
    METRICS = ("critic_loss", "actor_loss", "q_mean", "critic_grad_norm", "weight_norm")

    # --- what TD3 changes ---
    def _n_critics(self) -> int:
        return 1

    def _policy_delay(self) -> int:
        return 1

    def _next_q(self, next_obs) -> tf.Tensor:
        """Q'(s', mu'(s')) of the target networks; [B]."""
        return self.critic_target(next_obs, self._scale(self.actor_target(next_obs)))[0]

    # --- construction ---
    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        name = type(self).__name__
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(f"{name} needs a continuous (Box) action space, got {action_space}. "
                            f"For Discrete actions use DQN or PPO.")
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ValueError(f"{name} needs finite action bounds (its actor is tanh-squashed), got {action_space}")
        if len(action_space.shape) != 1:
            raise TypeError(f"{name} needs a flat Box action space (shape (n,)), got shape {action_space.shape}")

    def build(self) -> None:
        c, obs_space, act_space = self.config, self.observation_space, self.action_space
        self._low, self._high = act_space.low.astype(np.float32), act_space.high.astype(np.float32)
        self._center, self._half = (self._high + self._low) / 2.0, (self._high - self._low) / 2.0
        n = self._n_critics()
        self.actor = Actor(obs_space, act_space, c.net_arch, c.activation)
        self.critic = Critics(obs_space, c.net_arch, c.activation, n)
        self.actor_target = Actor(obs_space, act_space, c.net_arch, c.activation, name="actor_target")
        self.critic_target = Critics(obs_space, c.net_arch, c.activation, n, name="critic_target")
        dummy_obs, dummy_act = zeros_batch(obs_space, 1), tf.zeros([1, act_space.shape[0]])
        for actor, critic in ((self.actor, self.critic), (self.actor_target, self.critic_target)):
            actor(dummy_obs)
            critic(dummy_obs, dummy_act)
        polyak_update(self.actor_target.trainable_variables, self.actor.trainable_variables, 1.0)
        polyak_update(self.critic_target.trainable_variables, self.critic.trainable_variables, 1.0)
        self.actor_optimizer = Adam(c.learning_rate, name="actor_adam")
        self.critic_optimizer = Adam(c.learning_rate, name="critic_adam")
        self.actor_optimizer.build(self.actor.trainable_variables)
        self.critic_optimizer.build(self.critic.trainable_variables)
        self.gradient_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="gradient_updates")
        self._last_actor_loss = tf.Variable(0.0, trainable=False, name="last_actor_loss")
        ou = c.action_noise is not None and c.action_noise.lower() != "normal"
        self.noise: Optional[ActionNoise] = make_action_noise(
            c.action_noise, c.noise_sigma * self._half, act_space.shape, self.n_envs,
            seed=int(self.rng.integers(0, 2**31 - 1)), **({"theta": c.noise_theta, "dt": c.noise_dt} if ou else {}))
        self._updates: Dict[int, Callable] = {}  # k gradient steps -> the compiled update, compiled on first use
        self._policy_call: Optional[Callable] = None  # the compiled mu(obs), compiled on first use
        self._fused = None  # (obs object, mu(obs)) computed by the last update for the envs' current obs
        self.plan = replay_plan(c)
        self.store = ReplayStore(c, obs_space, act_space, self.n_envs, self.rng)  # last: the old rng order

    def _update_call(self, k: int) -> Callable:
        """The compiled update for batches [k, B, ...] (one trace per k; a call with other shapes raises)."""
        if k not in self._updates:
            lead, obs_space = [k, self.config.batch_size], self.observation_space
            self._updates[k] = compile_fixed(self._update, [
                obs_signature(obs_space, lead), tf.TensorSpec(lead + [self.action_space.shape[0]], tf.float32),
                tf.TensorSpec(lead, tf.float32), obs_signature(obs_space, lead), tf.TensorSpec(lead, tf.float32),
                obs_signature(obs_space, [self.n_envs])], jit_compile=self.config.jit_compile, autograph=True)
        return self._updates[k]

    def _policy(self, obs) -> np.ndarray:
        """mu(obs) for a batch of observations, through the compiled policy."""
        if self._policy_call is None:
            self._policy_call = compile_fixed(self.actor.__call__, [obs_signature(self.observation_space)],
                                              jit_compile=self.config.jit_compile)
        return self._policy_call(to_tf_obs(self.observation_space, obs)).numpy()

    def _scale(self, action: tf.Tensor) -> tf.Tensor:
        """Env-unit actions -> [-1, 1] (what the critics see)."""
        return (action - self._center) / self._half

    # --- the update: k gradient steps in one compiled call ---
    def _td_target(self, reward, discount, next_obs) -> tf.Tensor:
        """y = r + discount * Q'(s', .): discount is gamma**n, or 0 where the episode terminated; [B]."""
        return tf.stop_gradient(reward + discount * self._next_q(next_obs))

    def _gradient_step(self, obs, action, reward, next_obs, discount) -> Dict[str, tf.Tensor]:
        y = self._td_target(reward, discount, next_obs)
        critic_vars = self.critic.trainable_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(critic_vars)
            loss, metrics = critic_loss(self.critic(obs, self._scale(action)), y)
        metrics["critic_grad_norm"] = self.critic_optimizer.apply(tape.gradient(loss, critic_vars), critic_vars)
        n = self.gradient_updates.assign_add(1)

        def actor_step():
            actor_vars = self.actor.trainable_variables
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(actor_vars)
                a_loss, _ = actor_loss(self.critic.qs[0](obs, self._scale(self.actor(obs))))
            self.actor_optimizer.apply(tape.gradient(a_loss, actor_vars), actor_vars)
            polyak_update(self.critic_target.trainable_variables, critic_vars, self.config.tau)
            polyak_update(self.actor_target.trainable_variables, actor_vars, self.config.tau)
            return self._last_actor_loss.assign(a_loss)

        delay = self._policy_delay()
        metrics["actor_loss"] = actor_step() if delay == 1 else \
            tf.cond(n % delay == 0, actor_step, lambda: tf.identity(self._last_actor_loss))
        return metrics

    def _update(self, obs, action, reward, next_obs, discount, current_obs):
        """k gradient steps on batches [k, B, ...]; then mu(current_obs) with the new weights.

        k is static: up to `UNROLL` steps are unrolled (no XLA while loop: about 7% cheaper for k=1), more run
        in a `tf.range` loop. Returns (metrics averaged over the k steps, then the weight norm after them, as a
        vector in the order of `METRICS`; actions [n_envs, action_dim]).
        """
        k = int(reward.shape[0])
        keys = self.METRICS[:-1]
        sums = {key: tf.constant(0.0) for key in keys}
        for i in (range(k) if k <= self.UNROLL else tf.range(k)):
            at = lambda x: x[i]  # noqa: E731
            m = self._gradient_step(tf.nest.map_structure(at, obs), action[i], reward[i],
                                    tf.nest.map_structure(at, next_obs), discount[i])
            sums = {key: sums[key] + m[key] for key in keys}
        weight_norm = tf.linalg.global_norm(self.actor.trainable_variables + self.critic.trainable_variables)
        return tf.stack([sums[key] / k for key in keys] + [weight_norm]), self.actor(current_obs)

    def update(self, obs) -> Metrics:
        """`gradient_steps` gradient steps in one compiled call, which also computes mu(obs) for the next `explore`
        (on a zeros batch, unused, when `obs` is None: the envs are remote)."""
        k = gradient_steps(self.config, self.n_envs)
        b = self.store.sample_stacked(k, self.config.batch_size)  # [k, B, ...] arrays, cast for TF
        current = zeros_batch(self.observation_space, self.n_envs) if obs is None else \
            to_tf_obs(self.observation_space, obs)
        metrics, actions = self._update_call(k)(b.obs, b.action.astype(np.float32, copy=False), b.reward,
                                                b.next_obs, b.discount, current)
        self._fused = None if obs is None else (obs, actions.numpy())
        self.n_updates += 1
        return dict(zip(self.METRICS, metrics.numpy().tolist()))

    # --- acting ---
    def _env_actions(self, mu: np.ndarray) -> np.ndarray:
        return to_env_actions(self.action_space, np.clip(mu, self._low, self._high))

    def explore(self, obs) -> Tuple[np.ndarray, Extras]:
        """mu(s) + noise for all envs, clipped to the bounds; mu(s) usually comes from the last update call."""
        fused, self._fused = self._fused, None  # used once: an observation seen again goes through the policy
        mu = fused[1] if self.fused_acting and fused is not None and fused[0] is obs else self._policy(obs)
        if self.noise is not None:
            mu = mu + self.noise()
        return self._env_actions(mu), {}

    def act_batch(self, obs, deterministic: bool) -> np.ndarray:
        """mu(s); with deterministic=False plus Gaussian noise of std `noise_sigma` (unless `action_noise` is None)."""
        mu = self._policy(obs)
        if not deterministic and self.config.action_noise is not None and self.config.noise_sigma > 0:
            mu = mu + self.rng.standard_normal(mu.shape).astype(np.float32) * self.config.noise_sigma * self._half
        return self._env_actions(mu)

    def add(self, step: Transition, extras: Extras) -> None:
        super().add(step, extras)
        if self.noise is not None:  # restart the noise process of envs whose episode just ended
            ended = np.flatnonzero(np.logical_or(step.terminated, step.truncated))
            if ended.size:
                self.noise.reset(ended)

    def acting_variables(self) -> List[tf.Variable]:
        return list(self.actor.trainable_variables)

    def weights_changed(self) -> None:
        self._fused = None  # computed with the old weights

    def policy_graph(self, obs) -> tf.Tensor:
        """mu(obs) clipped to the bounds, in the action space's dtype."""
        return tf_env_actions(self.action_space, self.actor(obs))

    # --- persistence ---
    def trackables(self) -> Dict[str, tf.Module]:
        return {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
                "critic_target": self.critic_target, "actor_optimizer": self.actor_optimizer,
                "critic_optimizer": self.critic_optimizer, "gradient_updates": self.gradient_updates,
                "last_actor_loss": self._last_actor_loss}

    def numpy_state(self) -> Dict[str, np.ndarray]:
        return {} if self.noise is None else {f"noise/{k}": v for k, v in self.noise.get_state().items()}

    def set_numpy_state(self, state: Mapping[str, np.ndarray]) -> None:
        noise = {k[len("noise/"):]: v for k, v in state.items() if k.startswith("noise/")}
        if self.noise is not None and noise:
            self.noise.set_state(noise)
