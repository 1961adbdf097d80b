"""`tlrl.runner`: drive any tlrl agent synchronously or with asynchronous workers.

>>> from tlrl.algorithms import DQN
>>> from tlrl.runner import Runner
>>> agent = DQN("CartPole-v1", seed=0, learning_starts=32, buffer_size=1000, net_arch=(16,), jit_compile=False)
>>> _ = Runner(agent, backend="sync").learn(64)  # the agent's own loop on one vector env
>>> _ = Runner(agent, backend="sync", workers=2).learn(64)  # two Ape-X actors, taking turns
>>> agent.num_timesteps
128

Ways to run (`backend`, `workers`):

- `"sync"` with one worker: the agent's own `learn` loop on one vector env of `n_envs` envs,
  stepped in this process, or each env in its own subprocess with `async_envs=True`
  (Gymnasium's `AsyncVectorEnv`, spawn): same results for the same seed, as the envs are
  seeded the same way.
- asynchronous workers, on `"thread"`, `"process"` or `"ray"` (or `"sync"`: the same workers
  taking turns in this thread, deterministic):
  - gradient workers for agents that have them (A3C: `n_workers`): each worker holds an env
    and a copy of the network, computes n-step gradients, the learner applies them as they
    arrive and sends fresh weights back (`tlrl.runner.gradient`);
  - experience workers (actors) for off-policy agents (DQN, DDPG, TD3): actors explore with
    their own epsilon, push transitions in blocks to the learner's replay buffer and pull
    weights every `pull_every` steps while the learner trains (`tlrl.runner.apex.ApeX`).

Faults: a worker that raises, whose process or Ray actor dies, or that does not answer within
`worker_timeout` seconds (then it is stopped) is restarted (up to `max_worker_restarts` per
run, then training stops with `WorkerError`); its unfinished work is dropped and training
reaches its step target. Ctrl-C, an exception, or the end of training stop all workers, each
wait bounded. See docs/runner.md.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Optional

from tlrl.runner.driver_policy import Restarts, StepBudget
from tlrl.runner.pools import (BACKENDS, Event, Failure, InlinePool, WorkerError, WorkerPool, check_backend,
                               check_timeout, make_pool)
from tlrl.runner.thread_pool import ThreadPool

# Imported on first use, so a worker process that only needs the pool machinery does not import TF.
_LAZY = {"ApeX": "apex", "OffPolicyActor": "apex_actor", "apex_epsilons": "apex_actor", "FlatGradientWorker": "gradient",
         "run_gradient_workers": "gradient", "init_ray": "ray_pool", "shutdown_ray": "ray_pool"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"tlrl.runner.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tlrl.runner' has no attribute {name!r}")

__all__ = ["BACKENDS", "ApeX", "Event", "Failure", "FlatGradientWorker", "InlinePool", "OffPolicyActor", "Restarts",
           "Runner", "StepBudget", "ThreadPool", "WorkerError", "WorkerPool", "apex_epsilons", "check_backend",
           "init_ray", "make_pool", "run_gradient_workers", "shutdown_ray"]


class Runner:
    """Train `agent` with the chosen backend and number of workers (see the module docstring).

    Args:
        agent: any tlrl agent.
        backend: "sync", "thread", "process" or "ray".
        workers: number of workers. Default: the agent's `n_workers` for gradient-worker agents
            (A3C), else 1 (the agent's own loop for "sync"; one actor otherwise).
        async_envs: with the agent's own loop, step each env in its own subprocess.
        **options: for off-policy agents with workers, `ApeX` options (`block_steps`,
            `pull_every`, `exploration`, `max_update_lag`, `max_worker_restarts`, `worker_timeout`,
            `ray_address`, `keep_workers`, ...);
            for gradient-worker agents, config fields (`max_worker_restarts`, `worker_timeout`, `ray_address`).
    """

    def __init__(self, agent, backend: str = "sync", workers: Optional[int] = None, *, async_envs: bool = False,
                 **options: Any):
        check_backend(backend)
        self.agent, self.backend, self.async_envs, self.options = agent, backend, bool(async_envs), options
        config = agent.config
        self.gradient_workers = hasattr(config, "n_workers") and hasattr(config, "backend")
        if self.gradient_workers:
            if workers is not None and workers != config.n_workers:
                raise ValueError(f"{type(agent).__name__} was built with n_workers={config.n_workers}; build it with "
                                 f"n_workers={workers} to run {workers} workers")
            unknown = set(options) - {f for f in ("max_worker_restarts", "worker_timeout", "ray_address")
                                      if hasattr(config, f)}
            if unknown:
                raise TypeError(f"unknown option(s) for {type(agent).__name__}: {', '.join(sorted(unknown))}")
            if "worker_timeout" in options:
                check_timeout(options["worker_timeout"])
            self.workers = config.n_workers
        else:
            self.workers = 1 if workers is None else int(workers)
            if self.workers < 1:
                raise ValueError(f"workers must be at least 1, got {workers}")
        self.uses_actors = not self.gradient_workers and (backend != "sync" or self.workers > 1)
        if self.uses_actors:
            from tlrl.runner.apex import ApeX

            if not hasattr(agent, "replay"):
                raise TypeError(f"{type(agent).__name__} has no asynchronous workers in tlrl (gradient workers: A3C; "
                                f"actors: off-policy agents such as DQN, DDPG, TD3); run it with backend='sync', and "
                                f"async_envs=True to step its envs in subprocesses")

            self.apex = ApeX(agent, workers=self.workers, backend=backend, **options)  # checks the agent
        elif options and not self.gradient_workers:  # (a gradient-worker agent's options were checked above)
            raise TypeError(f"unknown option(s) for the agent's own loop: {', '.join(sorted(options))}")
        if async_envs and (self.gradient_workers or self.uses_actors):
            raise ValueError("async_envs=True applies to the agent's own loop (backend='sync', one worker); "
                             "workers already step their envs in parallel")

    def learn(self, total_steps: int, callback: Optional[Callable[..., Any]] = None):
        """Train `total_steps` more env steps; return the agent."""
        agent = self.agent
        if self.gradient_workers:
            saved = {k: getattr(agent.config, k) for k in ["backend", *self.options]}
            try:
                agent.config.backend = self.backend
                for k, v in self.options.items():
                    setattr(agent.config, k, v)
                return agent.learn(total_steps, callback=callback)
            finally:
                for k, v in saved.items():
                    setattr(agent.config, k, v)
        if self.uses_actors:
            return self.apex.learn(total_steps, callback=callback)
        if not self.async_envs:
            return agent.learn(total_steps, callback=callback)
        return _learn_with_async_envs(agent, total_steps, callback)

    def close(self) -> None:
        """Stop kept workers (`keep_workers=True`): the actors of an off-policy agent, or the agent's own."""
        if self.uses_actors:
            self.apex.close()
        elif self.gradient_workers:
            self.agent.close()


def _learn_with_async_envs(agent, total_steps: int, callback):
    """`agent.learn` with its training envs in subprocesses, created the way the agent creates
    its own (same seeds), and closed at the end."""
    from tlrl.envs import make_vector_env

    def make_async(n_envs: int, seed: Optional[int]):
        return make_vector_env(agent.env_spec, n_envs, seed=seed, kwargs=agent.env_kwargs, asynchronous=True)

    if agent.env is not None:
        _close_train_env(agent)
    agent._make_vector_env = make_async  # the agent's own _ensure_train_env builds this one
    try:
        result = agent.learn(total_steps, callback=callback)
    except BaseException:
        del agent._make_vector_env
        _close_train_env(agent, terminate=True)  # workers may be mid-step: do not wait for them
        raise
    del agent._make_vector_env
    _close_train_env(agent)
    return result


def _close_train_env(agent, terminate: bool = False) -> None:
    """Close the agent's training env so that its next `learn` starts fresh envs (episodes are cut)."""
    import gymnasium as gym

    env = agent.env
    if isinstance(env, gym.vector.AsyncVectorEnv):
        env.close(terminate=terminate)
    elif env is not None:
        env.close()
    agent.env = None
    tracker = getattr(agent, "episode_tracker", None)
    if tracker is not None and hasattr(tracker, "returns"):
        tracker.returns[:] = 0
        tracker.lengths[:] = 0
