"""DDPG: Deep Deterministic Policy Gradient.

Lillicrap, Hunt, Pritzel, Heess, Erez, Tassa, Silver & Wierstra (2016), "Continuous control
with deep reinforcement learning", ICLR. https://arxiv.org/abs/1509.02971

A deterministic actor mu(s) and a critic Q(s, a) learned off-policy from a replay buffer:

    y      = r + discount * Q'(s', mu'(s'))          (discount = gamma**n, 0 if terminated)
    L_Q    = mean (Q(s, a) - y)^2
    L_mu   = -mean Q(s, mu(s))
    theta' <- (1 - tau) theta' + tau theta          (Polyak averaging of the target nets)

Exploration adds Gaussian or Ornstein-Uhlenbeck noise (`tlrl.noise`) to mu(s). TD3
(`algorithms/td3.py`) is this file with twin critics, delayed actor updates and target
policy smoothing switched on through the hooks `_n_critics`, `_policy_delay` and `_next_q`.

Conventions (as Stable-Baselines3): the critic sees actions rescaled to [-1, 1]; noise
scales (`noise_sigma`, TD3's `target_policy_noise`) are in units of half the action range,
i.e. in that [-1, 1] space. Bootstrapping is on truncation (from the true final
observation), never on termination: the replay buffer's `discount` carries that.

Speed. One update is one XLA-compiled call that runs `gradient_steps` gradient steps (critic,
actor, Polyak; unrolled up to `UNROLL` steps, a loop above) and, in the same call, the actor's
action for the envs' current observations with the new weights, so the next env step needs no
TF call of its own. With [400, 300] nets and batch 256 the update is about 7 ms of CPU, most of
it the ten 256x400x300 matrix products (~0.5 ms each on one core): XLA runs it on one core, and
on a busy machine `tf.config.threading.set_{intra,inter}_op_parallelism_threads(1)` saves about
10% more CPU. `scripts/bench_ddpg_update.py` has the measurements (threads, oneDNN vs XLA, bf16).

>>> agent = DDPG("Pendulum-v1", seed=0, learning_starts=64, batch_size=32, net_arch=[32, 32])
>>> _ = agent.learn(96)
>>> agent.act(agent.observation_space.sample(), deterministic=True).shape
(1,)
"""
from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.hyperparams import require
from tlrl.layers import Sequential
from tlrl.layers import initializers as init
from tlrl.modules import ContinuousQ, DeterministicHead, make_torso, mlp
from tlrl.modules.torsos import is_image_space
from tlrl.noise import ActionNoise, make_action_noise
from tlrl.off_policy import OffPolicyAgent, OffPolicyConfig, obs_signature, to_tf_obs
from tlrl.optim import Adam


# ----- configuration ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class DDPGConfig(OffPolicyConfig):
    """Hyperparameters of DDPG (defaults: Stable-Baselines3's, except the exploration noise)."""

    learning_rate: float = 1e-3
    """Adam step size of both the actor and the critic."""
    buffer_size: int = 1_000_000
    """Capacity of the replay buffer, in transitions."""
    learning_starts: int = 100
    """Env steps of uniform random actions before the first update."""
    batch_size: int = 256
    """Transitions per gradient step."""
    tau: float = 0.005
    """Polyak coefficient of the target networks (1 = hard copy)."""
    gamma: float = 0.99
    """Discount factor."""
    train_freq: int = 1
    """Update every `train_freq` vector steps."""
    gradient_steps: int = 1
    """Gradient steps per update (-1: as many as env transitions collected since the last update)."""
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


# ----- networks ------------------------------------------------------------------------------------------------------
def _features(space: gym.Space):
    """Observation -> flat features before the hidden layers: flatten (Box), CNN (images), per-key (Dict)."""
    if isinstance(space, gym.spaces.Box) and not is_image_space(space):
        return None
    return make_torso(space, hidden=())


class Actor(tf.Module):
    """mu(s): features -> MLP(net_arch) -> tanh scaled to the action bounds. Returns [B, action_dim]."""

    def __init__(self, observation_space: gym.Space, action_space: gym.spaces.Box, net_arch: Sequence[int],
                 activation: str, name: str = "actor"):
        super().__init__(name=name)
        features = _features(observation_space)
        body = mlp(net_arch, activation, w_init=init.glorot_uniform())
        self.torso = body if features is None else Sequential([features, body])
        self.head = DeterministicHead(action_space)

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


# ----- losses (pure) -------------------------------------------------------------------------------------------------
def critic_loss(q_values: Sequence[tf.Tensor], target: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Sum over critics of the mean squared TD error to the (fixed) target y. Shapes: [B] each."""
    loss = tf.add_n([tf.reduce_mean(tf.square(q - target)) for q in q_values])
    return loss, {"critic_loss": loss, "q_mean": tf.reduce_mean(q_values[0])}


def actor_loss(q_of_mu: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Deterministic policy gradient objective: maximize Q(s, mu(s)), i.e. minimize its negative mean."""
    loss = -tf.reduce_mean(q_of_mu)
    return loss, {"actor_loss": loss}


def polyak_update(targets: Sequence[tf.Variable], sources: Sequence[tf.Variable], tau: float) -> None:
    """theta' <- (1 - tau) theta' + tau theta, for each pair of variables."""
    for t, s in zip(targets, sources):
        t.assign(t + tau * (s - t))


# ----- agent ---------------------------------------------------------------------------------------------------------
class DDPG(OffPolicyAgent):
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
    #: What `_train` reports: averages over its gradient steps, then the global norm of the online weights after them
    #: (NaN or inf once a weight is: `tlrl.finite` stops training on it).
    METRICS = ("critic_loss", "actor_loss", "q_mean", "critic_grad_norm", "weight_norm")

    # --- what TD3 changes ---
    def _n_critics(self) -> int:
        return 1

    def _policy_delay(self) -> int:
        return 1

    def _next_q(self, next_obs) -> tf.Tensor:
        """Q'(s', mu'(s')) of the target networks; [B]."""
        next_action = self._scale(self.actor_target(next_obs))
        return self.critic_target(next_obs, next_action)[0]

    # --- construction ---
    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        name = type(self).__name__
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(
                f"{name} needs a continuous (Box) action space, got {action_space}. "
                f"For Discrete actions use DQN or PPO."
            )
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ValueError(f"{name} needs finite action bounds (its actor is tanh-squashed), got {action_space}")
        if len(action_space.shape) != 1:
            raise TypeError(f"{name} needs a flat Box action space (shape (n,)), got shape {action_space.shape}")

    def _build(self) -> None:
        c, obs_space, act_space = self.config, self.observation_space, self.action_space
        self._low = act_space.low.astype(np.float32)
        self._high = act_space.high.astype(np.float32)
        self._center = (self._high + self._low) / 2.0
        self._half = (self._high - self._low) / 2.0
        n = self._n_critics()
        self.actor = Actor(obs_space, act_space, c.net_arch, c.activation)
        self.critic = Critics(obs_space, c.net_arch, c.activation, n)
        self.actor_target = Actor(obs_space, act_space, c.net_arch, c.activation, name="actor_target")
        self.critic_target = Critics(obs_space, c.net_arch, c.activation, n, name="critic_target")
        dummy_obs = tf.nest.map_structure(lambda s: tf.zeros([1] + s.shape[1:], s.dtype), obs_signature(obs_space))
        dummy_act = tf.zeros([1, act_space.shape[0]])
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
        self._compile()
        self._cached = None  # (obs object, actor action) computed by the last update for the envs' current obs

    def _compile(self) -> None:
        """Compile the update and the policy with fixed shapes: one trace each in steady state."""
        self._update_fn = tf.function(self._update, jit_compile=self.config.jit_compile)
        self._policy_fn = tf.function(self.actor.__call__, input_signature=[obs_signature(self.observation_space)],
                                      jit_compile=self.config.jit_compile)
        self._update_calls: Dict[int, Callable] = {}  # k -> concrete update function, traced on first use
        self._policy_call = None

    def _update_concrete(self, *args):
        """Call the concrete update for k = len(reward) gradient steps (tf.function's per-call matching skipped)."""
        k = int(args[2].shape[0])
        if k not in self._update_calls:
            obs_space, act_dim = self.observation_space, self.action_space.shape[0]
            lead = [k, self.config.batch_size]
            self._update_calls[k] = self._update_fn.get_concrete_function(
                obs_signature(obs_space, lead), tf.TensorSpec(lead + [act_dim], tf.float32),
                tf.TensorSpec(lead, tf.float32), obs_signature(obs_space, lead), tf.TensorSpec(lead, tf.float32),
                obs_signature(obs_space, [self.n_envs]))
        return self._update_calls[k](*args)

    def _policy(self, obs) -> np.ndarray:
        """mu(obs) for a batch of observations, through the policy's concrete function."""
        if self._policy_call is None:
            self._policy_call = self._policy_fn.get_concrete_function()
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

    def _train(self, gradient_steps: int) -> Dict[str, float]:
        b = self.sample_stacked(gradient_steps)  # [k, B, ...] arrays, cast for TF
        metrics, actions = self._update_concrete(b.obs, b.action.astype(np.float32, copy=False), b.reward, b.next_obs,
                                                 b.discount, to_tf_obs(self.observation_space, self._obs))
        self._cached = (self._obs, actions.numpy())
        return dict(zip(self.METRICS, metrics.numpy().tolist()))

    # --- acting ---
    def _explore_actions(self, obs_batch) -> np.ndarray:
        """mu(s) + noise for all envs, clipped to the bounds; mu(s) usually comes from the last update call."""
        if self.fused_acting and self._cached is not None and self._cached[0] is obs_batch:
            mu = self._cached[1]
        else:
            mu = self._policy(obs_batch)
        self._cached = None
        if self.noise is not None:
            mu = mu + self.noise()
        return np.clip(mu, self._low, self._high)

    def _act_batch(self, obs, deterministic: bool) -> np.ndarray:
        """mu(s); with deterministic=False plus Gaussian noise of std `noise_sigma` (unless `action_noise` is None)."""
        mu = self._policy(obs)
        if not deterministic and self.config.action_noise is not None and self.config.noise_sigma > 0:
            mu = mu + self.rng.standard_normal(mu.shape).astype(np.float32) * self.config.noise_sigma * self._half
        return np.clip(mu, self._low, self._high)

    def _on_step(self) -> None:
        if self.noise is not None:  # restart the noise process of envs whose episode just ended
            ended = np.flatnonzero(self.episode_tracker.lengths == 0)
            if ended.size:
                self.noise.reset(ended)

    # --- persistence ---
    def _trackables(self) -> Dict[str, tf.Module]:
        return {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
                "critic_target": self.critic_target, "actor_optimizer": self.actor_optimizer,
                "critic_optimizer": self.critic_optimizer, "gradient_updates": self.gradient_updates,
                "last_actor_loss": self._last_actor_loss}

    def _numpy_state(self) -> Dict[str, np.ndarray]:
        state = dict(super()._numpy_state())
        if self.noise is not None:
            state.update({f"noise/{k}": v for k, v in self.noise.get_state().items()})
        return state

    def _set_numpy_state(self, state: Mapping[str, np.ndarray]) -> None:
        super()._set_numpy_state(state)
        if self.noise is not None:
            noise = {k[len("noise/"):]: v for k, v in state.items() if k.startswith("noise/")}
            if noise:
                self.noise.set_state(noise)
        self._cached = None
