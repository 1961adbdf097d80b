"""Ape-X style training of a replay agent (DQN, DDPG, TD3, ...): N actors collect, one learner trains.

Horgan, Quan, Budden, Barth-Maron, Hessel, van Hasselt, Silver (2018), "Distributed Prioritized
Experience Replay", ICLR. https://arxiv.org/abs/1803.00933

`ActorSource` (also named `ApeX`) is a source of `tlrl.loop.train`: `learn(n)` is
`tlrl.loop.train(agent, n, callback, source=self)`, so the loop's `Boundary` (finiteness check,
steps/s, the callback: log, evaluate, checkpoint, stop) runs after every training phase.

Actors (`tlrl.runner.apex_actor.OffPolicyActor`, one per worker, on threads, processes or Ray
actors) each hold a copy of the agent and collect blocks of `block_steps` vector steps with a
`tlrl.collector.Collector` (the agent's exploration; uniform random actions for blocks that start
before `learning_starts`). Exploration differs per actor as in Ape-X where the agent has a
constant exploration level (`agent.constant_exploration`, DQN's epsilon): actor i explores with
`eps_i = 0.4 ** (1 + 7 i / (N - 1))`, or, with `exploration="agent"`, all follow the agent's own
schedule. An actor pulls the acting weights (`agent.get_weights()`) when it asks for a new block
after at least `pull_every` env steps.

The learner is the agent itself, in the calling thread: each block's rows go into its store
(`agent.store.add`), the last row marked truncated where it did not terminate, so n-step returns
never join two blocks (which may come from different actors) while bootstrapping from the true
next observation stays exact. Training is paced as in the agent's own loop (`agent.plan`): one
phase (`agent.update(None)`) is due per `plan.steps` vector steps received once
`plan.learning_starts` steps are in, and it runs with `agent.vector_steps` at its own step, so the
ratio of gradient steps to env steps, the target updates and the schedules are those of
`agent.learn`. The learner works through the due phases while actors keep collecting;
`max_update_lag` bounds how many it may fall behind before idle actors wait (a rate limiter, as in
Reverb). With `max_update_lag=None` actors never wait and, when several phases are due, the
learner runs the newest and skips the others (`stats["skipped_updates"]`), as in Ape-X.

Actors live for one `learn` call, or with `keep_workers=True` until `close()` (`start_workers()`
starts them ahead of training, so process and Ray actors pay their startup once). Faults are
handled as for gradient workers (`tlrl.runner.driver_policy.Restarts`): the lost block is
dropped, the actor restarted (up to `max_worker_restarts`), training reaches its step target.

>>> from tlrl.algorithms import DQN
>>> from tlrl.runner import ApeX
>>> agent = DQN("CartPole-v1", seed=0, learning_starts=64, buffer_size=1000, net_arch=(16,), jit_compile=False)
>>> _ = ApeX(agent, workers=2, backend="sync", block_steps=16).learn(256)
>>> agent.num_timesteps, len(agent.store.replay)
(256, 256)
"""
from __future__ import annotations

import collections
import functools
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import gymnasium as gym

from tlrl.core import Callback, Transition
from tlrl.off_policy import ReplayStore
from tlrl.runner.apex_actor import OffPolicyActor, actor_hyperparameters, apex_epsilons
from tlrl.runner.apex_collect import BlockCollector
from tlrl.runner.driver_policy import start_pool
from tlrl.runner.pools import check_backend, check_timeout, logger, make_pool

_COLLECTOR_JOIN_SECONDS = 30.0  # the collector thread ends within one poll (0.05 s) or one restart


def _row(x, t: int):
    return {k: v[t] for k, v in x.items()} if isinstance(x, dict) else x[t]


class ActorSource:
    """Train a replay agent with `workers` actors (see the module docstring).

    Args:
        agent: an agent whose `store` is a `tlrl.off_policy.ReplayStore` (DQN, DDPG, TD3, a composed
            one); it is the learner and keeps all training state.
        workers: number of actors.
        backend: "sync" (actors in the calling thread, in turn: deterministic), "thread",
            "process" or "ray".
        block_steps: vector steps an actor collects per push.
        pull_every: env steps an actor runs between two weight pulls (Ape-X's K); the pull happens
            at the start of the next block. An actor's first block in a `learn` call always pulls.
        exploration: "apex" (a constant level per actor, for agents that have one) or "agent"
            (the agent's own exploration schedule in every actor).
        epsilons: explicit per-actor exploration levels (overrides "apex"'s formula).
        max_update_lag: training phases the learner may fall behind before idle actors wait
            (None: actors never wait and the learner skips phases it cannot keep up with).
        max_worker_restarts: actor restarts allowed per `learn` call before a failure stops training.
        worker_timeout: seconds an actor may take for a block (or to take the weights) before it
            counts as dead, is stopped and restarted like a killed one (None: no deadline). An
            actor's first call also starts it and gets at least `tlrl.runner.pools.START_TIMEOUT`.
            "sync" actors run in this thread and have no deadline.
        ray_address, ray_init_kwargs: see `tlrl.runner.ray_pool.init_ray`.
        threads_per_worker: TF threads of each actor process.
        keep_workers: keep the actors running after a `learn` call that ended normally, for the
            next one, until `close()` (an error or Ctrl-C in training stops them all the same).
    """

    def __init__(self, agent, *, workers: int = 2, backend: str = "process", block_steps: int = 32,
                 pull_every: int = 400, exploration: str = "apex", epsilons: Optional[Sequence[float]] = None,
                 max_update_lag: Optional[int] = 2, max_worker_restarts: int = 3, ray_address: Optional[str] = None,
                 ray_init_kwargs: Optional[Dict[str, Any]] = None, threads_per_worker: Optional[int] = 1,
                 keep_workers: bool = False, worker_timeout: Optional[float] = 60.0):
        check_backend(backend)
        self.worker_timeout = check_timeout(worker_timeout)
        if not isinstance(agent.store, ReplayStore):
            raise TypeError(f"ApeX trains off-policy agents with a replay store (DQN, DDPG, TD3, or an agent whose "
                            f"`store` is a tlrl.off_policy.ReplayStore); {type(agent).__name__} is not one")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if block_steps < 1 or pull_every < 0:
            raise ValueError(f"block_steps must be >= 1 and pull_every >= 0, got {block_steps} and {pull_every}")
        if exploration not in ("apex", "agent"):
            raise ValueError(f"exploration must be 'apex' or 'agent', got {exploration!r}")
        if max_update_lag is not None and max_update_lag < 0:
            raise ValueError(f"max_update_lag must be >= 0 or None, got {max_update_lag}")
        if isinstance(agent.env_spec, gym.Env):
            raise ValueError("ApeX actors each build their own env: create the agent from an env id, "
                             "'package.module:Class' or a factory, not an env instance")
        agent.acting_variables()  # fail now if the agent cannot act remotely
        self.agent = agent
        self.workers, self.backend = int(workers), backend
        self.block_steps, self.pull_every = int(block_steps), int(pull_every)
        self.max_update_lag, self.max_worker_restarts = max_update_lag, int(max_worker_restarts)
        self.ray_address, self.ray_init_kwargs = ray_address, ray_init_kwargs
        self.threads_per_worker = threads_per_worker
        self.keep_workers = bool(keep_workers)
        if epsilons is not None:
            if len(epsilons) != workers:
                raise ValueError(f"epsilons lists {len(epsilons)} values for {workers} workers")
            self.epsilons: List[Optional[float]] = [float(e) for e in epsilons]
        elif exploration == "apex" and agent.constant_exploration(0.0):  # the agent has a level to set
            self.epsilons = list(apex_epsilons(workers))
        else:
            self.epsilons = [None] * workers
        #: the actors' pool: of the last `learn` call (closed when it returns), or the kept one.
        self.pool = None
        #: stats of the last `learn` call.
        self.stats: Dict[str, Any] = {}

    def _make_factory(self, seeds: List[Optional[int]]) -> Callable[[int, int], Callable[[], Any]]:
        agent = self.agent

        def make(i: int, attempt: int):
            seed = None if seeds[i] is None else seeds[i] + 7919 * attempt
            return functools.partial(OffPolicyActor, type(agent), agent.env_spec, dict(agent.env_kwargs),
                                     actor_hyperparameters(agent, self.epsilons[i]), seed, self.block_steps)

        return make

    def _pool_kept(self) -> bool:
        return self.keep_workers and self.pool is not None and self.pool.running

    def _new_pool(self):
        """A fresh pool of actors (stopping the previous one), seeded from the agent's generator."""
        agent = self.agent
        if self.pool is not None:
            self.pool.close()
        seeds = [None if agent.seed is None else int(agent.rng.integers(0, 2**31 - 1 - 7919 * 1000))
                 for _ in range(self.workers)]
        self.pool = make_pool(self.backend, self._make_factory(seeds), self.workers, name="tlrl-actor",
                              ray_address=self.ray_address, ray_init_kwargs=self.ray_init_kwargs,
                              threads_per_worker=self.threads_per_worker, call_timeout=self.worker_timeout)
        return self.pool

    def start_workers(self) -> float:
        """Start the kept actors now and wait until each holds the acting weights; returns the seconds.

        Needs `keep_workers=True`; the actors then serve every later `learn` call until
        `close()`. A no-op (0.0) while they run. An actor that fails to start raises `WorkerError`.
        """
        if not self.keep_workers:
            raise ValueError("start_workers() starts kept actors; this ApeX has keep_workers=False "
                             "(build it with keep_workers=True)")
        if self._pool_kept():
            return 0.0
        return start_pool(self._new_pool(), self.agent.get_weights, "set_weights",
                          max_worker_restarts=self.max_worker_restarts)

    def close(self) -> None:
        """Stop the actors (kept ones included); idempotent."""
        if self.pool is not None:
            self.pool.close()

    def learn(self, total_steps: int, callback: Optional[Callback] = None):
        """Train `total_steps` more env steps (all actors together, rounded up to whole blocks); return the agent.

        `tlrl.loop.train` with this source: `callback(agent, info)` runs in this thread after every
        training phase (`metrics`: the agent's, plus `steps_per_second`, `updates_per_second`,
        `worker_restarts`), and after each block received before `learning_starts` (empty `metrics`);
        returning False stops training.
        """
        from tlrl.loop import train

        return train(self.agent, total_steps, callback, source=self)

    def run(self, target: int, boundary) -> None:
        """The `tlrl.loop` source: collect with the actors and train until `target` env steps are in."""
        agent, plan, n_envs = self.agent, self.agent.plan, self.agent.n_envs
        start_steps = agent.num_timesteps
        pool = self.pool if self._pool_kept() else self._new_pool()
        coll = BlockCollector(self, pool, int(target) - start_steps, agent.get_weights())
        threaded = self.backend != "sync"  # "sync": actors run in this thread, between training phases
        due: "collections.deque[int]" = collections.deque()
        returns_since: List[float] = []
        store, tracker = agent.store, agent.episode_tracker
        received = agent.vector_steps  # vector steps received; a phase runs with vector_steps at its mark
        stopping = finished = early = False
        updates = skipped = version = 0
        t0 = time.perf_counter()

        def receive(item) -> None:
            nonlocal received, early
            block, stats, marks = item
            if stopping:
                return
            truncated = block.truncated.copy()
            truncated[-1] |= ~block.terminated[-1]  # no n-step return across two blocks
            rows = len(truncated)
            for t in range(rows):
                store.add(Transition(_row(block.obs, t), block.action[t], block.reward[t], _row(block.next_obs, t),
                                     block.terminated[t], truncated[t]), {})
            agent.num_timesteps += rows * n_envs
            received += rows
            agent.vector_steps = received
            due.extend(marks)
            tracker.finished_returns.extend(stats["episode_returns"])
            tracker.finished_lengths.extend(stats["episode_lengths"])
            tracker.episodes += len(stats["episode_returns"])
            returns_since.extend(stats["episode_returns"])
            early = early or agent.num_timesteps < plan.learning_starts

        def at_boundary(metrics) -> None:
            nonlocal returns_since, stopping, early
            ended, returns_since, early = returns_since, [], False
            if not boundary(ended, metrics):
                stopping = coll.stopping = True

        thread = None
        try:
            coll.start()
            if threaded:
                thread = threading.Thread(target=coll.run, name="tlrl-apex-collector", daemon=True)
                thread.start()
            while True:
                if not threaded:
                    coll.pump(0)
                while True:  # everything received so far, in arrival order
                    try:
                        receive(coll.inbox.get_nowait())
                    except queue.Empty:
                        break
                if coll.error is not None:
                    raise coll.error
                if due and not stopping:
                    dropped = 0
                    if self.max_update_lag is None and len(due) > 1:  # free-running: only the newest phase
                        dropped = len(due) - 1
                        for _ in range(dropped):
                            due.popleft()
                    agent.vector_steps = due.popleft()  # the phase sees its own step count, as in agent.learn
                    try:
                        metrics = dict(agent.update(None))
                    finally:
                        agent.vector_steps = received
                    updates, skipped, version = updates + 1, skipped + dropped, version + 1
                    coll.published(version, agent.get_weights(), 1 + dropped)
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    metrics.update(updates_per_second=updates / elapsed, worker_restarts=coll.restarts.count)
                    at_boundary(metrics)
                    continue
                if early and not stopping:  # blocks before learning starts: a boundary (stop, checkpoint) too
                    at_boundary({})
                if coll.done.is_set() and coll.inbox.empty():
                    break
                if threaded:  # nothing to train: wait for the next block
                    try:
                        receive(coll.inbox.get(timeout=0.05))
                    except queue.Empty:
                        pass
            finished = True
        finally:
            coll.halt = True
            if thread is not None:
                thread.join(_COLLECTOR_JOIN_SECONDS)
                if thread.is_alive():  # closing the pool below ends whatever it waits for
                    logger.warning("the Ape-X collector thread did not stop within %g s; closing its actors",
                                   _COLLECTOR_JOIN_SECONDS)
            if not (self.keep_workers and finished):  # nothing is in flight after a normal end
                pool.close()
        wall = time.perf_counter() - t0
        steps = agent.num_timesteps - start_steps
        self.stats = {"env_steps": steps, "updates": updates, "skipped_updates": skipped, "wall": wall,
                      "restarts": coll.restarts.count, "steps_per_second": steps / max(wall, 1e-9),
                      "updates_per_second": updates / max(wall, 1e-9)}


#: The paper's name for it.
ApeX = ActorSource
