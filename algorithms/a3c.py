"""A3C: asynchronous advantage actor-critic.

Mnih, Badia, Mirza, Graves, Lillicrap, Harley, Silver, Kavukcuoglu (2016), "Asynchronous
Methods for Deep Reinforcement Learning", ICML. https://arxiv.org/abs/1602.01783

`n_workers` workers each act in their own env copy for `n_steps` steps (the paper's t_max)
with their local weights, compute the gradient of the n-step advantage actor-critic loss,
push it to the shared parameters and pull the fresh weights. They are the source of
`tlrl.loop.train` (`tlrl.runner.gradient_source`) and run where `backend` says: on threads,
in processes, in Ray actors, or in the caller's thread, in turn ("sync"). With `n_workers=1`
(in this thread: A2C-like) or `backend="sync"`, two runs with the same seed are identical;
with more asynchronous workers the order of the updates depends on scheduling. A worker that
raises or dies is restarted (up to `max_worker_restarts` per `learn` call).

Speed: workers act with a numpy forward pass of their weights and compute returns, loss and
gradients in one compiled call per rollout; the learner applies a gradient in numpy. A single
worker trains the shared network directly, gradient and update fused in one call per rollout.
Differences from the paper, all configurable: Adam instead of shared RMSProp, gradient
clipping by global norm, and each worker may step a small vector env (`n_envs`).

>>> from tlrl.algorithms import A3C
>>> agent = A3C("CartPole-v1", seed=0, n_workers=1, n_steps=8, net_arch=[16])
>>> _ = agent.learn(64)
>>> agent.num_timesteps
64
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.agent import BaseAgent
from tlrl.compiled import compile_fixed
from tlrl.core import CollectPlan
from tlrl.hyperparams import require
from tlrl.modules import ValueHead, make_policy_head, make_torso
from tlrl.optim import Adam
from tlrl.runner.gradient_source import REMOTE, GradientSource, GradientWorkers, WorkerOptions
from tlrl.runner.gradient_worker import GradientWorker, numpy_policy
from tlrl.runner.learner import Learner
from tlrl.schedules import make_schedule
from tlrl.spaces import obs_signature, to_env_actions, to_tf_obs, zeros_batch


@dataclasses.dataclass
class A3CConfig(WorkerOptions):
    """Hyperparameters of A3C (SB3 A2C names where they exist); where workers run: `WorkerOptions`."""

    #: workers acting and pushing gradients asynchronously; 1 = synchronous and deterministic.
    n_workers: int = 2
    #: envs per worker (a small vector env; the paper used 1).
    n_envs: int = 1
    #: steps per env between two gradient pushes of a worker (the paper's t_max).
    n_steps: int = 5
    #: step size: a number, "lin_<start>" (linear to 0) or a callable of progress (`num_timesteps / total_timesteps`).
    learning_rate: Union[float, str, Callable[[float], float]] = 7e-4
    #: discount factor.
    gamma: float = 0.99
    #: entropy bonus coefficient.
    ent_coef: float = 0.01
    #: value loss coefficient (the value loss is the mean squared error of V against the n-step return).
    vf_coef: float = 0.5
    #: clip each pushed gradient to this global norm (None: no clipping).
    max_grad_norm: Optional[float] = 0.5
    #: normalize advantages within each rollout.
    normalize_advantage: bool = False
    #: hidden layer sizes of the policy and value MLPs.
    net_arch: Tuple[int, ...] = (64, 64)
    #: activation of the hidden layers.
    activation: str = "tanh"
    #: one torso for policy and value (as in the paper's conv nets) instead of two.
    share_torso: bool = False
    #: Adam epsilon.
    adam_eps: float = 1e-5
    #: compile the worker gradient step and the learner update with XLA.
    jit_compile: bool = False
    def __post_init__(self):
        super().__post_init__()
        self.net_arch = tuple(self.net_arch)

    #: The interval of each float field (checked, with NaN and infinity refused, by `tlrl.hyperparams.build_config`).
    RANGES: ClassVar[Dict[str, str]] = {
        "learning_rate": "(0, inf)", "gamma": "[0, 1]", "ent_coef": "[0, inf)", "vf_coef": "[0, inf)",
        "max_grad_norm": "(0, inf)", "adam_eps": "(0, inf)", "worker_timeout": "(0, inf)"}

    def validate(self) -> None:
        require(self.n_workers >= 1, f"n_workers must be at least 1, got {self.n_workers}")
        require(self.n_envs >= 1, f"n_envs must be at least 1, got {self.n_envs}")
        require(self.n_steps >= 1, f"n_steps must be at least 1, got {self.n_steps}")
        require(len(self.net_arch) >= 1 and all(h > 0 for h in self.net_arch),
                f"net_arch must list positive layer sizes, got {self.net_arch}")


class ActorCritic(tf.Module):
    """Policy `pi(a|s)` (a tfp distribution) and value `V(s)`, built eagerly from the spaces."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, net_arch: Sequence[int] = (64, 64),
                 activation: str = "tanh", share_torso: bool = False):
        super().__init__(name="actor_critic")
        self.pi_torso = make_torso(observation_space, hidden=tuple(net_arch), activation=activation)
        self.vf_torso = self.pi_torso if share_torso else make_torso(
            observation_space, hidden=tuple(net_arch), activation=activation)
        self.pi_head = make_policy_head(action_space)
        self.vf_head = ValueHead()
        self(zeros_batch(observation_space, 1))  # create the variables now

    def __call__(self, obs):
        features = self.pi_torso(obs)
        values = self.vf_head(features if self.vf_torso is self.pi_torso else self.vf_torso(obs))
        return self.pi_head(features), values  # a distribution with batch shape [B], values [B]

    def value(self, obs) -> tf.Tensor:
        return self.vf_head(self.vf_torso(obs))

    def policy_parts(self) -> tuple:
        return self.pi_torso, self.pi_head


def a2c_loss(dist, values, actions, returns, *, ent_coef: float, vf_coef: float, normalize_advantage: bool):
    """The n-step advantage actor-critic loss of one rollout.

    `A = R - V(s)` (no gradient), policy loss `-mean(A log pi(a|s))`, value loss
    `mean((R - V(s))^2)`, entropy bonus `mean(H(pi(.|s)))`:
    `loss = policy_loss + vf_coef * value_loss - ent_coef * entropy`.

    Args:
        dist: policy distribution over the batch; values: `[B]` V(s);
        actions: `[B, ...]` actions taken; returns: `[B]` n-step returns.
    """
    advantages = tf.stop_gradient(returns - values)
    if normalize_advantage:
        mean, var = tf.nn.moments(advantages, axes=[0])
        advantages = (advantages - mean) / (tf.sqrt(var) + 1e-8)
    policy_loss = -tf.reduce_mean(advantages * dist.log_prob(actions))
    value_loss = tf.reduce_mean(tf.square(returns - values))
    entropy = tf.reduce_mean(dist.entropy())
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return loss, {"loss": loss, "policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


class A3C(BaseAgent):
    """Asynchronous advantage actor-critic (Mnih et al., 2016) with workers on threads, processes or Ray.

    Args:
        env: env id, "package.module:Class", factory, or (with one worker and one env) an instance.
        seed: seeds networks, workers and envs. Runs are reproducible with `n_workers=1` or `backend="sync"`.
        **hyperparameters: fields of `A3CConfig`.

    `learn(total_steps)` counts env steps over all workers; each worker claims
    `n_steps * n_envs` steps before a rollout, so a call trains `total_steps` rounded up to
    whole rollouts. `workers` are the agent's `GradientWorkers` (`workers.pool`: the last run's).
    """

    Config = A3CConfig

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        c = self.config
        if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.Box)):
            raise TypeError(f"A3C supports Discrete, MultiDiscrete and Box action spaces, got {action_space}")
        if np.any(getattr(action_space, "start", 0) != 0):
            raise TypeError(f"A3C needs discrete actions that start at 0, got {action_space}")
        if isinstance(self.env_spec, gym.Env) and c.n_workers * c.n_envs > 1:
            raise ValueError(
                f"A3C with n_workers={c.n_workers} and n_envs={c.n_envs} needs one env per worker and env; pass an "
                f"env id, 'package.module:Class' or a factory instead of an env instance.")
        self._check_backend(c.backend)

    def _check_backend(self, backend: str) -> None:
        if isinstance(self.env_spec, gym.Env) and backend in REMOTE:
            raise ValueError(f"A3C with backend={backend!r} builds each worker's env in the worker; pass an env id "
                             f"or 'package.module:Class' instead of an env instance.")

    def build(self) -> None:
        c = self.config
        self.plan = CollectPlan(steps=c.n_steps, whole=True)  # per worker: the workers collect, not self.collector
        self._model_fn = functools.partial(ActorCritic, self.observation_space, self.action_space, c.net_arch,
                                           c.activation, c.share_torso)
        self.network = self._model_fn()  # the shared (global) parameters
        self.learning_rate_fn = make_schedule(c.learning_rate, "learning_rate")
        self.optimizer = Adam(self.learning_rate_fn(0.0), eps=c.adam_eps, max_grad_norm=c.max_grad_norm)
        self.learner = Learner(self.network.trainable_variables, self.optimizer, jit_compile=c.jit_compile)
        self._loss_fn = functools.partial(a2c_loss, ent_coef=c.ent_coef, vf_coef=c.vf_coef,
                                          normalize_advantage=c.normalize_advantage)
        self.workers = GradientWorkers(self._worker_factory, self._draw_seed, c.n_workers, name="tlrl-a3c-worker")
        # Acting on the shared network: numpy forward pass, re-synced when the weights changed.
        self._np_policy, _ = numpy_policy(self.network, self.network.trainable_variables, self.observation_space)
        self._np_version = -1
        self._act_tf = compile_fixed(self._act_graph, [obs_signature(self.observation_space),
                                                       tf.TensorSpec([], tf.bool), tf.TensorSpec([2], tf.int32)])

    # ----- acting -------------------------------------------------------------------------
    def _act_graph(self, obs, deterministic, seed):
        dist, _ = self.network(obs)
        return tf.cond(deterministic, lambda: tf.cast(dist.mode(), dist.dtype), lambda: dist.sample(seed=seed))

    def act_batch(self, obs, deterministic: bool) -> np.ndarray:
        if self._np_policy is not None:
            with self.learner.lock:
                if self._np_version != self.learner.version:
                    self._np_policy.sync()
                    self._np_version = self.learner.version
                dist = self._np_policy(obs)
            return to_env_actions(self.action_space, dist.mode() if deterministic else dist.sample(self.rng))
        seed = self.rng.integers(0, 2**31 - 1, size=2).astype(np.int32)
        with self.learner.lock:
            actions = self._act_tf(to_tf_obs(self.observation_space, obs), np.bool_(deterministic), seed).numpy()
        return to_env_actions(self.action_space, actions)

    def policy_graph(self, obs) -> tf.Tensor:
        """The mode of pi(.|obs): Box actions clipped to the bounds, in the action space's dtype."""
        dist, _ = self.network(obs)
        actions, space = dist.mode(), self.action_space
        if isinstance(space, gym.spaces.Box):
            actions = tf.clip_by_value(actions, space.low, space.high)
        return tf.cast(actions, tf.as_dtype(np.dtype(space.dtype)))

    def acting_variables(self) -> List[tf.Variable]:
        return list(self.network.trainable_variables)

    def get_weights(self) -> List[np.ndarray]:
        with self.learner.lock:  # the variables hold the learner's latest update
            return super().get_weights()

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        with self.learner.lock:  # the learner reads the new values at its next update
            super().set_weights(weights)

    def weights_changed(self) -> None:
        self._np_version = -1  # acting re-syncs; workers get the weights with their next rollout

    # ----- training -----------------------------------------------------------------------
    def _draw_seed(self) -> Optional[int]:
        return None if self.seed is None else int(self.rng.integers(0, 2**31 - 1))

    def _worker_factory(self, seed: Optional[int], shared: bool) -> Callable[[], GradientWorker]:
        """A zero-argument factory of one worker (its env and network built where it is called); picklable
        unless `shared` (one in-process worker, which trains the shared network itself, in one call per rollout)."""
        from tlrl.envs import make_vector_env

        c = self.config
        env_fn = functools.partial(make_vector_env, self.env_spec, c.n_envs, kwargs=self.env_kwargs)
        model_fn = (lambda: self.network) if shared else self._model_fn
        return functools.partial(GradientWorker, env_fn, model_fn, self._loss_fn, n_steps=c.n_steps, gamma=c.gamma,
                                 seed=seed, jit_compile=c.jit_compile)

    def worker_source(self, backend: Optional[str] = None, workers: Optional[int] = None,
                      **options: Any) -> GradientSource:
        """What `learn` trains from (`tlrl.loop.train(agent, n, callback, source=...)`): the workers on `backend`
        (None: `config.backend`); `options` (fields of `WorkerOptions`) replace the config's for this source."""
        c = self.config
        if workers is not None and workers != c.n_workers:
            raise ValueError(f"A3C was built with n_workers={c.n_workers}; build it with n_workers={workers} to run "
                             f"{workers} workers")
        options = WorkerOptions.of(c, backend=backend, **options)
        self._check_backend(options.backend)
        return GradientSource(self, self.workers, self.learner, self.learning_rate_fn, c.n_steps * c.n_envs, options)

    def learn(self, total_steps: int, callback=None) -> "A3C":
        """Train for `total_steps` more env steps (all workers together) in `tlrl.loop.train`.

        `callback(agent, info)` runs after every applied update (`info` as for `BaseAgent.learn`, plus
        `worker` and `version`). After `max_worker_restarts` restarts, a failing worker stops training with
        `tlrl.runner.WorkerError`. Process and Ray workers serve the whole call (until `close()` with
        `keep_workers=True`)."""
        from tlrl.loop import train

        return train(self, total_steps, callback, source=self.worker_source())

    def start_workers(self) -> float:
        """Start the process or Ray workers now, for the next `learn`; returns the seconds it took to start them."""
        return self.workers.start(WorkerOptions.of(self.config), self.learner)

    def cut_episodes(self) -> None:
        """The cut at a checkpoint: in-process workers start over at their next rollout with fresh envs seeded as
        a loaded agent's (so a resumed synchronous run is exact); process or Ray workers go on."""
        super().cut_episodes()
        self.workers.cut()

    def close(self) -> None:
        """Close the in-process workers' envs and stop process or Ray workers."""
        super().close()
        self.workers.close()

    # ----- persistence -----------------------------------------------------------------
    def trackables(self) -> Dict[str, Any]:
        return {"network": self.network, "optimizer": self.optimizer}

    def save(self, path: str) -> None:
        """Save (safe while workers run: the learner's lock keeps updates out during the write)."""
        with self.learner.lock:
            super().save(path)
