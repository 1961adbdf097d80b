"""`tlrl.runner`: drive any tlrl agent synchronously or with asynchronous workers.

>>> from tlrl.algorithms import DQN
>>> from tlrl.runner import Runner
>>> agent = DQN("CartPole-v1", seed=0, learning_starts=32, buffer_size=1000, net_arch=(16,), jit_compile=False)
>>> _ = Runner(agent, backend="sync").learn(64)  # the agent's own loop on one vector env
>>> _ = Runner(agent, backend="sync", workers=2).learn(64)  # two Ape-X actors, taking turns
>>> agent.num_timesteps
128

Every way of running is `tlrl.loop.train` with a source (`Runner.source`):

- the agent's own loop (no source; `backend` None or "sync", one worker) on one vector env of
  `n_envs` envs, stepped in this process, or each env in its own subprocess with
  `async_envs=True` (Gymnasium's `AsyncVectorEnv`, spawn): same results for the same seed;
- the agent's own workers (`agent.worker_source(backend, **options)`; A3C: gradient workers,
  `tlrl.runner.gradient_source`), on "sync", "thread", "process" or "ray";
- Ape-X actors for replay agents (DQN, DDPG, TD3: a `tlrl.off_policy.ReplayStore`) with another
  backend or more than one worker (`tlrl.runner.apex.ActorSource`): actors explore with their
  own epsilon, push transitions in blocks to the learner's replay and pull weights every
  `pull_every` steps while the learner trains.

A run config's `runner` section builds the same runner (`Runner.from_config`, what `tlrl train`
calls). Faults: a worker that raises, whose process or Ray actor dies, or that does not answer
within `worker_timeout` seconds (then it is stopped) is restarted (up to `max_worker_restarts`
per run, then training stops with `WorkerError`); its unfinished work is dropped and training
reaches its step target. Ctrl-C, an exception, or the end of training stop all workers, each
wait bounded. See docs/runner.md.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Optional

from tlrl.runner.driver_policy import Restarts, StepBudget
from tlrl.runner.pools import (BACKENDS, Event, Failure, InlinePool, WorkerError, WorkerPool, check_backend,
                               check_timeout, make_pool)
from tlrl.runner.thread_pool import ThreadPool

# Imported on first use, so a worker process that only needs the pool machinery does not import TF.
_LAZY = {"ApeX": "apex", "ActorSource": "apex", "OffPolicyActor": "apex_actor", "apex_epsilons": "apex_actor",
         "run_gradient_workers": "gradient", "init_ray": "ray_init", "shutdown_ray": "ray_init"}

#: The keys of a run config's `runner` section that are `Runner` options (null: the default).
CONFIG_OPTIONS = ("block_steps", "pull_every", "exploration", "max_worker_restarts", "worker_timeout", "ray_address")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"tlrl.runner.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tlrl.runner' has no attribute {name!r}")


__all__ = ["BACKENDS", "ActorSource", "ApeX", "Event", "Failure", "InlinePool", "OffPolicyActor", "Restarts",
           "Runner", "StepBudget", "ThreadPool", "WorkerError", "WorkerPool", "apex_epsilons", "check_backend",
           "check_timeout", "init_ray", "make_pool", "run_gradient_workers", "shutdown_ray"]


class Runner:
    """Train `agent` with the chosen backend and number of workers (see the module docstring).

    Args:
        agent: any tlrl agent.
        backend: "sync", "thread", "process" or "ray"; None: the agent's own loop (A3C: its `backend`).
        workers: number of workers: A3C's (its `n_workers`), or Ape-X actors for replay agents
            (default 1: the agent's own loop with "sync", one actor otherwise).
        async_envs: with the agent's own loop, step each env in its own subprocess.
        **options: for replay agents with workers, `ApeX` options (`block_steps`, `pull_every`,
            `exploration`, `max_update_lag`, `max_worker_restarts`, `worker_timeout`,
            `ray_address`, `keep_workers`, ...); for agents with workers of their own, what their
            `worker_source` takes (A3C: `max_worker_restarts`, `worker_timeout`, `ray_address`).
    """

    def __init__(self, agent, backend: Optional[str] = None, workers: Optional[int] = None, *,
                 async_envs: bool = False, **options: Any):
        if backend is not None:
            check_backend(backend)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.agent, self.backend, self.workers, self.async_envs = agent, backend, workers, bool(async_envs)
        #: the Ape-X actors (`tlrl.runner.apex.ActorSource`), or None.
        self.apex = None
        #: the `tlrl.loop` source: the agent's own workers, the Ape-X actors, or None (the agent's own loop).
        self.source = agent.worker_source(backend, **(options if workers is None else dict(options, workers=workers)))
        with_workers = backend not in (None, "sync") or (workers or 1) > 1
        if async_envs and (self.source is not None or with_workers):
            raise ValueError("async_envs=True applies to the agent's own loop (backend='sync' or None, one worker); "
                             "workers already step their envs in parallel")
        if self.source is None and with_workers:
            from tlrl.off_policy import ReplayStore

            if not isinstance(agent.store, ReplayStore):
                raise TypeError(f"{type(agent).__name__} has no asynchronous workers in tlrl (gradient workers: A3C; "
                                f"actors: off-policy agents with a replay store such as DQN, DDPG, TD3); run it with "
                                f"backend='sync', and async_envs=True to step its envs in subprocesses")
            from tlrl.runner.apex import ActorSource

            self.source = self.apex = ActorSource(agent, workers=workers or 1, backend=backend or "sync", **options)
        elif self.source is None and options:
            raise TypeError(f"unknown option(s) for the agent's own loop: {', '.join(sorted(options))}")

    @classmethod
    def from_config(cls, agent, config) -> "Runner":
        """The runner a run config's `runner` section (`tlrl.config_schema.RunnerConfig`, checked when the config
        was loaded) asks for; `tlrl train` trains with `Runner.from_config(agent, config.runner).learn(...)`."""
        values = dataclasses.asdict(config)
        options = {k: values[k] for k in CONFIG_OPTIONS if values[k] is not None}
        return cls(agent, values["backend"], values["workers"], async_envs=values["async_envs"], **options)

    @property
    def uses_actors(self) -> bool:
        """Whether Ape-X actors collect (a replay agent with workers)."""
        return self.apex is not None

    def learn(self, total_steps: int, callback=None):
        """Train `total_steps` more env steps in `tlrl.loop.train` with this runner's source; return the agent."""
        if self.source is not None:
            from tlrl.loop import train

            return train(self.agent, total_steps, callback, source=self.source)
        if not self.async_envs:
            return self.agent.learn(total_steps, callback=callback)
        return self._learn_with_async_envs(total_steps, callback)

    def _learn_with_async_envs(self, total_steps: int, callback):
        """`agent.learn` with its training envs in subprocesses, made and seeded as the agent makes its own;
        the episodes are cut at the start (if envs ran) and at the end, and the in-process collector restored."""
        from tlrl.collector import Collector

        agent = self.agent
        if agent.collector.env is not None:
            agent.cut_episodes()
        agent.set_collector(Collector(agent, make_env=lambda n, seed: agent.make_vector_env(n, seed, asynchronous=True)))
        try:
            agent.learn(total_steps, callback=callback)
        except BaseException:
            agent.collector.close(terminate=True)  # workers may be mid-step: do not wait for them
            raise
        finally:
            agent.cut_episodes()  # closes the subprocess envs (if still open)
            agent.set_collector(Collector(agent))
        return agent

    def close(self) -> None:
        """Stop the workers: kept Ape-X actors (`keep_workers=True`), or the agent's own (`agent.close()`)."""
        if self.apex is not None:
            self.apex.close()
        elif self.source is not None:
            self.agent.close()
