"""DQN: deep Q-learning from replay (Mnih et al., 2015, Nature 518) with its usual extensions, each a switch:

- `double_q`: the online net picks a*, the target net values it (van Hasselt et al., 2016); `dueling`:
  Q = V(s) + A(s, a) - mean_a A(s, a) (Wang et al., 2016).
- `prioritized`: proportional prioritized replay (Schaul et al., 2016), beta annealed from `beta` to 1;
  `n_step`: n-step returns (the buffer sums rewards; `discount` = gamma**k, 0 after termination).
- `tau`: 1 = hard target copies every `target_update_interval` env steps; < 1 = Polyak averaging then.

Loss: Huber (smooth L1, as SB3) or MSE on the TD error, gradients clipped by global norm `max_grad_norm`.
Epsilon decays linearly from `exploration_initial_eps` to `exploration_final_eps` over `exploration_fraction`.
Speed: the `gradient_steps` updates of one phase run as ONE compiled call over `[k, batch]`-stacked batches;
between phases acting uses a numpy copy of the Q network (`tlrl.numpy_policy`; CNN torsos act in TF).

Target updates (SB3 semantics, so zoo hyperparameters transfer). `target_update_interval` counts env
steps: an update is due every `max(target_update_interval // n_envs, 1)` vector steps. The online weights
only change in a phase, so the m updates due during the `train_freq` vector steps before it are applied at
once, before its first gradient step, with coefficient 1 - (1 - tau)**m (`target_mix`): exactly SB3's
step-by-step updates. The target then stays fixed for the phase (spreading the updates over its gradient
steps made Q diverge with the zoo CartPole settings; there `tau=0.05` + `dueling=True` made the final greedy
policy more reliable: `scripts/benchmarks/dqn_cartpole.py`).

>>> from tlrl.algorithms import DQN
>>> agent = DQN("CartPole-v1", seed=0, buffer_size=1000, net_arch=(32, 32))
>>> _ = agent.learn(64)  # random actions until learning_starts (100), then epsilon-greedy updates
>>> agent.num_timesteps, len(agent.store.replay)
(64, 64)
>>> int(agent.act(agent.collector.obs[0], deterministic=True)) in (0, 1)
True
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple, Union

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.agent import BaseAgent
from tlrl.compiled import compile_fixed
from tlrl.hyperparams import require
from tlrl.modules import QHead, make_torso
from tlrl.numpy_policy import numpy_q_function
from tlrl.off_policy import OffPolicyConfig, ReplayStore, gradient_steps, replay_plan
from tlrl.optim import Adam
from tlrl.schedules import linear_then_constant, make_schedule
from tlrl.spaces import obs_signature, tf_env_actions, to_tf_obs, zeros_batch


@dataclasses.dataclass
class DQNConfig(OffPolicyConfig):
    """DQN hyperparameters (SB3 names and defaults unless stated; the replay fields as in `OffPolicyConfig`)."""

    learning_rate: Union[float, str, Callable[[float], float]] = 1e-4
    """Adam step size: a number, 'lin_<start>' (linear to 0) or a callable of progress (0 -> 1)."""
    batch_size: int = 32
    """Transitions per gradient step."""
    train_freq: int = 4
    """Update every `train_freq` vector steps."""
    tau: float = 1.0
    """Target update coefficient: 1 = hard copy, < 1 = Polyak averaging."""
    target_update_interval: int = 10_000
    """Env steps between target updates (see the module docstring for how they map to gradient steps)."""
    exploration_fraction: float = 0.1
    """Fraction of `learn`'s steps over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = 0.05
    """Epsilon after `exploration_fraction` of training."""
    max_grad_norm: Optional[float] = 10.0
    """Clip gradients to this global norm (None: no clipping)."""
    net_arch: Tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the MLP torso (flat observations)."""
    activation: str = "relu"
    """Activation of the MLP torso."""
    double_q: bool = False
    """Use the Double DQN target (van Hasselt et al., 2016)."""
    dueling: bool = False
    """Use a dueling Q head (Wang et al., 2016)."""
    prioritized: bool = False
    """Use proportional prioritized replay (Schaul et al., 2016)."""
    alpha: float = 0.6
    """Prioritized replay: priority exponent."""
    beta: float = 0.4
    """Prioritized replay: initial importance-weight exponent (annealed to 1)."""
    prioritized_eps: float = 1e-6
    """Prioritized replay: added to |TD error| so no priority is 0."""
    n_step: int = 1
    """Steps of the bootstrapped return."""
    loss: str = "huber"
    """TD loss: 'huber' (smooth L1, SB3) or 'mse'."""
    jit_compile: bool = True
    """Compile the fused update with XLA (~30% faster per gradient step on CPU, zoo CartPole net; ~1-2 s compile)."""

    RANGES: ClassVar[Dict[str, str]] = {
        **OffPolicyConfig.RANGES, "learning_rate": "(0, inf)", "tau": "(0, 1]", "exploration_fraction": "(0, 1]",
        "exploration_initial_eps": "[0, 1]", "exploration_final_eps": "[0, 1]", "max_grad_norm": "(0, inf)",
        "alpha": "[0, inf)", "beta": "[0, 1]", "prioritized_eps": "(0, inf)"}

    def validate(self) -> None:
        super().validate()
        require(self.target_update_interval > 0, f"target_update_interval must be positive, got {self.target_update_interval}")
        require(self.n_step >= 1, f"n_step must be >= 1, got {self.n_step}")
        require(self.loss in ("huber", "mse"), f"loss must be 'huber' or 'mse', got {self.loss!r}")
        require(all(h > 0 for h in self.net_arch), f"net_arch sizes must be positive, got {self.net_arch}")


class QNetwork(tf.Module):
    """Q(s, .): the default torso for the observation space, then a (dueling) `QHead`."""

    def __init__(self, observation_space: gym.Space, n_actions: int, *, net_arch=(64, 64), activation="relu",
                 dueling: bool = False, name: Optional[str] = None):
        super().__init__(name=name or "q_network")
        self.torso = make_torso(observation_space, hidden=tuple(net_arch), activation=activation)
        self.head = QHead(n_actions, dueling=dueling)

    def __call__(self, obs) -> tf.Tensor:
        return self.head(self.torso(obs))  # [B, n_actions]


def td_target(reward, discount, next_q_target, next_q_online=None):
    """y = r + discount * Q_target(s', a*), a* = argmax Q_target (DQN) or argmax Q_online (Double DQN); reward,
    discount [B], next_q_* [B, n]. `discount` is gamma**k for a k-step return that did not terminate (truncation
    included) and 0 after termination: terminated transitions do not bootstrap, truncated ones do."""
    if next_q_online is None:
        next_v = tf.reduce_max(next_q_target, axis=-1)
    else:
        a_star = tf.argmax(next_q_online, axis=-1, output_type=tf.int32)
        next_v = tf.gather(next_q_target, a_star, batch_dims=1)
    return reward + discount * next_v


def huber(x, delta: float = 1.0):
    """Smooth L1: 0.5 x**2 where |x| <= delta, delta * (|x| - 0.5 delta) elsewhere."""
    a = tf.abs(x)
    return tf.where(a <= delta, 0.5 * tf.square(x), delta * (a - 0.5 * delta))


def dqn_loss(q_net, obs, action, reward, next_obs, discount, weights, next_q_target, *, double_q: bool, loss: str):
    """Importance-weighted TD loss of one batch; returns (loss, (td_error [B], metrics)). `next_q_target` =
    Q_target(next_obs) [B, n] comes precomputed (the target is fixed for a phase: one call for all k batches)."""
    q = q_net(obs)  # [B, n]
    q_a = tf.gather(q, action, batch_dims=1)  # [B]
    next_q_online = q_net(next_obs) if double_q else None
    y = tf.stop_gradient(td_target(reward, discount, next_q_target, next_q_online))
    td = y - q_a
    per_sample = huber(td) if loss == "huber" else 0.5 * tf.square(td)
    value = tf.reduce_mean(weights * per_sample)
    return value, (td, {"loss": value, "q_mean": tf.reduce_mean(q_a), "td_abs": tf.reduce_mean(tf.abs(td))})


def make_update(q_net, target_net, optimizer: Adam, observation_space: gym.Space, *, double_q: bool, loss: str,
                jit_compile: bool, trace_counter: Dict[str, int]):
    """One compiled function running k gradient steps over `[k, B]`-stacked batches, after the target update
    with coefficient `mix` (0: none, 1: copy, else Polyak). Returns (metrics: means over the k steps and the
    global norm of the weights after them; td errors [k, B])."""
    variables, target_vars = tuple(q_net.trainable_variables), tuple(target_net.trainable_variables)
    sig, kb = obs_signature(observation_space, (None, None)), lambda dtype: tf.TensorSpec([None, None], dtype)
    # obs, action, reward, next_obs, discount, weights: [k, B, ...]; mix: a scalar
    signature = [sig, kb(tf.int32), kb(tf.float32), sig, kb(tf.float32), kb(tf.float32), tf.TensorSpec([], tf.float32)]

    def update(obs, action, reward, next_obs, discount, weights, mix):
        trace_counter["update"] = trace_counter.get("update", 0) + 1  # runs only when tracing
        for t, v in zip(target_vars, variables):  # exact: mix = 1 copies, mix = 0 keeps the target
            t.assign(mix * v + (1.0 - mix) * t)
        k, batch = tf.shape(reward)[0], tf.shape(reward)[1]
        # the target is fixed for the whole phase: Q_target(s') of all k batches in one call, [k, B, n]
        flat_next = tf.nest.map_structure(lambda x: tf.reshape(x, [-1] + x.shape[2:].as_list()), next_obs)
        next_q_target = tf.reshape(target_net(flat_next), [k, batch, -1])
        tds = tf.TensorArray(tf.float32, size=k)
        totals = {name: tf.constant(0.0) for name in ("loss", "q_mean", "td_abs", "grad_norm")}
        for j in tf.range(k):
            pick = lambda x: x[j]  # noqa: E731
            with tf.GradientTape() as tape:
                value, (td, metrics) = dqn_loss(
                    q_net, tf.nest.map_structure(pick, obs), action[j], reward[j], tf.nest.map_structure(pick, next_obs),
                    discount[j], weights[j], next_q_target[j], double_q=double_q, loss=loss)
            metrics = dict(metrics, grad_norm=optimizer.apply(tape.gradient(value, variables), variables))
            tds = tds.write(j, td)
            totals = {name: totals[name] + metrics[name] for name in totals}
        means = {name: total / tf.cast(k, tf.float32) for name, total in totals.items()}
        means["weight_norm"] = tf.linalg.global_norm(variables)  # NaN or inf once a weight is (tlrl.finite)
        return means, tds.stack()

    return compile_fixed(update, signature, jit_compile=jit_compile, autograph=True)


def target_mix(vector_steps: int, train_freq: int, n_envs: int, target_update_interval: int, tau: float) -> float:
    """Coefficient 1 - (1 - tau)**m of the m target updates due in the phase ending at `vector_steps` (module doc)."""
    period = max(target_update_interval // n_envs, 1)
    due = vector_steps // period - (vector_steps - train_freq) // period
    return 1.0 - (1.0 - tau) ** due


class DQN(BaseAgent):
    """Deep Q-Network agent for Discrete action spaces (see the module docstring)."""

    Config = DQNConfig

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            hint = " Use DDPG or TD3 for continuous actions." if isinstance(action_space, gym.spaces.Box) else ""
            raise TypeError(f"DQN needs a Discrete action space, got {action_space}.{hint}")
        if not isinstance(observation_space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.Dict)):
            raise TypeError(f"DQN supports Box, Discrete and Dict observation spaces, got {observation_space}")

    def build(self) -> None:
        c, space, n = self.config, self.observation_space, int(self.action_space.n)
        kwargs = dict(net_arch=c.net_arch, activation=c.activation, dueling=c.dueling)
        self.q_net = QNetwork(space, n, name="q_network", **kwargs)
        self.target_net = QNetwork(space, n, name="target_network", **kwargs)
        [net(tf.nest.map_structure(tf.constant, zeros_batch(space))) for net in (self.q_net, self.target_net)]
        for t, v in zip(self.target_net.trainable_variables, self.q_net.trainable_variables):
            t.assign(v)
        self.lr_schedule = make_schedule(c.learning_rate, "learning_rate")
        self.optimizer = Adam(self.lr_schedule(0.0), max_grad_norm=c.max_grad_norm)
        self.optimizer.build(self.q_net.trainable_variables)
        self.epsilon_schedule = linear_then_constant(c.exploration_initial_eps, c.exploration_final_eps,
                                                     c.exploration_fraction)
        self.epsilon = c.exploration_initial_eps
        self.traces: Dict[str, int] = {}
        #: Q(s, .) in numpy from a copy of the weights (re-synced after each update), or None (act in TF).
        self.numpy_q = numpy_q_function(self.q_net, space)
        self._greedy_tf = None if self.numpy_q is not None else compile_fixed(
            lambda obs: tf.argmax(self.q_net(obs), axis=-1, output_type=tf.int32), [obs_signature(space)])
        self._update = self._last_lr = None  # compiled by the first update: actors and evaluation never trace it
        self.plan = replay_plan(c)
        self.store = ReplayStore(c, space, self.action_space, self.n_envs, self.rng)  # the last draw from self.rng

    def _greedy(self, obs) -> np.ndarray:
        if self.numpy_q is not None:
            return np.argmax(self.numpy_q(obs), axis=-1)
        return self._greedy_tf(to_tf_obs(self.observation_space, obs)).numpy()

    def act_batch(self, obs, deterministic: bool) -> np.ndarray:
        actions = self._greedy(obs)
        if not deterministic:
            n = len(actions)
            explore = self.rng.random(n) < self.epsilon
            actions = np.where(explore, self.rng.integers(0, self.action_space.n, size=n), actions)
        return (actions + self.action_space.start).astype(self.action_space.dtype)

    def explore(self, obs) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """Epsilon-greedy for all envs; the network runs only if some env acts greedily."""
        n, space = self.n_envs, self.action_space
        self.epsilon = self.epsilon_schedule(self.progress)  # from the counters alone: exact after load
        explore, random_actions = self.rng.random(n) < self.epsilon, self.rng.integers(0, space.n, size=n)
        actions = random_actions if explore.all() else np.where(explore, random_actions, self._greedy(obs))
        return (actions + space.start).astype(space.dtype), {}

    def constant_exploration(self, level: float) -> Dict[str, Any]:
        return {"exploration_initial_eps": level, "exploration_final_eps": level}

    def acting_variables(self) -> List[tf.Variable]:
        return list(self.q_net.trainable_variables)

    def weights_changed(self) -> None:
        if self.numpy_q is not None:
            self.numpy_q.sync()

    def policy_graph(self, obs) -> tf.Tensor:
        return tf_env_actions(self.action_space, tf.argmax(self.q_net(obs), axis=-1, output_type=tf.int64))

    def update(self, obs=None) -> Dict[str, float]:
        """One phase: the target updates due, then `gradient_steps` gradient steps on replayed batches."""
        c, k = self.config, gradient_steps(self.config, self.n_envs)
        lr = float(self.lr_schedule(self.progress))
        if lr != self._last_lr:
            self.optimizer.learning_rate.assign(lr)
            self._last_lr = lr
        if self._update is None:
            self._update = make_update(self.q_net, self.target_net, self.optimizer, self.observation_space,
                                       double_q=c.double_q, loss=c.loss, jit_compile=c.jit_compile,
                                       trace_counter=self.traces)
        mix = np.float32(target_mix(self.vector_steps, c.train_freq, self.n_envs, c.target_update_interval, c.tau))
        if c.prioritized:  # exact PER: each gradient step samples with the priorities the previous one left
            beta, runs = c.beta + (1.0 - c.beta) * self.progress, []
            for j in range(k):
                batch = self.store.replay.sample(c.batch_size, beta=beta)
                metrics, td = self._update(*self.store.stack([batch])[:6], mix if j == 0 else np.float32(0.0))
                self.store.replay.update_priorities(batch.indices, np.abs(td.numpy()[0]))
                runs.append({name: float(value) for name, value in metrics.items()})
            out = dict({name: sum(m[name] for m in runs) / k for name in runs[0]}, beta=beta)
        else:
            metrics, _ = self._update(*self.store.sample_stacked(k, c.batch_size)[:6], mix)  # [k, B, ...]
            out = {name: float(value) for name, value in metrics.items()}
        self.n_updates += 1
        self.weights_changed()
        out.update(epsilon=float(self.epsilon), learning_rate=lr)
        return out

    def trackables(self) -> Dict[str, Any]:
        return {"q_net": self.q_net, "target_net": self.target_net, "optimizer": self.optimizer}

    def numpy_state(self) -> Dict[str, np.ndarray]:
        return {"epsilon": np.array(self.epsilon, np.float64)}

    def set_numpy_state(self, state) -> None:
        self.epsilon = float(state.get("epsilon", self.epsilon))
