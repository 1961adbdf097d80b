"""Ape-X style training of an off-policy agent (DQN, DDPG, TD3): N actors collect, one learner trains.

Horgan, Quan, Budden, Barth-Maron, Hessel, van Hasselt, Silver (2018), "Distributed Prioritized
Experience Replay", ICLR. https://arxiv.org/abs/1803.00933

Actors (`OffPolicyActor`, one per worker, on threads, processes or Ray actors) each hold a copy
of the agent (same class and hyperparameters, a tiny replay buffer of their own that is never
used) and step their own vector env of `n_envs` envs with the agent's exploration
(`_explore_actions`; uniform random actions before `learning_starts`). Exploration differs
per actor as in Ape-X: DQN-like agents (an `exploration_final_eps` setting) act
epsilon-greedily with a constant `eps_i = 0.4 ** (1 + 7 i / (N - 1))`, or, with
`exploration="agent"`, all follow the agent's own decaying schedule. Actors push their
transitions in blocks of `block_steps` vector steps and pull the newest weights of the acting
network (the Q network, or the deterministic actor) when they ask for a new block after at
least `pull_every` env steps.

The learner is the agent itself, in the calling thread: blocks go into its replay buffer
(`replay.add`, row by row; the last row of a block is marked truncated so n-step returns never
join two blocks, which may come from different actors, while bootstrapping from the true next
observation stays exact) and it trains with its own `_train(gradient_steps)`. Training is paced
as in the synchronous loop: one training phase is due per `train_freq` vector steps received
(once `learning_starts` steps are in), so the ratio of gradient steps to env steps, the target
updates and the schedules are those of `agent.learn`, and zoo hyperparameters carry over. The
learner works through the due phases while actors keep collecting; `max_update_lag` bounds how
many phases it may fall behind before idle actors wait (a rate limiter, as in Reverb). With
`max_update_lag=None` actors never wait and the learner trains continuously at its own pace,
as in Ape-X: when several phases are due it runs the newest one and skips the others
(counted in `stats["skipped_updates"]`), so it makes fewer gradient steps per env step than
`agent.learn` whenever the actors outpace it.

Actors are started by each `learn` call and stopped at its end, unless `keep_workers=True`:
then they serve every `learn` call (their envs go on) until `close()`, and `start_workers()`
starts them ahead of training, so that process and Ray actors pay their startup (seconds:
TF import, env, tracing) once.

Faults are handled as for gradient workers (`tlrl.runner.gradient`): the lost block is
dropped, the actor restarted (up to `max_worker_restarts`), training reaches its step target.
Callbacks run in the calling thread between updates, so `agent.save` there is consistent.

>>> from tlrl.algorithms import DQN
>>> from tlrl.runner import ApeX
>>> agent = DQN("CartPole-v1", seed=0, learning_starts=64, buffer_size=1000, net_arch=(16,), jit_compile=False)
>>> _ = ApeX(agent, workers=2, backend="sync", block_steps=16).learn(256)
>>> agent.num_timesteps, len(agent.replay)
(256, 256)
"""
from __future__ import annotations

import collections
import functools
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from tlrl.finite import check_metrics
from tlrl.runner.apex_actor import OffPolicyActor, _actor_config, acting_module, apex_epsilons
from tlrl.runner.driver_policy import Restarts, StepBudget, start_pool
from tlrl.runner.pools import check_backend, check_timeout, logger, make_pool

_COLLECTOR_JOIN_SECONDS = 30.0  # the collector thread ends within one poll (0.05 s) or one restart
from tlrl.step_limits import check_total_steps
from tlrl.workers.flat import FlatLayout


def _flat(variables) -> np.ndarray:
    """The acting network's weights as the one float32 vector actors receive."""
    return FlatLayout.of(variables).pack([v.numpy() for v in variables])


def _row(x, t: int):
    return {k: v[t] for k, v in x.items()} if isinstance(x, dict) else x[t]


# ----- the learner -------------------------------------------------------------------------------
class ApeX:
    """Train an off-policy agent with `workers` actors (see the module docstring).

    Args:
        agent: an `OffPolicyAgent` (DQN, DDPG, TD3); it is the learner and keeps all training state.
        workers: number of actors.
        backend: "sync" (actors in the calling thread, in turn: deterministic), "thread",
            "process" or "ray".
        block_steps: vector steps an actor collects per push.
        pull_every: env steps an actor runs between two weight pulls (Ape-X's K); the pull
            happens at the start of the next block. The first block after the learner started
            always pulls.
        exploration: "apex" (constant per-actor epsilon, DQN-like agents) or "agent" (the
            agent's own exploration schedule in every actor).
        epsilons: explicit per-actor epsilons (overrides "apex"'s formula).
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
        for hook in ("replay", "_train", "_explore_actions", "_random_actions"):
            if not hasattr(agent, hook):
                raise TypeError(f"ApeX trains off-policy agents (DQN, DDPG, TD3: a replay buffer and _train); "
                                f"{type(agent).__name__} is not one")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if block_steps < 1 or pull_every < 0:
            raise ValueError(f"block_steps must be >= 1 and pull_every >= 0, got {block_steps} and {pull_every}")
        if exploration not in ("apex", "agent"):
            raise ValueError(f"exploration must be 'apex' or 'agent', got {exploration!r}")
        if max_update_lag is not None and max_update_lag < 0:
            raise ValueError(f"max_update_lag must be >= 0 or None, got {max_update_lag}")
        import gymnasium as gym

        if isinstance(agent.env_spec, gym.Env):
            raise ValueError("ApeX actors each build their own env: create the agent from an env id, "
                             "'package.module:Class' or a factory, not an env instance")
        self.agent = agent
        self.workers, self.backend = int(workers), backend
        self.block_steps, self.pull_every = int(block_steps), int(pull_every)
        self.max_update_lag, self.max_worker_restarts = max_update_lag, int(max_worker_restarts)
        self.ray_address, self.ray_init_kwargs = ray_address, ray_init_kwargs
        self.threads_per_worker = threads_per_worker
        self.keep_workers = bool(keep_workers)
        acting_module(agent)  # fail now if there is none
        dqn_like = hasattr(agent.config, "exploration_final_eps")
        if epsilons is not None:
            if len(epsilons) != workers:
                raise ValueError(f"epsilons lists {len(epsilons)} values for {workers} workers")
            self.epsilons = [float(e) for e in epsilons]
        elif exploration == "apex" and dqn_like:
            self.epsilons = apex_epsilons(workers)
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
                                     _actor_config(agent, self.epsilons[i]), seed, self.block_steps)

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
        """Start the kept actors now and wait until each holds the acting network's weights; returns the seconds.

        Needs `keep_workers=True`; the actors then serve every later `learn` call until
        `close()`. A no-op (0.0) while they run. An actor that fails to start raises `WorkerError`.
        """
        if not self.keep_workers:
            raise ValueError("start_workers() starts kept actors; this ApeX has keep_workers=False "
                             "(build it with keep_workers=True)")
        if self._pool_kept():
            return 0.0
        module = acting_module(self.agent)
        return start_pool(self._new_pool(), lambda: _flat(module.trainable_variables), "set_weights",
                          max_worker_restarts=self.max_worker_restarts)

    def close(self) -> None:
        """Stop the actors (kept ones included); idempotent."""
        if self.pool is not None:
            self.pool.close()

    def learn(self, total_steps: int, callback: Optional[Callable[..., Any]] = None):
        """Train `total_steps` more env steps (all actors together, rounded up to whole blocks); return the agent.

        `callback(agent, info)` runs in this thread after every training phase with
        `num_timesteps`, `metrics` (the agent's, plus `steps_per_second`, `updates_per_second`,
        `worker_restarts`), `episode_returns` (finished since the last call), `progress` and
        `n_updates`; returning False stops training.
        """
        total_steps = check_total_steps(total_steps, self.agent.num_timesteps)
        agent = self.agent
        if total_steps == 0:
            return agent
        start_steps = agent.num_timesteps
        agent._total_timesteps = start_steps + int(total_steps)
        pool = self.pool if self._pool_kept() else self._new_pool()
        module = acting_module(agent)
        coll = _Collector(self, pool, int(total_steps), _flat(module.trainable_variables))
        threaded = self.backend != "sync"  # "sync": actors run in this thread, between training phases
        due: "collections.deque[int]" = collections.deque()
        returns_since: List[float] = []
        stopping = False
        updates = skipped = version = 0
        t0 = time.perf_counter()
        tracker, replay, n_envs = agent.episode_tracker, agent.replay, agent.n_envs

        def receive(item) -> None:
            block, stats, marks = item
            if stopping:
                return
            rows = self.block_steps
            truncated = block["truncated"].copy()
            truncated[-1] |= ~block["terminated"][-1]  # no n-step return across two blocks
            for t in range(rows):
                replay.add(_row(block["obs"], t), block["action"][t], block["reward"][t], _row(block["next_obs"], t),
                           block["terminated"][t], truncated[t])
            agent.num_timesteps += rows * n_envs
            agent._vec_steps += rows
            due.extend(marks)
            if agent.env is None:  # e.g. DDPG's fused update also computes mu(agent._obs): give it real ones
                agent._obs = _row(block["next_obs"], rows - 1)
            for r, n in zip(stats["episode_returns"], stats["episode_lengths"]):
                tracker.finished_returns.append(r)
                tracker.finished_lengths.append(n)
                tracker.episodes += 1
            returns_since.extend(stats["episode_returns"])

        thread = None
        finished = False
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
                    mark = due.popleft()
                    received, agent._vec_steps = agent._vec_steps, mark  # the phase sees its own step count
                    try:
                        metrics = dict(agent._train(agent._gradient_steps()))
                    finally:
                        agent._vec_steps = received
                    check_metrics(metrics, step=agent.num_timesteps, owner=type(agent).__name__)
                    agent.n_updates += 1
                    updates, skipped, version = updates + 1, skipped + dropped, version + 1
                    coll.published(version, _flat(module.trainable_variables), 1 + dropped)
                    if callback is not None:
                        elapsed = max(time.perf_counter() - t0, 1e-9)
                        metrics.update(steps_per_second=(agent.num_timesteps - start_steps) / elapsed,
                                       updates_per_second=updates / elapsed, worker_restarts=coll.restarts.count)
                        info = {"num_timesteps": agent.num_timesteps, "metrics": metrics,
                                "episode_returns": returns_since, "progress": agent.progress,
                                "n_updates": agent.n_updates}
                        returns_since = []
                        if callback(agent, info) is False:
                            stopping = coll.stopping = True
                    continue
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
        return agent


class _Collector:
    """The actor side of `ApeX.learn`: hands out blocks, receives them, restarts failed actors.

    `pump(timeout)` polls the pool once and re-dispatches idle actors (within the rate limit).
    With a thread, process or Ray backend it runs on its own thread (`run`), so actors get new
    work while the learner trains; with "sync" the learner calls it between phases. Blocks go
    to `inbox` in arrival order, each with the training phases it makes due (vector-step marks,
    counted as `OffPolicyAgent.learn` counts them).
    """

    def __init__(self, apex: ApeX, pool, total_steps: int, weights: np.ndarray):
        agent, c = apex.agent, apex.agent.config
        self.apex, self.pool, self.n = apex, pool, pool.n
        self.budget = StepBudget(total_steps)
        self.restarts = Restarts(pool, apex.max_worker_restarts, what="block")
        self.n_envs, self.train_freq, self.learning_starts = agent.n_envs, int(c.train_freq), int(c.learning_starts)
        self.block_env_steps = apex.block_steps * agent.n_envs
        self.start_steps, self.total_timesteps = agent.num_timesteps, agent._total_timesteps
        self.num_timesteps, self.vec_steps = agent.num_timesteps, agent._vec_steps
        self.claims: Dict[int, int] = {}
        self.actor_version = [-1] * self.n
        self.since_pull = [0] * self.n
        self.weights = (0, weights)
        self.pending = 0  # training phases made due and not trained yet
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.inbox: "queue.Queue" = queue.Queue()
        self.done = threading.Event()
        self.stopping = self.halt = False
        self.error: Optional[BaseException] = None

    def published(self, version: int, weights: np.ndarray, phases: int) -> None:
        """The learner trained `phases` due phases (run or skipped) and has new weights."""
        self.weights = (version, weights)
        with self.lock:
            self.pending -= phases
        self.wake.set()

    def start(self) -> None:
        self.pool.start()
        self.dispatch_idle()

    def dispatch_idle(self) -> None:
        lag = self.apex.max_update_lag
        for i in range(self.n):
            if self.stopping or (lag is not None and self.pending > lag):
                return
            if i not in self.claims and not self.dispatch(i):
                return

    def dispatch(self, i: int) -> bool:
        before = self.budget.claim(self.block_env_steps)
        if before is None:
            return False
        self.claims[i] = before
        version, flat = self.weights
        weights = None
        if self.actor_version[i] < version or self.actor_version[i] < 0:
            if self.actor_version[i] < 0 or self.since_pull[i] >= self.apex.pull_every:
                weights, self.actor_version[i], self.since_pull[i] = flat, version, 0
        steps = self.start_steps + before
        self.pool.submit(i, "collect", weights, steps < self.learning_starts, steps, self.total_timesteps)
        return True

    def pump(self, timeout: float) -> None:
        for ev in self.pool.poll(timeout):
            i = ev.index
            self.claims.pop(i)
            if ev.failure is not None:
                self.budget.release(self.block_env_steps)
                self.restarts.handle(ev.failure)  # raises WorkerError when no restart is left
                self.actor_version[i] = -1  # a fresh actor pulls the weights first
                continue
            if self.stopping:
                continue  # training was stopped: blocks still in flight are dropped
            block, stats = ev.value
            marks = []
            for _ in range(self.apex.block_steps):
                self.num_timesteps += self.n_envs
                self.vec_steps += 1
                if self.vec_steps % self.train_freq == 0 and self.num_timesteps >= self.learning_starts:
                    marks.append(self.vec_steps)
            self.since_pull[i] += stats["steps"]
            with self.lock:
                self.pending += len(marks)
            self.inbox.put((block, stats, marks))
        self.dispatch_idle()
        if not self.claims and (self.stopping or self.budget.claimed >= self.budget.total):
            self.done.set()

    def run(self) -> None:
        """The collector thread: pump until done, stopped (`halt`) or failed (`error`, read by the learner)."""
        try:
            while not self.done.is_set() and not self.halt:
                if self.claims:
                    self.pump(0.05)
                else:  # every actor held back by the rate limit: wait for the learner
                    self.wake.wait(0.05)
                    self.wake.clear()
                    self.pump(0)
        except BaseException as exc:  # noqa: BLE001 - raised again in the learner's thread
            self.error = exc
            self.done.set()
