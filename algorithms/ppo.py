"""Proximal Policy Optimization with a clipped objective and GAE.

Schulman, Wolski, Dhariwal, Radford, Klimov (2017), "Proximal Policy Optimization Algorithms",
arXiv:1707.06347; advantages by GAE(lambda) (Schulman et al., 2016, arXiv:1506.02438).
Conventions and defaults follow Stable-Baselines3 (same hyperparameter names), and the
implementation details of Huang et al. (2022, "The 37 Implementation Details of PPO"):
orthogonal init (sqrt(2) torso, 0.01 policy, 1 value), per-minibatch advantage
normalization, global gradient clipping, optional value clipping, entropy bonus.

One iteration of `tlrl.loop` (plan: `n_steps` vector steps, whole rollouts): the collector calls
`explore` (actions, log-probs, values), `add` (reward normalization, V(true final obs) where an
episode was truncated, the rollout buffer) and `observe` (observation statistics) each step, then
`update(obs)`: GAE bootstrapped from V(obs), and the fused update.

Where the time goes, and what tlrl does about it (small networks on CPU cost calls, not FLOPs):

- Acting: during a rollout the weights are frozen, so actions, log-probs and values for all
  envs come from one numpy forward pass (`tlrl.numpy_policy`), sampled with `self.rng`
  (exact and seeded). Networks numpy cannot run (CNNs, Keras) use one compiled TF call.
- Updating: all `n_epochs` x minibatches run in ONE compiled call (`FusedUpdate`: `tf.while_loop`,
  XLA), fed with permutations drawn in numpy from `self.rng`; it returns the new acting weights
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

from typing import Any, Dict, List, Mapping, Optional, Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.agent import BaseAgent
from tlrl.algorithms.ppo_parts import METRICS, ActorCritic, FusedUpdate, PPOConfig, ppo_loss  # noqa: F401 - public
from tlrl.algorithms.ppo_parts import policy_action_space
from tlrl.buffers import RolloutBuffer
from tlrl.compiled import compile_fixed
from tlrl.core import CollectPlan, Extras, Metrics, Observation, Transition
from tlrl.envs import RewardNormalizer
from tlrl.modules import GaussianHead
from tlrl.numpy_policy import NumpyModule, NumpyUnsupported
from tlrl.obs_normalizers import ObsNormalizers, normalizable
from tlrl.optim import Adam
from tlrl.schedules import make_schedule
from tlrl.spaces import obs_signature, tf_env_actions, to_env_actions, to_tf_obs, zeros_batch


class PPO(BaseAgent):
    """PPO agent: `PPO(env, seed=..., **hyperparameters)` (see `PPOConfig`).

    Attributes:
        model: the `ActorCritic` networks; `optimizer`: its `Adam`.
        buffer: the `RolloutBuffer` of the current rollout.
        obs_normalizers: `ObsNormalizers` (empty unless `normalize_obs`); `reward_normalizer`: a
            `RewardNormalizer` or None.
    """

    Config = PPOConfig

    # ----- construction ------------------------------------------------------------------------
    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.Box)):
            raise TypeError(f"PPO supports Discrete, MultiDiscrete and Box action spaces, got {action_space}. "
                            f"Wrap the env to map your actions to one of those.")
        if isinstance(action_space, gym.spaces.Box) and not np.issubdtype(action_space.dtype, np.floating):
            raise TypeError(f"PPO needs a float Box action space for its Gaussian policy, got dtype {action_space.dtype}")
        if isinstance(action_space, gym.spaces.MultiDiscrete) and action_space.nvec.ndim != 1:
            raise TypeError(f"PPO supports 1-D MultiDiscrete action spaces, got nvec of shape {action_space.nvec.shape}")
        if self.config.normalize_obs and not normalizable(observation_space):
            raise TypeError(f"normalize_obs=True needs float Box observations (or a Dict with some), got "
                            f"{observation_space}; images and discrete observations are not normalized")

    def build(self) -> None:
        c = self.config
        self.plan = CollectPlan(steps=c.n_steps, whole=True)
        self._lr = make_schedule(c.learning_rate, "learning_rate")
        self._clip = make_schedule(c.clip_range, "clip_range")
        self._clip_vf = None if c.clip_range_vf is None else make_schedule(c.clip_range_vf, "clip_range_vf")
        self.model = ActorCritic(self.observation_space, self.action_space, c)
        self.model(zeros_batch(self.observation_space, 1))  # create the variables eagerly
        self.optimizer = Adam(self._lr(0.0), max_grad_norm=c.max_grad_norm)
        self.optimizer.build(self.model.trainable_variables)
        self.obs_normalizers = ObsNormalizers(self.observation_space, c.clip_obs, enabled=c.normalize_obs)
        self.buffer = RolloutBuffer(c.n_steps, self.n_envs, self.obs_normalizers.stored_space(),
                                    policy_action_space(self.action_space), gamma=c.gamma, gae_lambda=c.gae_lambda)
        self.reward_normalizer = RewardNormalizer(c.gamma, c.clip_reward) if c.normalize_reward else None
        self._build_acting()
        self._fused_update = FusedUpdate(self.model, self.optimizer, c, self.observation_space, self.action_space,
                                         c.n_steps * self.n_envs, self._acting_variables)

    # ----- acting: numpy forward pass while weights are frozen, else one compiled TF call ---------
    def _build_acting(self) -> None:
        m = self.model
        try:
            space = self.obs_normalizers.stored_space()
            self._np_pi = NumpyModule(m.pi_torso, m.policy_head, observation_space=space)
            self._np_vf = NumpyModule(m.vf_torso, m.value_head, observation_space=space)
        except NumpyUnsupported:
            self._np_pi = self._np_vf = None
        # The variables the numpy copies read, in order; the update returns their new values.
        self._acting_variables = [] if self._np_pi is None else self._np_pi.variables + self._np_vf.variables
        if self._np_pi is None:  # compiled only where numpy cannot act
            sig = obs_signature(self.observation_space)
            self._tf_policy_step = compile_fixed(self._policy_step_graph, [sig, tf.TensorSpec([2], tf.int32)])
            self._tf_mode = compile_fixed(lambda obs: self.model(obs)[0].mode(), [sig])
            self._tf_value = compile_fixed(self.model.value, [sig])
        self._sync_acting()

    def _policy_step_graph(self, obs, seed):
        dist, value = self.model(obs)
        action = dist.sample(seed=seed)
        return action, dist.log_prob(action), value

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

    def values(self, obs: Observation) -> np.ndarray:
        """V(obs) for a batch of (normalized) observations, `[B]`."""
        if self._np_vf is not None:
            return self._np_vf(obs)
        return self._tf_value(to_tf_obs(self.observation_space, obs)).numpy()

    def _env_actions(self, action: np.ndarray) -> np.ndarray:
        """What the env receives for policy actions: Box reshaped and clipped to the bounds (the unclipped sample
        is what is stored), discrete ones shifted by the space's `start`."""
        space = self.action_space
        return to_env_actions(space, action if isinstance(space, gym.spaces.Box) else np.asarray(action) + space.start)

    def act_batch(self, obs: Observation, deterministic: bool) -> np.ndarray:
        obs = self.obs_normalizers.normalize(obs)
        if self._np_pi is not None:
            dist = self._np_pi(obs)
            action = dist.mode() if deterministic else dist.sample(self.rng)
        elif deterministic:
            action = self._tf_mode(to_tf_obs(self.observation_space, obs)).numpy()
        else:
            action = self._policy_step(obs)[0]
        return self._env_actions(action)

    def explore(self, obs: Observation) -> Tuple[np.ndarray, Extras]:
        """Sampled actions for the envs, with `action` as sampled (stored), its `log_prob` and V(obs) `value`."""
        action, log_prob, value = self._policy_step(obs)
        return self._env_actions(action), {"action": action, "log_prob": log_prob, "value": value}

    def observe(self, obs: Observation) -> Observation:
        """Normalized observations; each batch enters the statistics once (frozen elsewhere: acting, bootstrap)."""
        return self.obs_normalizers.normalize(obs, update=True)

    def acting_variables(self) -> List[tf.Variable]:
        return list(self._acting_variables) or list(self.model.trainable_variables)

    def weights_changed(self) -> None:
        self._sync_acting()  # the numpy policy must act with the new weights

    def policy_graph(self, obs) -> tf.Tensor:
        """The mode of pi(.|obs), obs normalized with the current statistics, as the env takes it."""
        dist, _ = self.model(self.obs_normalizers.graph(obs))
        return tf_env_actions(self.action_space, dist.mode())

    # ----- the data path ---------------------------------------------------------------------
    def add(self, step: Transition, extras: Extras) -> None:
        """Normalize the rewards, bootstrap truncated episodes from V(true final obs), store in the rollout."""
        reward, rnorm = step.reward, self.reward_normalizer
        if rnorm is not None:
            rnorm.update(reward, step.terminated | step.truncated)
            reward = rnorm.normalize(reward)
        final_value = None
        bootstrap = step.truncated & ~step.terminated
        if bootstrap.any():  # V(true final obs), not V(first obs of the next episode)
            final_value = np.where(bootstrap, self.values(self.obs_normalizers.normalize(step.next_obs)), 0.0)
        self.buffer.add(step.obs, extras["action"], reward, step.terminated, step.truncated, extras["value"],
                        extras["log_prob"], final_value)

    def cut_episodes(self) -> None:
        super().cut_episodes()
        if self.reward_normalizer is not None:
            self.reward_normalizer.returns = None  # the running discounted returns start over with the envs

    # ----- the update ---------------------------------------------------------------------------
    def update(self, obs: Optional[Observation]) -> Metrics:
        """GAE over the full rollout, bootstrapped from V(obs); then the fused update, the numpy policy synced
        with its result, and the buffer emptied for the next rollout."""
        if obs is None:
            raise ValueError("PPO bootstraps from the training envs' current observations: update(obs) needs them")
        self.buffer.compute_returns_and_advantages(self.values(obs))
        progress = self.progress
        lr, clip = float(self._lr(progress)), float(self._clip(progress))
        clip_vf = float(self._clip_vf(progress)) if self._clip_vf is not None else 0.0
        data = self._update_data()
        schedule = np.array([lr, clip, clip_vf], np.float32)
        means, weights = self._fused_update.update(data, self._permutations(), schedule)
        self._sync_acting([w.numpy() for w in weights[:-1]])
        self.buffer.reset()
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

    def _permutations(self) -> np.ndarray:
        """n_epochs shuffles of the rollout rows, each padded to whole minibatches (drawn from self.rng)."""
        n, c = self.config.n_steps * self.n_envs, self.config
        perms = np.zeros((c.n_epochs, self._fused_update.padded), np.int32)
        perms[:, :n] = self.rng.permuted(np.broadcast_to(np.arange(n, dtype=np.int32), (c.n_epochs, n)), axis=1)
        return perms.reshape(-1)

    def _update_data(self) -> Dict[str, Any]:
        d = self.buffer.get()
        return {"obs": to_tf_obs(self.observation_space, d["obs"]),
                "action": d["action"].astype(self._fused_update.action_dtype.as_numpy_dtype),
                "log_prob": d["log_prob"], "value": d["value"], "advantage": d["advantage"], "return": d["return"]}

    # ----- persistence --------------------------------------------------------------------------
    def trackables(self) -> Dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer}

    def numpy_state(self) -> Dict[str, np.ndarray]:
        state = self.obs_normalizers.state()
        if self.reward_normalizer is not None:
            state.update({f"reward_norm/{k}": v for k, v in self.reward_normalizer.get_state().items()})
        return state

    def set_numpy_state(self, state: Mapping[str, np.ndarray]) -> None:
        if "ppo_counters" in state:  # a save from before the counters moved to BaseAgent
            self.n_updates, self.total_timesteps = (int(x) for x in state["ppo_counters"])
        self.obs_normalizers.set_state(state)
        if self.reward_normalizer is not None:
            sub = {k[len("reward_norm/"):]: v for k, v in state.items() if k.startswith("reward_norm/")}
            if sub:
                self.reward_normalizer.set_state(sub)
