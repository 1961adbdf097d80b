"""`GradientWorker`: act n steps in an own env copy with local weights, return the gradients of a loss.

The worker is the unit of asynchronous actor-critic training (A3C, Mnih et al., 2016). It
knows nothing about threads, processes or Ray: it is built from picklable factories, takes
weights as a list of numpy arrays (`set_weights`) and gives gradients back as a list of
numpy arrays (`compute_gradients`), so any backend can move it and its messages around.

Per rollout the TF cost is one compiled call: acting runs a numpy forward pass of the
local weights (they are frozen between pulls; `tlrl.numpy_policy`), and the n-step returns,
the loss and its gradients are computed in one compiled function with fixed shapes
(`tlrl.compiled.compile_fixed`: traced once, never retraced). Networks that have no numpy
forward pass (convolutions, Keras models) act with one compiled TF call per vector step
instead. A worker whose model is the learner's own (one worker, same process) is trained by
`Learner.train`, which fuses the gradient and the update into that one call. Observations
cross into TF as `tlrl.spaces` says (float32; uint8 images; Discrete int32).

The n-step returns stay in TF, inside the gradient call, rather than use `tlrl.buffers.gae`
(whose lambda=1 returns are the same quantity): that needs V of every observation on the numpy
side first (another call), and its float64 arithmetic rounds differently from this float32 one,
so training would no longer match the earlier releases bit for bit.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.compiled import compile_fixed
from tlrl.episodes import EpisodeTracker, true_next_obs
from tlrl.finite import check_env_step
from tlrl.numpy_policy import NumpyModule, NumpyUnsupported
from tlrl.runner.flat import FlatLayout
from tlrl.spaces import obs_signature, to_env_actions, to_tf_obs

Weights = List[np.ndarray]
#: `env_fn(seed=...) -> vector env`, e.g. `functools.partial(tlrl.envs.make_vector_env, "CartPole-v1", 4)`.
EnvFn = Callable[..., gym.vector.VectorEnv]


# ----- n-step returns -----------------------------------------------------------
def n_step_returns(rewards, next_values, terminated, truncated, gamma: float):
    """Discounted n-step returns of a time-major rollout, bootstrapped where the paper says.

    `R_t = r_t + gamma * (1 - terminated_t) * B_t`, with `B_t = V(next_obs_t)` at the last step
    and where the episode was truncated (the true final observation), else `B_t = R_{t+1}`. A
    terminated step does not bootstrap, and no return reaches across an episode boundary.

    Args:
        rewards: `[T, n_envs]` rewards.
        next_values: `[T, n_envs]` V of the true next observation of each step (the final
            observation where an episode ended); only the last step and truncated steps are read.
        terminated, truncated: `[T, n_envs]` flags (bool or 0/1 floats).
        gamma: discount factor.

    Returns:
        `[T, n_envs]` float32 returns (a TF tensor; works eagerly and inside `tf.function`).

    >>> r = n_step_returns([[1.], [1.], [1.]], [[0.], [2.], [10.]], [[0.], [0.], [0.]],
    ...                    [[0.], [1.], [0.]], gamma=0.5)
    >>> r.numpy()[:, 0].tolist()
    [2.0, 2.0, 6.0]
    """
    rewards = tf.cast(rewards, tf.float32)
    next_values = tf.cast(next_values, tf.float32)
    terminated = tf.cast(terminated, tf.float32)
    truncated = tf.cast(truncated, tf.float32)
    steps = rewards.shape[0]
    if steps is None:
        raise ValueError("n_step_returns needs a static number of steps (first dimension)")
    out = [None] * steps
    ret = next_values[steps - 1]
    for t in reversed(range(steps)):
        # Truncated: bootstrap from V(final obs); otherwise continue from the next step's return.
        boot = next_values[t] if t == steps - 1 else truncated[t] * next_values[t] + (1.0 - truncated[t]) * ret
        ret = rewards[t] + gamma * (1.0 - terminated[t]) * boot
        out[t] = ret
    return tf.stack(out)


# ----- rollout storage ----------------------------------------------------------------
def action_signature(space: gym.Space, lead: Tuple[int, ...]) -> tf.TensorSpec:
    """The `tf.TensorSpec` of stored policy actions (the distribution's dtype: int64 or float32)."""
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return tf.TensorSpec(lead + tuple(space.shape), tf.int64)
    if isinstance(space, gym.spaces.Box):
        return tf.TensorSpec(lead + tuple(space.shape), tf.float32)
    raise TypeError(f"GradientWorker supports Discrete, MultiDiscrete and Box actions, got {space}")


def zeros_of(signature):
    """Zero numpy storage for a `tf.TensorSpec` (or a dict of them)."""
    return tf.nest.map_structure(lambda spec: np.zeros(spec.shape, spec.dtype.as_numpy_dtype), signature)


def _write_pair(buf, i: int, t: int, value) -> None:
    """`buf[i, t] = value` for an array or a dict of arrays."""
    if isinstance(buf, dict):
        for k in buf:
            buf[k][i, t] = value[k]
    else:
        buf[i, t] = value


def _flatten_time(x, n: int):
    """Merge the leading `[T, n_envs]` axes of a tensor (or dict of tensors) into one of size `n`."""
    if isinstance(x, Mapping):
        return {k: _flatten_time(v, n) for k, v in x.items()}
    return tf.reshape(x, [n] + x.shape[2:].as_list())


def numpy_policy(model, variables: Sequence[tf.Variable], observation_space: gym.Space):
    """A numpy forward pass of `model.policy_parts()` and the indices of its weights in `variables`,
    or `(None, None)` if a part has no numpy equivalent (acting then runs in TF)."""
    try:
        policy = NumpyModule(*model.policy_parts(), observation_space=observation_space)
    except NumpyUnsupported:
        return None, None
    index = {id(v): i for i, v in enumerate(variables)}
    if any(id(v) not in index for v in policy.variables):
        return None, None
    return policy, [index[id(v)] for v in policy.variables]


# ----- the worker -------------------------------------------------------------------
class GradientWorker:
    """Runs `n_steps` in its own (vector) env with local weights; returns the loss gradients.

    Args:
        env_fn: `env_fn(seed=seed)` makes a Gymnasium vector env with `AutoresetMode.SAME_STEP`
            (e.g. `functools.partial(tlrl.envs.make_vector_env, "CartPole-v1", 4)`).
        model_fn: zero-argument factory of the actor-critic, a `tf.Module` with
            `__call__(obs) -> (policy distribution, values [B])`, `value(obs) -> [B]` and
            `policy_parts() -> tuple of modules` (torso, head) for the numpy acting path.
            Every worker's model and the learner's must list their `trainable_variables` in
            the same order (the same factory guarantees it).
        loss_fn: pure `loss_fn(dist, values, actions, returns) -> (loss, metrics dict)`.
        n_steps: steps per env per rollout (the paper's t_max).
        gamma: discount factor of the n-step returns.
        seed: seeds the env and action sampling; None for nondeterministic.
        jit_compile: compile the gradient step with XLA.

    The first `compute_gradients` needs weights (`set_weights`) first.
    """

    def __init__(self, env_fn: EnvFn, model_fn: Callable[[], tf.Module], loss_fn: Callable, *, n_steps: int,
                 gamma: float, seed: Optional[int] = None, jit_compile: bool = False):
        if n_steps < 1:
            raise ValueError(f"n_steps must be at least 1, got {n_steps}")
        self.env_fn = env_fn
        self.env = self._make_env(seed)
        self.n_envs = int(self.env.num_envs)
        self.n_steps = int(n_steps)
        self.gamma = float(gamma)
        self.loss_fn = loss_fn
        self.observation_space = self.env.single_observation_space
        self.action_space = self.env.single_action_space
        self.model = model_fn()
        self.variables: List[tf.Variable] = list(self.model.trainable_variables)
        self._weights: Optional[Weights] = None
        T, N = self.n_steps, self.n_envs
        # Rollout storage, preallocated. obs_pair[0] = obs_t, obs_pair[1] = true next obs of step t;
        # signals = (rewards, terminated, truncated): few arguments make a cheap compiled call.
        self._obs_pair = zeros_of(obs_signature(self.observation_space, (2, T, N)))
        self._act_buf = zeros_of(action_signature(self.action_space, (T, N)))
        self._signals = np.zeros((3, T, N), np.float32)
        self.layout = FlatLayout.of(self.variables)
        #: the numpy forward pass acting uses (None: acting runs in TF, one call per vector step).
        self.numpy_policy, self._np_order = numpy_policy(self.model, self.variables, self.observation_space)
        self.metric_names: List[str] = []  # set when the loss is traced
        self.shares_variables = False  # True once a local Learner trains this worker's variables directly
        #: the compiled gradient call (flat weights + `batch()` -> flat gradients, metrics, returns).
        self.gradient_fn = compile_fixed(self._gradients, [self.layout.spec()] + self.batch_signature(),
                                         jit_compile=jit_compile)
        self.act_fn = None
        if self.numpy_policy is None:  # TF acting: one compiled call per vector step
            self.act_fn = compile_fixed(self._act_tf, [obs_signature(self.observation_space, (N,)),
                                                       tf.TensorSpec([2], tf.int32)])
            self._assign_fn = compile_fixed(self._assign, [self.layout.spec()])
        self._start(seed)

    def _make_env(self, seed: Optional[int]) -> gym.vector.VectorEnv:
        env = self.env_fn(seed=seed)
        if env.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
            env.close()
            raise ValueError("GradientWorker needs a vector env with AutoresetMode.SAME_STEP "
                             "(tlrl.envs.make_vector_env makes one)")
        return env

    def _start(self, seed: Optional[int]) -> None:
        """Reset the env with `seed` and start counting and sampling afresh."""
        self.rng = np.random.default_rng(seed)
        self.tracker = EpisodeTracker(self.n_envs)
        self._obs, _ = self.env.reset(seed=seed)
        #: env steps this worker has taken (all its envs), named when an env returns NaN or inf.
        self.env_steps = 0
        #: returns of the last rollout ([T, n_envs]), for inspection and tests.
        self.last_returns: Optional[np.ndarray] = None

    def reset(self, seed: Optional[int]) -> None:
        """Start over with new envs seeded with `seed`, exactly as a new worker with this seed would
        (its running episodes are dropped); the network and its compiled calls are kept."""
        self.env.close()
        self.env = self._make_env(seed)
        self._start(seed)

    @property
    def steps_per_rollout(self) -> int:
        """Env steps one `compute_gradients` call takes (n_steps * n_envs)."""
        return self.n_steps * self.n_envs

    # ----- weights -------------------------------------------------------------
    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Use these weights (numpy arrays, in the model's `trainable_variables` order) from now on."""
        if len(weights) != len(self.variables):
            raise ValueError(f"expected {len(self.variables)} weight arrays, got {len(weights)}")
        self._weights = list(weights)
        self._flat_weights = self.layout.pack(self._weights)
        if self.numpy_policy is not None:
            self.numpy_policy.sync([self._weights[i] for i in self._np_order])
        elif not self.shares_variables:
            self._assign_fn(self._flat_weights)

    def set_flat_weights(self, flat_weights: np.ndarray) -> None:
        """`set_weights` from one float32 vector (`layout.pack` of the list); no copy is made."""
        self.set_weights(self.layout.unpack(np.asarray(flat_weights, np.float32)))

    def _assign(self, flat_weights):
        for v, w in zip(self.variables, self.layout.unpack_tf(flat_weights)):
            v.assign(w)
        return tf.constant(0)

    # ----- acting --------------------------------------------------------------
    def _act_tf(self, obs, seed):
        dist, _ = self.model(obs)
        return dist.sample(seed=seed)

    def _sample(self, obs) -> np.ndarray:
        if self.numpy_policy is not None:
            return self.numpy_policy(obs).sample(self.rng)
        seed = self.rng.integers(0, 2**31 - 1, size=2, dtype=np.int64).astype(np.int32)
        return self.act_fn(to_tf_obs(self.observation_space, obs), seed).numpy()

    # ----- one rollout -> gradients ----------------------------------------------
    def compute_gradients(self) -> Tuple[Weights, Dict[str, Any]]:
        """Act `n_steps` in every env, then return `(gradients, stats)`.

        `gradients` are numpy arrays in `trainable_variables` order; `stats` holds `steps`,
        `episode_returns` / `episode_lengths` (episodes finished in this rollout) and every
        loss metric as a float.
        """
        episodes = self.collect()
        grads, metrics, returns = self.gradient_fn(self._flat_weights, *self.batch())
        return self.layout.unpack(grads.numpy()), self.summarize(episodes, metrics, returns)

    def step(self, flat_weights: np.ndarray) -> Tuple[np.ndarray, Dict[str, Any]]:
        """One remote-friendly call per rollout: take these weights (one flat vector), act
        `n_steps`, return `(flat gradients, stats)` (see `compute_gradients`)."""
        self.set_flat_weights(flat_weights)
        episodes = self.collect()
        grads, metrics, returns = self.gradient_fn(self._flat_weights, *self.batch())
        return grads.numpy(), self.summarize(episodes, metrics, returns)

    def collect(self) -> Dict[str, List]:
        """Act `n_steps` in every env with the current weights, filling the rollout storage
        (`batch()`); returns the episodes that ended (`episode_returns`, `episode_lengths`)."""
        if self._weights is None:
            raise RuntimeError("GradientWorker: set_weights must be called before the first rollout")
        ended_returns: List[float] = []
        ended_lengths: List[int] = []
        space = self.action_space
        for t in range(self.n_steps):
            obs = self._obs
            _write_pair(self._obs_pair, 0, t, obs)
            actions = self._sample(obs)
            self._act_buf[t] = actions
            next_obs, rewards, terminated, truncated, info = self.env.step(to_env_actions(space, actions))
            done = np.logical_or(terminated, truncated)
            self.env_steps += self.n_envs
            check_env_step(self.env, self.env_steps, next_obs, rewards, info, done)
            _write_pair(self._obs_pair, 1, t, true_next_obs(next_obs, info, done))
            self._signals[0, t] = rewards
            self._signals[1, t] = terminated
            self._signals[2, t] = truncated
            if done.any():
                ended_lengths += (self.tracker.lengths[done] + 1).tolist()
            ended_returns += self.tracker.update(rewards, done)
            self._obs = next_obs
        return {"episode_returns": ended_returns, "episode_lengths": ended_lengths}

    def batch(self) -> tuple:
        """The last rollout as compiled-call arguments: `(obs_pair [2, T, N, ...], actions [T, N, ...],
        signals [3, T, N] = rewards, terminated, truncated)`."""
        return self._obs_pair, self._act_buf, self._signals

    def batch_signature(self) -> list:
        """`tf.TensorSpec`s of `batch()`."""
        T, N = self.n_steps, self.n_envs
        return [obs_signature(self.observation_space, (2, T, N)), action_signature(self.action_space, (T, N)),
                tf.TensorSpec((3, T, N), tf.float32)]

    def summarize(self, episodes: Dict[str, List], metrics: tf.Tensor, returns: tf.Tensor) -> Dict[str, Any]:
        """The stats of a rollout from its episodes and the compiled call's metrics vector and returns."""
        self.last_returns = returns.numpy()
        stats: Dict[str, Any] = {name: float(v) for name, v in zip(self.metric_names, metrics.numpy())}
        stats.update(steps=self.steps_per_rollout, **episodes)
        return stats

    def loss_gradients(self, obs_pair, actions, signals):
        """Graph code: n-step returns, `loss_fn` and its gradients for the model's current variables.

        Returns `(gradients list, metrics vector [len(metric_names)], returns [T, N])`.
        """
        T, N = self.n_steps, self.n_envs
        n = T * N
        obs = tf.nest.map_structure(lambda x: x[0], obs_pair)
        next_obs = tf.nest.map_structure(lambda x: x[1], obs_pair)
        next_values = tf.reshape(self.model.value(_flatten_time(next_obs, n)), [T, N])
        returns = tf.stop_gradient(n_step_returns(signals[0], next_values, signals[1], signals[2], self.gamma))
        with tf.GradientTape() as tape:
            dist, values = self.model(_flatten_time(obs, n))
            loss, metrics = self.loss_fn(dist, values, _flatten_time(actions, n), tf.reshape(returns, [n]))
        grads = tape.gradient(loss, self.variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, self.variables)]
        self.metric_names = sorted(metrics)
        return grads, tf.stack([tf.cast(metrics[k], tf.float32) for k in self.metric_names]), returns

    def _gradients(self, flat_weights, obs_pair, actions, signals):
        """Assign the weights, then `loss_gradients` (one compiled call); gradients packed flat."""
        for v, w in zip(self.variables, self.layout.unpack_tf(flat_weights)):
            v.assign(w)
        grads, metrics, returns = self.loss_gradients(obs_pair, actions, signals)
        return self.layout.pack_tf(grads), metrics, returns

    def close(self) -> None:
        """Close the env."""
        self.env.close()
