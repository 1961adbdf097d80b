"""A3C: asynchronous advantage actor-critic.

Mnih, Badia, Mirza, Graves, Lillicrap, Harley, Silver, Kavukcuoglu (2016), "Asynchronous
Methods for Deep Reinforcement Learning", ICML. https://arxiv.org/abs/1602.01783

`n_workers` workers each act in their own env copy for `n_steps` steps (the paper's t_max)
with their local weights, compute the gradient of the n-step advantage actor-critic loss,
push it to the shared parameters and pull the fresh weights. Workers run where `backend`
says (`tlrl.runner`): on threads (the default), in processes, in Ray actors (on this machine
or a cluster), or all in the caller's thread, in turn ("sync"); only numpy arrays travel
between a worker and the learner. With `n_workers=1` training is synchronous (the same loop
in the caller's thread): n-step advantage actor-critic, A2C-like, and two runs with the same
seed are identical; so are runs with `backend="sync"`. With more asynchronous workers the
order in which gradients arrive depends on scheduling, so seeded runs differ. A worker that
raises or dies is restarted (up to `max_worker_restarts` per `learn` call); its unfinished
rollout is dropped.

Speed: workers act with a numpy forward pass of their weights (frozen between pulls) and
compute returns, loss and gradients in one compiled call per rollout; the learner applies a
gradient in one more call. A single worker trains the shared network directly, with gradient
and update fused in one call per rollout.

Differences from the paper, all configurable: Adam (by default) instead of shared RMSProp,
gradient clipping by global norm, and each worker may step a small vector env (`n_envs`).

>>> from tlrl.algorithms import A3C
>>> agent = A3C("CartPole-v1", seed=0, n_workers=1, n_steps=8, net_arch=[16])
>>> _ = agent.learn(64)
>>> agent.num_timesteps
64
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, ClassVar, Dict, Optional, Sequence, Tuple, Union

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.agent import BaseAgent
from tlrl.episodes import EpisodeTracker
from tlrl.finite import check_metrics
from tlrl.hyperparams import require
from tlrl.modules import ValueHead, make_policy_head, make_torso
from tlrl.optim import Adam
from tlrl.runner.gradient import run_gradient_workers, run_local, start_workers
from tlrl.runner.pools import BACKENDS, make_pool
from tlrl.schedules import make_schedule
from tlrl.step_limits import check_total_steps
from tlrl.workers import GradientWorker, Learner
from tlrl.workers.worker import _cast_obs, _numpy_policy, input_dtype, tensor_spec


# ----- config ------------------------------------------------------------------------
@dataclasses.dataclass
class A3CConfig:
    """Hyperparameters of A3C (SB3 A2C names where they exist)."""

    #: workers acting and pushing gradients asynchronously; 1 = synchronous and deterministic.
    n_workers: int = 2
    #: envs per worker (a small vector env; the paper used 1).
    n_envs: int = 1
    #: steps per env between two gradient pushes of a worker (the paper's t_max).
    n_steps: int = 5
    #: step size: a number, "lin_<start>" (linear decay to 0 over each learn call) or a callable of progress 0->1.
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
    #: where workers run: "thread", "process", "ray", or "sync" (in the caller's thread, in turn: deterministic).
    backend: str = "thread"
    #: worker restarts allowed per learn call; the next failure stops training with WorkerError.
    max_worker_restarts: int = 3
    #: "thread"/"process"/"ray": seconds a worker may take for a rollout before it counts as dead, is stopped and
    #: restarted (None: wait forever); a worker's first call also starts it and gets at least 300 s.
    worker_timeout: Optional[float] = 60.0
    #: backend "ray": address of a running cluster ("auto", "host:6379"); None starts a local Ray on 127.0.0.1.
    ray_address: Optional[str] = None
    #: "process"/"ray": keep the workers running between learn calls (their envs go on) until `close()`,
    #: so their startup (seconds: TF import, tracing) is paid once; False stops them at the end of each call.
    keep_workers: bool = False

    def __post_init__(self):
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
        require(self.backend in BACKENDS, f"backend must be one of {', '.join(repr(b) for b in BACKENDS)}, "
                                          f"got {self.backend!r}")
        require(self.max_worker_restarts >= 0, f"max_worker_restarts must be >= 0, got {self.max_worker_restarts}")


# ----- networks -----------------------------------------------------------------------
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
        dummy = tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype),
                                      tensor_spec(observation_space, (1,), input_dtype))
        self(dummy)  # create the variables now

    def __call__(self, obs):
        features = self.pi_torso(obs)
        values = self.vf_head(features if self.vf_torso is self.pi_torso else self.vf_torso(obs))
        return self.pi_head(features), values  # a distribution with batch shape [B], values [B]

    def value(self, obs) -> tf.Tensor:
        return self.vf_head(self.vf_torso(obs))

    def policy_parts(self) -> tuple:
        return self.pi_torso, self.pi_head


# ----- loss -----------------------------------------------------------------------------
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


# ----- agent ------------------------------------------------------------------------------
class A3C(BaseAgent):
    """Asynchronous advantage actor-critic (Mnih et al., 2016) with workers on threads, processes or Ray.

    Args:
        env: env id, "package.module:Class", factory, or (with one worker and one env) an instance.
        seed: seeds networks, workers and envs. Runs are reproducible with `n_workers=1` only.
        **hyperparameters: fields of `A3CConfig`.

    `learn(total_steps)` counts env steps over all workers; each worker claims
    `n_steps * n_envs` steps before a rollout, so a call trains `total_steps` rounded up to
    whole rollouts.
    """

    Config = A3CConfig

    def _check_spaces(self, observation_space, action_space) -> None:
        if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.Box)):
            raise TypeError(f"A3C supports Discrete, MultiDiscrete and Box action spaces, got {action_space}")
        if isinstance(self.env_spec, gym.Env) and self.config.n_workers * self.config.n_envs > 1:
            raise ValueError(
                f"A3C with n_workers={self.config.n_workers} and n_envs={self.config.n_envs} needs one env per worker "
                f"and env; pass an env id, 'package.module:Class' or a factory instead of an env instance.")
        if isinstance(self.env_spec, gym.Env) and self.config.backend in ("process", "ray"):
            raise ValueError(f"A3C with backend={self.config.backend!r} builds each worker's env in the worker; pass "
                             f"an env id or 'package.module:Class' instead of an env instance.")

    def _build(self) -> None:
        c = self.config
        self._model_fn = functools.partial(ActorCritic, self.observation_space, self.action_space, c.net_arch,
                                           c.activation, c.share_torso)
        self.network = self._model_fn()  # the shared (global) parameters
        self.learning_rate_fn = make_schedule(c.learning_rate, "learning_rate")
        self.optimizer = Adam(self.learning_rate_fn(0.0), eps=c.adam_eps, max_grad_norm=c.max_grad_norm)
        self.learner = Learner(self.network.trainable_variables, self.optimizer, jit_compile=c.jit_compile)
        self._loss_fn = functools.partial(a2c_loss, ent_coef=c.ent_coef, vf_coef=c.vf_coef,
                                          normalize_advantage=c.normalize_advantage)
        self.workers: list = []  # in-process workers, kept across learn calls (their envs continue)
        self._worker_seeds: list = []
        #: the worker pool of the current (or last) `learn` call, for inspection.
        self.pool = None
        self.episode_tracker = EpisodeTracker(c.n_workers * c.n_envs)
        # Acting on the shared network: numpy forward pass, re-synced when the weights changed.
        self._np_policy, _ = _numpy_policy(self.network, self.network.trainable_variables)
        self._np_version = -1
        self._act_tf = tf.function(self._act_graph, input_signature=[
            tensor_spec(self.observation_space, (None,), input_dtype), tf.TensorSpec([], tf.bool),
            tf.TensorSpec([2], tf.int32)])

    # ----- acting -------------------------------------------------------------------------
    def _act_graph(self, obs, deterministic, seed):
        dist, _ = self.network(obs)
        return tf.cond(deterministic, lambda: tf.cast(dist.mode(), dist.dtype), lambda: dist.sample(seed=seed))

    def _act_batch(self, obs, deterministic: bool) -> np.ndarray:
        if self._np_policy is not None:
            with self.learner.lock:
                if self._np_version != self.learner.version:
                    self._np_policy.sync()
                    self._np_version = self.learner.version
                dist = self._np_policy(obs)
            return dist.mode() if deterministic else dist.sample(self.rng)
        seed = self.rng.integers(0, 2**31 - 1, size=2).astype(np.int32)
        with self.learner.lock:
            return self._act_tf(_cast_obs(obs, self.observation_space), tf.constant(deterministic), seed).numpy()

    # ----- training -----------------------------------------------------------------------
    def _worker_factory(self, seed: Optional[int], shared: bool = False) -> Callable[[], GradientWorker]:
        """A picklable zero-argument factory of one worker (its env and network built where it is called)."""
        c = self.config
        from tlrl.envs import make_vector_env

        if isinstance(self.env_spec, gym.Env):
            env_fn = functools.partial(make_vector_env, self.env_spec, 1, seed=seed)
        else:
            env_fn = functools.partial(make_vector_env, self.env_spec, c.n_envs, seed=seed, kwargs=self.env_kwargs)
        # One local worker trains the shared network itself (gradient and update fused in one call);
        # the others get their own copies and exchange numpy arrays with the learner.
        model_fn = (lambda: self.network) if shared else self._model_fn
        return functools.partial(GradientWorker, env_fn, model_fn, self._loss_fn, n_steps=c.n_steps, gamma=c.gamma,
                                 seed=seed, jit_compile=c.jit_compile)

    def _seeds(self, n: int) -> list:
        return [None if self.seed is None else int(self.rng.integers(0, 2**31 - 1)) for _ in range(n)]

    def _local_worker(self, i: int, attempt: int) -> GradientWorker:
        """In-process worker `i`: the kept one, or a new one after a failure (re-seeded per attempt)."""
        if attempt == 0 and self.workers[i] is not None:
            return self.workers[i]
        base = self._worker_seeds[i]
        seed = None if base is None else (base + 7919 * attempt) % (2**31 - 1)
        self.workers[i] = self._worker_factory(seed, shared=self.config.n_workers == 1)()
        return self.workers[i]

    def _make_workers(self) -> None:
        self._worker_seeds = self._seeds(self.config.n_workers)
        self.workers = [None] * self.config.n_workers
        for i in range(self.config.n_workers):
            self._local_worker(i, 0)

    def learn(self, total_steps: int, callback: Optional[Callable[..., Any]] = None) -> "A3C":
        """Train for `total_steps` more env steps (all workers together), then return self.

        `callback(agent, info)` runs in the calling thread after every applied update with
        `num_timesteps`, `metrics` (loss terms, grad_norm, learning_rate, steps_per_second),
        `episode_returns` (episodes finished in that rollout), `worker` and `version`;
        returning False stops training. A worker that raises, or whose process or actor dies,
        is restarted with its rollout dropped (at most `max_worker_restarts` times per call);
        the next failure stops all workers and is raised as `tlrl.runner.WorkerError`.
        Workers in processes or Ray actors are started by each call and stopped at its end,
        unless `keep_workers=True` (then they serve every call until `close()`).
        """
        total_steps = check_total_steps(total_steps, self.num_timesteps)
        if total_steps == 0:
            return self
        if not self.workers and self.config.backend in ("sync", "thread"):
            self._make_workers()
        start_steps, start_time = self.num_timesteps, time.perf_counter()

        def on_update(stats: Dict[str, Any]) -> Optional[bool]:
            self.num_timesteps += stats["steps"]
            returns = stats.pop("episode_returns")
            lengths = stats.pop("episode_lengths")
            check_metrics(stats, step=self.num_timesteps, owner=type(self).__name__)  # before logging, saving
            for r, n in zip(returns, lengths):
                self.episode_tracker.finished_returns.append(r)
                self.episode_tracker.finished_lengths.append(n)
                self.episode_tracker.episodes += 1
            if callback is None:
                return None
            elapsed = time.perf_counter() - start_time
            metrics = {k: float(v) for k, v in stats.items() if k not in ("steps", "worker", "version")}
            metrics["steps_per_second"] = (self.num_timesteps - start_steps) / max(elapsed, 1e-9)
            return callback(self, {"num_timesteps": self.num_timesteps, "metrics": metrics,
                                   "episode_returns": returns, "worker": stats["worker"], "version": stats["version"]})

        c, lr, total = self.config, self.learning_rate_fn, int(total_steps)
        if self.pool is not None and not self._pool_kept():
            self.pool.close()  # e.g. workers kept for another backend (a Runner's choice): stop them
        if c.backend in ("sync", "thread") and c.n_workers == 1:
            self.pool = None
            run_local(lambda attempt: self._local_worker(0, attempt), self.learner, total, on_update, lr,
                      max_worker_restarts=c.max_worker_restarts)
            return self
        if c.backend in ("sync", "thread"):  # workers kept in this process across learn calls
            def make_factory(i: int, attempt: int):
                return functools.partial(self._local_worker, i, attempt)

            self.pool = make_pool(c.backend, make_factory, c.n_workers, close_workers=False, name="tlrl-a3c-worker",
                                  call_timeout=c.worker_timeout)
        elif not self._pool_kept():
            self.pool = self._remote_pool()
        run_gradient_workers(self.pool, self.learner, total, on_update, lr, steps_per_rollout=c.n_steps * c.n_envs,
                             max_worker_restarts=c.max_worker_restarts,
                             keep_pool=c.keep_workers and c.backend in ("process", "ray"))
        return self

    def _remote_pool(self):
        """A new pool of process or Ray workers, built there from picklable factories (re-seeded per restart)."""
        c = self.config
        seeds = self._seeds(c.n_workers)

        def make_factory(i: int, attempt: int):
            return self._worker_factory(None if seeds[i] is None else (seeds[i] + 7919 * attempt) % (2**31 - 1))

        return make_pool(c.backend, make_factory, c.n_workers, name="tlrl-a3c-worker", ray_address=c.ray_address,
                         call_timeout=c.worker_timeout)

    def _pool_kept(self) -> bool:
        return self.config.keep_workers and self.pool is not None and self.pool.backend == self.config.backend \
            and self.pool.running

    def start_workers(self) -> float:
        """Start the process or Ray workers now and wait until they are ready; returns the seconds it took.

        For `keep_workers=True` (the workers then serve every later `learn` call until
        `close()`): their startup is paid here instead of in the first `learn`. A worker that
        fails to start raises `tlrl.runner.WorkerError`.
        """
        c = self.config
        if c.backend not in ("process", "ray") or not c.keep_workers:
            raise ValueError(f"start_workers() starts kept process or Ray workers; this agent has backend="
                             f"{c.backend!r} and keep_workers={c.keep_workers} (set backend='process' or 'ray' "
                             f"and keep_workers=True)")
        if self._pool_kept():
            return 0.0
        if self.pool is not None:
            self.pool.close()
        self.pool = self._remote_pool()
        return start_workers(self.pool, self.learner, max_worker_restarts=c.max_worker_restarts)

    def reset_train_env(self) -> None:
        """The cut `tlrl train` makes at a checkpoint: in-process workers' envs are closed (the next
        `learn` starts fresh seeded ones, so a resumed synchronous run is exact); kept process or Ray
        workers go on (asynchronous runs are not reproducible in any case)."""
        self._close_local_workers()
        self.episode_tracker.returns[:] = 0
        self.episode_tracker.lengths[:] = 0

    def _close_local_workers(self) -> None:
        for w in self.workers:
            if w is not None:
                w.close()
        self.workers = []

    def close(self) -> None:
        """Close the in-process workers' envs and stop kept process or Ray workers."""
        self._close_local_workers()
        if self.pool is not None:
            self.pool.close()

    # ----- persistence -----------------------------------------------------------------
    def _trackables(self) -> Dict[str, Any]:
        return {"network": self.network, "optimizer": self.optimizer}

    def save(self, path: str) -> None:
        """Save (safe while workers run: the learner's lock keeps updates out during the write)."""
        with self.learner.lock:
            super().save(path)

    def restore_state(self, path: str, meta=None) -> None:
        with self.learner.lock:
            super().restore_state(path, meta)
            self.learner.version += 1  # the weights changed: acting re-syncs, workers pull on the next learn
