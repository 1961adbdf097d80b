"""DQN: deep Q-learning from replay (Mnih et al., 2015, "Human-level control through deep
reinforcement learning", Nature 518) with its usual extensions, each a switch:

- `double_q`: Double DQN target (van Hasselt et al., 2016): the online net picks a*, the
  target net values it.
- `dueling`: dueling head V(s) + A(s, a) - mean_a A(s, a) (Wang et al., 2016).
- `prioritized`: proportional prioritized replay (Schaul et al., 2016); importance-weight
  exponent beta annealed linearly from `beta` to 1 over training.
- `n_step`: n-step returns (the replay buffer sums rewards; `discount` = gamma**k, 0 after termination).
- `tau`: 1 = hard target copies every `target_update_interval` env steps; < 1 = Polyak averaging
  target <- tau * online + (1 - tau) * target at those same moments.

Loss: Huber (smooth L1, as SB3) or MSE on the TD error, gradients clipped by global norm
`max_grad_norm`. Epsilon-greedy exploration decays linearly from `exploration_initial_eps` to
`exploration_final_eps` over the first `exploration_fraction` of `learn`'s steps.

Speed. The `gradient_steps` updates of one training phase run as ONE compiled call over
`[k, batch]`-stacked batches. Between phases the weights are frozen, so acting uses a numpy
copy of the Q network (MLP torsos; CNN torsos fall back to one `tf.function` call per
vector step). Random actions (before `learning_starts`, or where epsilon fires) cost no
network call at all.

Target updates (SB3 semantics, so zoo hyperparameters transfer). `target_update_interval`
counts env steps: a target update is due every `max(target_update_interval // n_envs, 1)`
vector steps, during collection. The online weights only change in a training phase, so the
m updates due during the `train_freq` vector steps before a phase all see the same weights
and are applied at once, before its first gradient step, with coefficient 1 - (1 - tau)**m
(a copy when tau = 1); the target then stays fixed for the phase's k gradient steps. This is
exact (identical to SB3's step-by-step updates), not an approximation. Spreading the updates
over the gradient steps instead (target copied every 5 of the 128 gradient steps for the zoo
CartPole settings) made Q diverge (Q ~ 1e10 after 50k steps) with the zoo hyperparameters.
With the zoo CartPole settings, `tau=0.05` (+ `dueling=True`) made the final greedy policy more
reliable; the measurements are in `scripts/benchmarks/dqn_cartpole.py`.

>>> from tlrl.algorithms import DQN
>>> agent = DQN("CartPole-v1", seed=0, buffer_size=1000, net_arch=(32, 32))
>>> _ = agent.learn(64)  # random actions until learning_starts (100), then epsilon-greedy updates
>>> agent.num_timesteps, len(agent.replay)
(64, 64)
>>> int(agent.act(agent._obs[0], deterministic=True)) in (0, 1)
True
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple, Union

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.hyperparams import require
from tlrl.modules import QHead, make_torso
from tlrl.off_policy import OffPolicyAgent, OffPolicyConfig, obs_signature, to_tf_obs
from tlrl.optim import Adam
from tlrl.schedules import linear_then_constant, make_schedule


# ----- config ---------------------------------------------------------------------------

@dataclasses.dataclass
class DQNConfig(OffPolicyConfig):
    """DQN hyperparameters (SB3 names and defaults unless stated)."""

    learning_rate: Union[float, str, Callable[[float], float]] = 1e-4
    """Adam step size: a number, 'lin_<start>' (linear to 0) or a callable of progress (0 -> 1)."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 100
    """Env steps of uniform random actions before the first update."""
    batch_size: int = 32
    """Transitions per gradient step."""
    train_freq: int = 4
    """Update every `train_freq` vector steps."""
    gradient_steps: int = 1
    """Gradient steps per update (-1: as many as env steps collected since the last update)."""
    gamma: float = 0.99
    """Discount factor."""
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
    n_envs: int = 1
    """Parallel training envs."""
    jit_compile: bool = True
    """Compile the fused update with XLA (about 30% faster per gradient step than plain tf.function on CPU for
    the zoo CartPole net, paired measurement; costs a one-off compile of ~1-2 s)."""

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


# ----- networks ---------------------------------------------------------------------------

class QNetwork(tf.Module):
    """Q(s, .): the default torso for the observation space, then a (dueling) `QHead`."""

    def __init__(self, observation_space: gym.Space, n_actions: int, *, net_arch=(64, 64), activation="relu",
                 dueling: bool = False, name: Optional[str] = None):
        super().__init__(name=name or "q_network")
        self.torso = make_torso(observation_space, hidden=tuple(net_arch), activation=activation)
        self.head = QHead(n_actions, dueling=dueling)

    def __call__(self, obs) -> tf.Tensor:
        return self.head(self.torso(obs))  # [B, n_actions]


# ----- loss ------------------------------------------------------------------------------------

def td_target(reward, discount, next_q_target, next_q_online=None):
    """y = r + discount * Q_target(s', a*), with a* = argmax Q_target (DQN) or argmax Q_online (Double DQN).

    `discount` is gamma**k for a k-step return that did not terminate (truncation included) and
    0 after termination, so terminated transitions do not bootstrap and truncated ones do.
    Shapes: reward, discount [B]; next_q_* [B, n].
    """
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
    """Importance-weighted TD loss of one batch; returns (loss, (td_error [B], metrics)).

    `next_q_target` = Q_target(next_obs) [B, n] comes in precomputed: the target network is fixed
    during a training phase, so `make_update` evaluates it for all k batches in one large call.
    """
    q = q_net(obs)  # [B, n]
    q_a = tf.gather(q, action, batch_dims=1)  # [B]
    next_q_online = q_net(next_obs) if double_q else None
    y = tf.stop_gradient(td_target(reward, discount, next_q_target, next_q_online))
    td = y - q_a
    per_sample = huber(td) if loss == "huber" else 0.5 * tf.square(td)
    value = tf.reduce_mean(weights * per_sample)
    return value, (td, {"loss": value, "q_mean": tf.reduce_mean(q_a), "td_abs": tf.reduce_mean(tf.abs(td))})


# ----- compiled update ---------------------------------------------------------------------------

def make_update(q_net, target_net, optimizer: Adam, observation_space: gym.Space, *, double_q: bool, loss: str,
                jit_compile: bool, trace_counter: Dict[str, int]):
    """One compiled function running k gradient steps over `[k, B]`-stacked batches.

    `mix` is the target-update coefficient applied before the first step: 0 (none), 1 (copy) or
    in between (Polyak). Returns (mean metrics over the k steps and the global norm of the weights
    after them, td errors [k, B]).
    """
    variables = tuple(q_net.trainable_variables)
    target_vars = tuple(target_net.trainable_variables)
    signature = [
        obs_signature(observation_space, (None, None)),
        tf.TensorSpec([None, None], tf.int32),  # action
        tf.TensorSpec([None, None], tf.float32),  # reward
        obs_signature(observation_space, (None, None)),
        tf.TensorSpec([None, None], tf.float32),  # discount
        tf.TensorSpec([None, None], tf.float32),  # weights
        tf.TensorSpec([], tf.float32),  # mix
    ]

    def update(obs, action, reward, next_obs, discount, weights, mix):
        trace_counter["update"] = trace_counter.get("update", 0) + 1  # runs only when tracing
        for t, v in zip(target_vars, variables):  # exact: mix = 1 copies, mix = 0 keeps the target
            t.assign(mix * v + (1.0 - mix) * t)
        k, batch = tf.shape(reward)[0], tf.shape(reward)[1]
        # the target is fixed for the whole phase: Q_target(s') of all k batches in one call, [k, B, n]
        flat_next = tf.nest.map_structure(lambda x: tf.reshape(x, [-1] + x.shape[2:].as_list()), next_obs)
        next_q_target = target_net(flat_next)
        next_q_target = tf.reshape(next_q_target, [k, batch, -1])
        tds = tf.TensorArray(tf.float32, size=k)
        totals = {name: tf.constant(0.0) for name in ("loss", "q_mean", "td_abs", "grad_norm")}
        for j in tf.range(k):
            pick = lambda x: x[j]  # noqa: E731
            with tf.GradientTape() as tape:
                value, (td, metrics) = dqn_loss(
                    q_net, tf.nest.map_structure(pick, obs), action[j], reward[j], tf.nest.map_structure(pick, next_obs),
                    discount[j], weights[j], next_q_target[j], double_q=double_q, loss=loss)
            grads = tape.gradient(value, variables)
            metrics = dict(metrics, grad_norm=optimizer.apply(grads, variables))
            tds = tds.write(j, td)
            totals = {name: totals[name] + metrics[name] for name in totals}
        kf = tf.cast(k, tf.float32)
        means = {name: total / kf for name, total in totals.items()}
        means["weight_norm"] = tf.linalg.global_norm(variables)  # NaN or inf once a weight is (tlrl.finite)
        return means, tds.stack()

    return tf.function(update, input_signature=signature, jit_compile=jit_compile, reduce_retracing=False)


# ----- agent ----------------------------------------------------------------------------------

class DQN(OffPolicyAgent):
    """Deep Q-Network agent for Discrete action spaces (see the module docstring).

    >>> from tlrl.algorithms import DQN
    >>> DQN("Pendulum-v1")
    Traceback (most recent call last):
    ...
    TypeError: DQN needs a Discrete action space, got Box(-2.0, 2.0, (1,), float32). Use DDPG or TD3 for continuous actions.
    """

    Config = DQNConfig

    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            hint = " Use DDPG or TD3 for continuous actions." if isinstance(action_space, gym.spaces.Box) else ""
            raise TypeError(f"DQN needs a Discrete action space, got {action_space}.{hint}")
        if not isinstance(observation_space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.Dict)):
            raise TypeError(f"DQN supports Box, Discrete and Dict observation spaces, got {observation_space}")

    def _build(self) -> None:
        c = self.config
        n = int(self.action_space.n)
        kwargs = dict(net_arch=c.net_arch, activation=c.activation, dueling=c.dueling)
        self.q_net = QNetwork(self.observation_space, n, name="q_network", **kwargs)
        self.target_net = QNetwork(self.observation_space, n, name="target_network", **kwargs)
        dummy = tf.nest.map_structure(tf.constant, to_tf_obs(self.observation_space, _zeros_obs(self.observation_space)))
        self.q_net(dummy), self.target_net(dummy)  # create the variables eagerly
        for t, v in zip(self.target_net.trainable_variables, self.q_net.trainable_variables):
            t.assign(v)
        self.lr_schedule = make_schedule(c.learning_rate, "learning_rate")
        self.optimizer = Adam(self.lr_schedule(0.0), max_grad_norm=c.max_grad_norm)
        self.optimizer.build(self.q_net.trainable_variables)
        self.epsilon_schedule = linear_then_constant(c.exploration_initial_eps, c.exploration_final_eps,
                                                     c.exploration_fraction)
        self.epsilon = c.exploration_initial_eps
        self.traces: Dict[str, int] = {}
        self._update = make_update(self.q_net, self.target_net, self.optimizer, self.observation_space,
                                   double_q=c.double_q, loss=c.loss, jit_compile=c.jit_compile, trace_counter=self.traces)
        self._greedy_tf = tf.function(lambda obs: tf.argmax(self.q_net(obs), axis=-1, output_type=tf.int32),
                                      input_signature=[obs_signature(self.observation_space)])
        self._numpy_q = _numpy_q(self.q_net)
        self._last_lr = None

    # --- acting ---
    def _greedy(self, obs) -> np.ndarray:
        if self._numpy_q is not None:
            return np.argmax(self._numpy_q(obs), axis=-1)
        return self._greedy_tf(to_tf_obs(self.observation_space, obs)).numpy()

    def _act_batch(self, obs, deterministic: bool) -> np.ndarray:
        actions = self._greedy(obs)
        if not deterministic:
            n = len(actions)
            explore = self.rng.random(n) < self.epsilon
            actions = np.where(explore, self.rng.integers(0, self.action_space.n, size=n), actions)
        return (actions + self.action_space.start).astype(self.action_space.dtype)

    def _explore_actions(self, obs_batch) -> np.ndarray:
        """Epsilon-greedy for all envs; the network runs only if some env acts greedily."""
        n, space = self.n_envs, self.action_space
        self.epsilon = self.epsilon_schedule(self.progress)  # from the counters alone: exact after load
        explore = self.rng.random(n) < self.epsilon
        random_actions = self.rng.integers(0, space.n, size=n)
        if explore.all():
            actions = random_actions
        else:
            actions = np.where(explore, random_actions, self._greedy(obs_batch))
        return (actions + space.start).astype(space.dtype)

    # --- training ---
    def _target_mix(self) -> float:
        """Coefficient of the target updates due since the last phase (see the module docstring)."""
        c = self.config
        period = max(c.target_update_interval // self.n_envs, 1)
        due = self._vec_steps // period - (self._vec_steps - c.train_freq) // period
        return 1.0 - (1.0 - c.tau) ** due

    def _train(self, gradient_steps: int) -> Dict[str, float]:
        c, k = self.config, gradient_steps
        lr = float(self.lr_schedule(self.progress))
        if lr != self._last_lr:
            self.optimizer.learning_rate.assign(lr)
            self._last_lr = lr
        mix = np.float32(self._target_mix())
        if c.prioritized:
            # Exact PER: every gradient step samples with the priorities left by the previous one.
            beta = c.beta + (1.0 - c.beta) * self.progress
            sums: Dict[str, float] = {}
            for j in range(k):
                batch = self.replay.sample(c.batch_size, beta=beta)
                metrics, td = self._update(*self.stack_batches([batch])[:6], mix if j == 0 else np.float32(0.0))
                self.replay.update_priorities(batch.indices, np.abs(td.numpy()[0]))
                for name, value in metrics.items():
                    sums[name] = sums.get(name, 0.0) + float(value)
            out = {name: value / k for name, value in sums.items()}
            out["beta"] = beta
        else:
            metrics, _ = self._update(*self.sample_stacked(k)[:6], mix)  # [k, B, ...]: obs .. weights
            out = {name: float(value) for name, value in metrics.items()}
        self._weights_changed()
        out.update(epsilon=float(self.epsilon), learning_rate=lr)
        return out

    def _weights_changed(self) -> None:
        if self._numpy_q is not None:
            self._numpy_q.sync()

    # --- persistence ---
    def _trackables(self) -> Dict[str, Any]:
        return {"q_net": self.q_net, "target_net": self.target_net, "optimizer": self.optimizer}

    def _numpy_state(self) -> Dict[str, np.ndarray]:
        return dict(super()._numpy_state(), epsilon=np.array(self.epsilon, np.float64))

    def _set_numpy_state(self, state) -> None:
        super()._set_numpy_state(state)
        if "epsilon" in state:
            self.epsilon = float(state["epsilon"])

    def restore_state(self, path: str, meta=None) -> None:
        super().restore_state(path, meta)
        self._weights_changed()


# ----- helpers ------------------------------------------------------------------------------

def _zeros_obs(space: gym.Space):
    if isinstance(space, gym.spaces.Dict):
        return {k: _zeros_obs(s) for k, s in space.spaces.items()}
    return np.zeros((1,) + space.shape, space.dtype)


class _NumpyQ:
    """Q(s, .) in numpy from a snapshot of the weights (valid until the next update)."""

    def __init__(self, q_net: QNetwork):
        from tlrl.numpy_policy import NumpyModule

        self.torso = NumpyModule(q_net.torso)
        self.advantage = NumpyModule(q_net.head.advantage)
        self.value = NumpyModule(q_net.head.value) if q_net.head.dueling else None
        self.sync()

    def sync(self) -> None:
        for part in (self.torso, self.advantage, self.value):
            if part is not None:
                part.sync()

    def __call__(self, obs) -> np.ndarray:
        features = self.torso(obs)
        a = self.advantage(features)
        if self.value is None:
            return a
        return self.value(features) + a - a.mean(axis=-1, keepdims=True)


def _numpy_q(q_net: QNetwork) -> Optional[_NumpyQ]:
    """The numpy Q function if every part of the network has a numpy version, else None (TF path)."""
    try:
        from tlrl.numpy_policy import NumpyUnsupported
    except ImportError:  # pragma: no cover - numpy_policy ships with tlrl
        return None
    try:
        return _NumpyQ(q_net)
    except NumpyUnsupported:
        return None
