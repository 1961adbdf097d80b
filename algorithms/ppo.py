"""Proximal Policy Optimization with a clipped objective and GAE.

Schulman, Wolski, Dhariwal, Radford, Klimov (2017), "Proximal Policy Optimization Algorithms",
arXiv:1707.06347; advantages by GAE(lambda) (Schulman et al., 2016, arXiv:1506.02438).
Conventions and defaults follow Stable-Baselines3 (same hyperparameter names), and the
implementation details of Huang et al. (2022, "The 37 Implementation Details of PPO"):
orthogonal init (sqrt(2) torso, 0.01 policy, 1 value), per-minibatch advantage
normalization, global gradient clipping, optional value clipping, entropy bonus.

Where the time goes, and what tlrl does about it (small networks on CPU cost calls, not FLOPs):

- Acting: during a rollout the weights are frozen, so actions, log-probs and values for all
  envs come from one numpy forward pass (`tlrl.numpy_policy`), sampled with `self.rng`
  (exact and seeded). Networks numpy cannot run (CNNs, Keras) use one `tf.function` call.
- Updating: all `n_epochs` x minibatches run in ONE compiled call (`tf.while_loop`, XLA),
  fed with permutations drawn in numpy from `self.rng`; it returns the new acting weights
  too, so the next rollout needs no extra TF call. Shapes are fixed: it never retraces.

>>> from tlrl.algorithms import PPO
>>> agent = PPO("CartPole-v1", seed=0, n_envs=2, n_steps=16, batch_size=32, n_epochs=1)
>>> agent = agent.learn(32)
>>> agent.num_timesteps
32
>>> int(agent.act(agent.observation_space.sample())) in (0, 1)
True
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.agent import BaseAgent
from tlrl.algorithms.ppo_parts import METRICS, ActorCritic, PPOConfig, ppo_loss  # noqa: F401 - public names
from tlrl.buffers import RolloutBuffer
from tlrl.envs import ObservationNormalizer, RewardNormalizer
from tlrl.episodes import EpisodeTracker, true_next_obs
from tlrl.finite import check_env_step, check_metrics
from tlrl.modules import GaussianHead
from tlrl.numpy_policy import NumpyModule, NumpyUnsupported
from tlrl.off_policy import obs_signature, to_tf_obs
from tlrl.optim import Adam
from tlrl.schedules import make_schedule
from tlrl.step_limits import check_total_steps


# ----- agent -------------------------------------------------------------------------------------
class PPO(BaseAgent):
    """PPO agent: `PPO(env, seed=..., **hyperparameters)` (see `PPOConfig`).

    Attributes:
        model: the `ActorCritic` networks; `optimizer`: its `Adam`.
        episode_tracker: returns/lengths of recent training episodes.
        n_updates: gradient steps taken so far.
    """

    Config = PPOConfig

    # ----- construction ------------------------------------------------------------------------
    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.Box)):
            raise TypeError(f"PPO supports Discrete, MultiDiscrete and Box action spaces, got {action_space}. "
                            f"Wrap the env to map your actions to one of those.")
        if isinstance(action_space, gym.spaces.Box) and not np.issubdtype(action_space.dtype, np.floating):
            raise TypeError(f"PPO needs a float Box action space for its Gaussian policy, got dtype {action_space.dtype}")
        if isinstance(action_space, gym.spaces.MultiDiscrete) and action_space.nvec.ndim != 1:
            raise TypeError(f"PPO supports 1-D MultiDiscrete action spaces, got nvec of shape {action_space.nvec.shape}")
        if self.config.normalize_obs and not _normalizable(observation_space):
            raise TypeError(f"normalize_obs=True needs float Box observations (or a Dict with some), got "
                            f"{observation_space}; images and discrete observations are not normalized")

    def _build(self) -> None:
        c = self.config
        self._lr = make_schedule(c.learning_rate, "learning_rate")
        self._clip = make_schedule(c.clip_range, "clip_range")
        self._clip_vf = None if c.clip_range_vf is None else make_schedule(c.clip_range_vf, "clip_range_vf")
        self.model = ActorCritic(self.observation_space, self.action_space, c)
        dummy = to_tf_obs(self.observation_space, _batch_of(self.observation_space, 1))
        self.model(dummy)  # create the variables eagerly
        self.optimizer = Adam(self._lr(0.0), max_grad_norm=c.max_grad_norm)
        self.optimizer.build(self.model.trainable_variables)
        self.buffer = RolloutBuffer(c.n_steps, self.n_envs, self._stored_obs_space(), self._policy_action_space(),
                                    gamma=c.gamma, gae_lambda=c.gae_lambda)
        self.episode_tracker = EpisodeTracker(self.n_envs)
        self.obs_normalizers = _make_obs_normalizers(self.observation_space, c.clip_obs) if c.normalize_obs else {}
        self.reward_normalizer = RewardNormalizer(c.gamma, c.clip_reward) if c.normalize_reward else None
        self.n_updates = 0
        self._total_timesteps = 0
        self._last_obs = None  # the current observations of the training envs, normalized
        self._build_acting()
        self._build_update()

    def _policy_action_space(self) -> gym.Space:
        """Actions as the policy samples (and the buffer stores) them: Box flattened, discrete ones from 0."""
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            return gym.spaces.Box(space.low.reshape(-1), space.high.reshape(-1), dtype=np.float32)
        if isinstance(space, gym.spaces.Discrete):
            return gym.spaces.Discrete(int(space.n))
        return gym.spaces.MultiDiscrete(space.nvec)

    def _stored_obs_space(self) -> gym.Space:
        """The rollout buffer's observation space: normalized keys become float32 Boxes."""
        space = self.observation_space
        if not self.config.normalize_obs:
            return space
        clip = self.config.clip_obs
        if isinstance(space, gym.spaces.Dict):
            return gym.spaces.Dict({k: gym.spaces.Box(-clip, clip, s.shape, np.float32) if _normalizable(s) else s
                                    for k, s in space.spaces.items()})
        return gym.spaces.Box(-clip, clip, space.shape, np.float32)

    # ----- acting: numpy forward pass while weights are frozen, else one tf.function call --------
    def _build_acting(self) -> None:
        m = self.model
        try:
            self._np_pi = NumpyModule(m.pi_torso, m.policy_head)
            self._np_vf = NumpyModule(m.vf_torso, m.value_head)
        except NumpyUnsupported:
            self._np_pi = self._np_vf = None
        # The variables the numpy copies read, in order; the update returns their new values.
        self._acting_variables = [] if self._np_pi is None else self._np_pi.variables + self._np_vf.variables
        sig = obs_signature(self.observation_space)

        @tf.function(autograph=False, input_signature=[sig, tf.TensorSpec([2], tf.int32)])
        def tf_policy_step(obs, seed):
            dist, value = self.model(obs)
            action = dist.sample(seed=seed)
            return action, dist.log_prob(action), value

        @tf.function(autograph=False, input_signature=[sig])
        def tf_mode(obs):
            dist, _ = self.model(obs)
            return dist.mode()

        @tf.function(autograph=False, input_signature=[sig])
        def tf_value(obs):
            return self.model.value(obs)

        # Only used when numpy cannot act; their concrete functions are made on first call (cheaper dispatch).
        self._tf_policy_step, self._tf_mode, self._tf_value = (_Concrete(f) for f in (tf_policy_step, tf_mode, tf_value))
        self._sync_acting()

    def _sync_acting(self, values: Optional[List[np.ndarray]] = None) -> None:
        """Copy the current weights to the numpy policy (from `values` when the update returned them)."""
        if self._np_pi is None:
            return
        if values is None:
            values = [v.numpy() for v in self._acting_variables]
        n = len(self._np_pi.variables)
        self._np_pi.sync(values[:n])
        self._np_vf.sync(values[n:])

    def _policy_step(self, obs) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled (unclipped) actions, their log-probs and V(obs) for a batch of (normalized) observations."""
        if self._np_pi is not None:
            action, log_prob = self._np_pi(obs).sample_and_log_prob(self.rng)
            return action, log_prob, self._np_vf(obs)
        seed = self.rng.integers(0, 2**31 - 1, size=2).astype(np.int32)
        action, log_prob, value = self._tf_policy_step(to_tf_obs(self.observation_space, obs), seed)
        return action.numpy(), log_prob.numpy(), value.numpy()

    def _values(self, obs) -> np.ndarray:
        if self._np_vf is not None:
            return self._np_vf(obs)
        return self._tf_value(to_tf_obs(self.observation_space, obs)).numpy()

    def _act_batch(self, obs, deterministic: bool) -> np.ndarray:
        obs = self._normalize_obs(obs)
        if self._np_pi is not None:
            dist = self._np_pi(obs)
            action = dist.mode() if deterministic else dist.sample(self.rng)
        elif deterministic:
            action = self._tf_mode(to_tf_obs(self.observation_space, obs)).numpy()
        else:
            action = self._policy_step(obs)[0]
        return self._env_actions(action)

    def _env_actions(self, action: np.ndarray) -> np.ndarray:
        """What the env receives for policy actions (leading batch dim): Box actions reshaped and clipped to
        the bounds (the unclipped sample is what is stored), discrete ones shifted by the space's `start`."""
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            action = np.reshape(action, (-1,) + space.shape)
            return np.clip(action, space.low, space.high).astype(space.dtype)
        return (np.asarray(action) + space.start).astype(space.dtype)

    # ----- normalization -----------------------------------------------------------------------
    def _normalize_obs(self, obs, update: bool = False):
        if not self.obs_normalizers:
            return obs
        if not isinstance(obs, Mapping):
            norm = self.obs_normalizers[None]
            if update:
                norm.update(obs)
            return norm.normalize(obs)
        out = dict(obs)
        for key, norm in self.obs_normalizers.items():
            if update:
                norm.update(obs[key])
            out[key] = norm.normalize(obs[key])
        return out

    # ----- the fused update ---------------------------------------------------------------------
    def _build_update(self) -> None:
        """Compile one minibatch step, and the whole update (all epochs x minibatches) as ONE call."""
        c = self.config
        model, opt = self.model, self.optimizer
        variables = list(model.trainable_variables)
        n = c.n_steps * self.n_envs
        self._n_minibatches = math.ceil(n / c.batch_size)  # per epoch; the last one may be partial
        padded = self._n_minibatches * c.batch_size
        batch_size, n_epochs, n_mb = c.batch_size, c.n_epochs, self._n_minibatches
        # Rows past the end of an epoch's permutation are padding, masked out of every mean.
        mask_np = (np.arange(padded) < n).astype(np.float32)
        loss_kwargs = dict(ent_coef=float(c.ent_coef), vf_coef=float(c.vf_coef),
                           normalize_advantage=bool(c.normalize_advantage) and batch_size > 1)
        use_vf_clip, target_kl = c.clip_range_vf is not None, c.target_kl
        acting = self._acting_variables

        def minibatch_step(data, idx, mask, clip, clip_vf):
            mb = tf.nest.map_structure(lambda x: tf.gather(x, idx), data)  # [batch_size, ...] each
            with tf.GradientTape() as tape:
                dist, value = model(mb["obs"])
                loss, metrics = ppo_loss(dist, value, mb, clip_range=clip, clip_range_vf=clip_vf if use_vf_clip else None,
                                         mask=mask, **loss_kwargs)
            grads = tape.gradient(loss, variables)
            if target_kl is None:
                metrics["grad_norm"] = opt.apply(grads, variables)
                return metrics, tf.constant(True)
            # SB3: a minibatch whose KL is already too large is not applied, and the update stops.
            ok = metrics["approx_kl"] <= 1.5 * target_kl
            metrics["grad_norm"] = tf.cond(ok, lambda: opt.apply(grads, variables), lambda: tf.linalg.global_norm(grads))
            return metrics, ok

        data_sig = {"obs": obs_signature(self.observation_space, (n,)),
                    "action": tf.TensorSpec((n,) + self._action_shape(), self._action_dtype()),
                    **{k: tf.TensorSpec((n,), tf.float32) for k in ("log_prob", "value", "advantage", "return")}}
        schedule_sig = tf.TensorSpec([3], tf.float32)  # learning rate, clip range, value clip range

        @tf.function(jit_compile=c.jit_compile, autograph=False,
                     input_signature=[data_sig, tf.TensorSpec([n_epochs * padded], tf.int32), schedule_sig])
        def fused_update(data, perms, schedule):
            """perms: n_epochs padded permutations of the rollout rows, concatenated."""
            opt.learning_rate.assign(schedule[0])
            clip, clip_vf = schedule[1], schedule[2]
            full_mask = tf.constant(mask_np)

            def body(j, keep, count, sums):
                idx = tf.slice(perms, [j * batch_size], [batch_size])
                mask = None if n == padded else tf.slice(full_mask, [(j % n_mb) * batch_size], [batch_size])
                metrics, ok = minibatch_step(data, idx, mask, clip, clip_vf)
                sums = tuple(s + tf.cast(ok, tf.float32) * metrics[k] for s, k in zip(sums, METRICS))
                return j + 1, ok, count + tf.cast(ok, tf.float32), sums

            zeros = tuple(tf.zeros([]) for _ in METRICS)
            _, _, count, sums = tf.while_loop(lambda j, keep, count, sums: tf.logical_and(j < n_epochs * n_mb, keep),
                                              body, (tf.constant(0), tf.constant(True), tf.zeros([]), zeros))
            means = tf.stack([s / tf.maximum(count, 1.0) for s in sums] + [count])
            # The new acting weights, then the global norm of all weights (NaN or inf once one is: tlrl.finite).
            return means, [tf.identity(v) for v in acting] + [tf.linalg.global_norm(variables)]

        @tf.function(autograph=False, input_signature=[data_sig, tf.TensorSpec([batch_size], tf.int32),
                                                       tf.TensorSpec([batch_size], tf.float32), schedule_sig])
        def train_step(data, idx, mask, schedule):
            """One minibatch step (the unfused reference: the fused update is a loop of exactly this)."""
            opt.learning_rate.assign(schedule[0])
            metrics, _ = minibatch_step(data, idx, None if n == padded else mask, schedule[1], schedule[2])
            return metrics

        self._fused_update, self._train_step, self._mask = fused_update, train_step, mask_np
        self._fused_call = _Concrete(fused_update)  # skips ~1 ms of signature matching per call

    def _action_shape(self) -> Tuple[int, ...]:
        return tuple(self._policy_action_space().shape)

    def _action_dtype(self) -> tf.DType:
        return tf.float32 if isinstance(self.action_space, gym.spaces.Box) else tf.int64

    def _permutations(self) -> np.ndarray:
        """n_epochs shuffles of the rollout rows, each padded to whole minibatches (drawn from self.rng)."""
        n = self.config.n_steps * self.n_envs
        padded = self._n_minibatches * self.config.batch_size
        perms = np.zeros((self.config.n_epochs, padded), np.int32)
        perms[:, :n] = self.rng.permuted(np.broadcast_to(np.arange(n, dtype=np.int32), (self.config.n_epochs, n)), axis=1)
        return perms.reshape(-1)

    def _update_data(self) -> Dict[str, Any]:
        d = self.buffer.get()
        return {"obs": to_tf_obs(self.observation_space, d["obs"]),
                "action": d["action"].astype(self._action_dtype().as_numpy_dtype),
                "log_prob": d["log_prob"], "value": d["value"], "advantage": d["advantage"], "return": d["return"]}

    def _update(self) -> Dict[str, float]:
        """Set schedules from progress, run the fused update, refresh the numpy policy; return metrics."""
        progress = self.progress
        lr, clip = float(self._lr(progress)), float(self._clip(progress))
        clip_vf = float(self._clip_vf(progress)) if self._clip_vf is not None else 0.0
        data = self._update_data()
        means, weights = self._fused_call(data, self._permutations(), np.array([lr, clip, clip_vf], np.float32))
        self._sync_acting([w.numpy() for w in weights[:-1]])
        means = means.numpy()
        steps = int(means[-1])
        self.n_updates += steps
        metrics = {k: float(v) for k, v in zip(METRICS, means[:-1])}
        metrics["weight_norm"] = float(weights[-1])
        values, returns = data["value"], data["return"]
        var = float(np.var(returns))
        metrics.update(explained_variance=float("nan") if var == 0 else 1.0 - float(np.var(returns - values)) / var,
                       learning_rate=lr, clip_range=clip, gradient_steps=float(steps), n_updates=float(self.n_updates))
        if isinstance(self.model.policy_head, GaussianHead) and not self.model.policy_head.state_dependent_std:
            metrics["std"] = float(np.exp(self.model.policy_head.log_std.numpy()).mean())
        return metrics

    # ----- the training loop --------------------------------------------------------------------
    @property
    def progress(self) -> float:
        """Progress in [0, 1] of the current `learn` call (SB3 convention: num_timesteps / total at its end)."""
        return min(self.num_timesteps / max(self._total_timesteps, 1), 1.0)

    def _collect_rollout(self) -> List[float]:
        """Fill the rollout buffer with n_steps vector steps; return returns of episodes that ended."""
        env, buf, tracker, rnorm = self.env, self.buffer, self.episode_tracker, self.reward_normalizer
        buf.reset()
        ended: List[float] = []
        if self._last_obs is None:  # a fresh env: its first observations enter the statistics once
            self._last_obs = self._normalize_obs(self._obs, update=True)
        obs = self._last_obs
        for _ in range(self.config.n_steps):
            action, log_prob, value = self._policy_step(obs)
            next_obs, reward, terminated, truncated, info = env.step(self._env_actions(action))
            done = terminated | truncated
            check_env_step(env, self.num_timesteps + self.n_envs, next_obs, reward, info, done)
            ended += tracker.update(reward, done)
            if rnorm is not None:
                rnorm.update(reward, done)
                reward = rnorm.normalize(reward)
            final_value = None
            bootstrap = truncated & ~terminated
            if bootstrap.any():  # V(true final obs), not V(first obs of the next episode)
                final_obs = self._normalize_obs(true_next_obs(next_obs, info, bootstrap))
                final_value = np.where(bootstrap, self._values(final_obs), 0.0)
            buf.add(obs, action, reward, terminated, truncated, value, log_prob, final_value)
            self._obs = next_obs
            obs = self._normalize_obs(next_obs, update=True)
            self.num_timesteps += self.n_envs
        self._last_obs = obs  # normalized with the statistics of its time, as stored
        buf.compute_returns_and_advantages(self._values(obs))
        return ended

    def learn(self, total_steps: int, callback: Optional[Callable[..., Any]] = None) -> "PPO":
        """Train for `total_steps` more env steps (counted over all envs, rounded up to whole rollouts).

        `callback(agent, info)` is called after every update with `info` holding `num_timesteps`,
        `metrics` (every loss term, `steps_per_second`, ...), `episode_returns` (returns of
        episodes finished since the previous call), `progress` and `n_updates`; returning False
        stops training.
        """
        total_steps = check_total_steps(total_steps, self.num_timesteps)
        if self.env is None:
            self._ensure_train_env()
            self._last_obs = None
        start = self.num_timesteps
        self._total_timesteps = start + int(total_steps)
        t0 = time.perf_counter()
        while self.num_timesteps < self._total_timesteps:
            ended = self._collect_rollout()
            metrics = self._update()
            check_metrics(metrics, step=self.num_timesteps, owner=type(self).__name__)  # before logging, saving
            metrics["steps_per_second"] = (self.num_timesteps - start) / max(time.perf_counter() - t0, 1e-9)
            if callback is not None:
                info = {"num_timesteps": self.num_timesteps, "metrics": metrics, "episode_returns": ended,
                        "progress": self.progress, "n_updates": self.n_updates}
                if callback(self, info) is False:
                    break
        return self

    # ----- persistence --------------------------------------------------------------------------
    def _trackables(self) -> Dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer}

    def _numpy_state(self) -> Dict[str, np.ndarray]:
        state = {"ppo_counters": np.array([self.n_updates, self._total_timesteps], np.int64)}
        for key, norm in self.obs_normalizers.items():
            for k, v in norm.get_state().items():
                state[f"obs_norm/{'' if key is None else key}/{k}"] = v
        if self.reward_normalizer is not None:
            for k, v in self.reward_normalizer.get_state().items():
                state[f"reward_norm/{k}"] = v
        return state

    def _set_numpy_state(self, state: Mapping[str, np.ndarray]) -> None:
        if "ppo_counters" in state:
            self.n_updates, self._total_timesteps = (int(x) for x in state["ppo_counters"])
        for key, norm in self.obs_normalizers.items():
            prefix = f"obs_norm/{'' if key is None else key}/"
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if not sub:
                raise ValueError("the saved agent has no observation statistics, but normalize_obs=True")
            norm.set_state(sub)
        if self.reward_normalizer is not None:
            sub = {k[len("reward_norm/"):]: v for k, v in state.items() if k.startswith("reward_norm/")}
            if sub:
                self.reward_normalizer.set_state(sub)

    def restore_state(self, path: str, meta: Optional[Dict[str, Any]] = None) -> None:
        super().restore_state(path, meta)
        self._sync_acting()  # the numpy policy must act with the restored weights


class _Concrete:
    """Call a `tf.function` with an input signature through its concrete function, made on first call."""

    def __init__(self, function):
        self.function, self._concrete = function, None

    def __call__(self, *args):
        if self._concrete is None:
            self._concrete = self.function.get_concrete_function()
        return self._concrete(*args)


def _normalizable(space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Dict):
        return any(_normalizable(s) for s in space.spaces.values())
    return isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)


def _make_obs_normalizers(space: gym.Space, clip: float) -> Dict[Optional[str], ObservationNormalizer]:
    """One normalizer for a Box space (key None), or one per float Box key of a Dict space."""
    if isinstance(space, gym.spaces.Dict):
        return {k: ObservationNormalizer(s.shape, clip) for k, s in space.spaces.items() if _normalizable(s)}
    return {None: ObservationNormalizer(space.shape, clip)}


def _batch_of(space: gym.Space, n: int):
    """A batch of `n` zero observations of `space` (to build the networks)."""
    if isinstance(space, gym.spaces.Dict):
        return {k: _batch_of(s, n) for k, s in space.spaces.items()}
    return np.zeros((n,) + tuple(space.shape), space.dtype)
