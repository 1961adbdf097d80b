"""Gradient workers as a source of `tlrl.loop.train` (A3C): `GradientWorkers` and `GradientSource`.

`GradientWorkers` are an agent's workers, kept between runs: in-process ones ("sync",
"thread") live in the agent and their envs go on from run to run; process and Ray workers
live in a pool that lasts one run (the whole of `tlrl train`), or until `close()` with
`keep_workers`. `GradientSource.run(target, boundary)` drives them (`tlrl.runner.gradient`)
and calls `boundary(episode_returns, metrics, worker=i, version=v)` after each applied update.

A checkpoint's cut (`GradientWorkers.cut`, from the agent's `cut_episodes`) makes in-process
workers start over at their next rollout with fresh envs seeded from the agent's generator,
as the workers of an agent loaded from that checkpoint start, so a resumed synchronous run
is bit-identical; the rollouts of the other in-process workers still in flight are dropped.
Remote workers go on (asynchronous runs are not reproducible in any case).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict, List, Optional

from tlrl.runner.driver_policy import Restarts, StepBudget, start_pool
from tlrl.runner.gradient import run_gradient_workers, run_local
from tlrl.runner.pools import make_pool
from tlrl.runner.worker_pool import WorkerPool, check_backend, check_timeout

#: `(seed, shared) -> zero-argument worker factory`; `shared`: the one in-process worker trains the learner's own
#: variables. Picklable when not `shared` (it travels to processes and Ray actors).
MakeWorker = Callable[[Optional[int], bool], Callable[[], Any]]
REMOTE = ("process", "ray")


@dataclasses.dataclass
class WorkerOptions:
    """Where and how gradient workers run; an agent's config with workers derives from it (A3C's)."""

    #: where workers run: "thread", "process", "ray", or "sync" (in the caller's thread, in turn: deterministic).
    backend: str = "thread"
    #: worker restarts allowed per learn call; the next failure stops training with WorkerError.
    max_worker_restarts: int = 3
    #: "thread"/"process"/"ray": seconds a worker may take for a rollout before it counts as dead, is stopped and
    #: restarted (None: wait forever); a worker's first call also starts it and gets at least 300 s.
    worker_timeout: Optional[float] = 60.0
    #: backend "ray": address of a running cluster ("auto", "host:6379"); None starts a local Ray on 127.0.0.1.
    ray_address: Optional[str] = None
    #: "process"/"ray": keep the workers running after a learn call, for the next, until `close()` (a call, all of
    #: `tlrl train` included, always runs on one set of workers).
    keep_workers: bool = False

    def __post_init__(self):
        check_backend(self.backend)
        self.worker_timeout = check_timeout(self.worker_timeout)
        if self.max_worker_restarts < 0:
            raise ValueError(f"max_worker_restarts must be >= 0, got {self.max_worker_restarts}")

    @classmethod
    def of(cls, config, **overrides: Any) -> "WorkerOptions":
        """The options of `config` (a dataclass with these fields), with `overrides` (None values ignored)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = set(overrides) - set(names)
        if unknown:
            raise TypeError(f"unknown worker option(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}")
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def reseed(seed: Optional[int], attempt: int) -> Optional[int]:
    """The seed of a worker's `attempt`-th restart (0: the seed itself)."""
    return None if seed is None else (seed + 7919 * attempt) % (2**31 - 1)


class GradientWorkers:
    """An agent's gradient workers (see the module docstring).

    Args:
        make_worker: builds a worker's factory from its seed (`MakeWorker`).
        draw_seed: `() -> seed or None`, called in the caller's thread, once per worker, in worker order,
            when workers start (from the agent's generator: a loaded agent draws the same).
        n: number of workers.
        name: prefix of the workers' thread or process names.
    """

    def __init__(self, make_worker: MakeWorker, draw_seed: Callable[[], Optional[int]], n: int, *,
                 name: str = "tlrl-worker"):
        self.make_worker, self.draw_seed, self.n, self.name = make_worker, draw_seed, int(n), name
        #: the in-process workers (None until first used).
        self.local: List[Optional[Any]] = [None] * self.n
        #: the pool of the current (or last) run.
        self.pool: Optional[WorkerPool] = None
        self._seeds: Optional[List[Optional[int]]] = None  # of the in-process workers' envs; None: draw anew

    # ----- in-process workers --------------------------------------------------------
    def cut(self) -> None:
        """End the in-process workers' episodes: they start over at their next rollout (module docstring)."""
        self._seeds = None

    @property
    def cut_pending(self) -> bool:
        """Whether in-process workers were cut and have not started over yet."""
        return self._seeds is None and any(w is not None for w in self.local)

    def prepare_local(self) -> None:
        """Build every in-process worker, or start each over after a cut, in this thread."""
        if self._seeds is None:
            self._seeds = [self.draw_seed() for _ in range(self.n)]
            for w, seed in zip(self.local, self._seeds):
                if w is not None:
                    w.reset(seed)
        for i in range(self.n):
            if self.local[i] is None:
                self.local_worker(i, 0)

    def local_worker(self, i: int, attempt: int):
        """In-process worker `i`: the kept one, or (after a failure) a new one, re-seeded per attempt."""
        if attempt == 0 and self.local[i] is not None:
            return self.local[i]
        self.local[i] = self.make_worker(reseed(self._seeds[i], attempt), self.n == 1)()
        return self.local[i]

    def local_pool(self, backend: str, call_timeout: Optional[float]) -> WorkerPool:
        """A pool over the kept in-process workers (closing it leaves them open)."""
        self.close_pool()
        self.pool = make_pool(backend, lambda i, attempt: functools.partial(self.local_worker, i, attempt), self.n,
                              close_workers=False, name=self.name, call_timeout=call_timeout)
        return self.pool

    # ----- remote workers -------------------------------------------------------------
    def remote_pool(self, backend: str, *, call_timeout: Optional[float], ray_address: Optional[str]) -> WorkerPool:
        """The running pool of `backend` (started ahead, or kept), else a new one, its workers seeded now."""
        if self.pool is not None and self.pool.running and self.pool.backend == backend:
            return self.pool
        self.close_pool()
        seeds = [self.draw_seed() for _ in range(self.n)]

        def make_factory(i: int, attempt: int):
            return self.make_worker(reseed(seeds[i], attempt), False)

        self.pool = make_pool(backend, make_factory, self.n, name=self.name, ray_address=ray_address,
                              call_timeout=call_timeout)
        return self.pool

    def start(self, options: WorkerOptions, learner) -> float:
        """Start the process or Ray workers now (the next run uses them) and wait until each holds the learner's
        weights; returns the seconds it took (0 if they were running). A worker that fails raises `WorkerError`."""
        if options.backend not in REMOTE:
            raise ValueError(f"start_workers() starts process or Ray workers, not backend={options.backend!r} "
                             f"(set backend='process' or 'ray')")
        if self.pool is not None and self.pool.running and self.pool.backend == options.backend:
            return 0.0
        pool = self.remote_pool(options.backend, call_timeout=options.worker_timeout, ray_address=options.ray_address)
        return start_pool(pool, learner.get_flat_weights, "set_flat_weights",
                          max_worker_restarts=options.max_worker_restarts)

    def close_pool(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def close(self) -> None:
        """Stop the pool and close the in-process workers (the next run builds new ones)."""
        self.close_pool()
        for w in self.local:
            if w is not None:
                w.close()
        self.local, self._seeds = [None] * self.n, None


class GradientSource:
    """A source of `tlrl.loop.train`: `workers` compute gradients, `learner` applies them (module docstring).

    Args:
        agent: the agent whose counters (`num_timesteps`, `n_updates`) and `episode_tracker` advance.
        workers: its `GradientWorkers`.
        learner: the `tlrl.runner.learner.Learner` of its shared weights.
        learning_rate: schedule of the step size over the agent's progress 0 -> 1 (at the claim of a rollout).
        steps_per_rollout: env steps of one worker call.
        options: where and how the workers run.
    """

    def __init__(self, agent, workers: GradientWorkers, learner, learning_rate: Callable[[float], float],
                 steps_per_rollout: int, options: WorkerOptions):
        self.agent, self.workers, self.learner, self.learning_rate = agent, workers, learner, learning_rate
        self.steps_per_rollout, self.options = int(steps_per_rollout), options

    def run(self, target: int, boundary) -> None:
        agent, workers = self.agent, self.workers
        start = int(agent.num_timesteps)
        budget = StepBudget(target - start)
        o = self.options
        common: Dict[str, Any] = dict(restarts=Restarts(None, o.max_worker_restarts, what="rollout"),
                                      progress=lambda before: (start + before) / max(target, 1))

        def on_update(stats: Dict[str, Any]) -> bool:
            agent.num_timesteps += stats.pop("steps")
            agent.n_updates += 1
            returns, lengths = stats.pop("episode_returns"), stats.pop("episode_lengths")
            tracker = agent.episode_tracker
            tracker.finished_returns.extend(returns)
            tracker.finished_lengths.extend(lengths)
            tracker.episodes += len(returns)
            worker, version = stats.pop("worker"), stats.pop("version")
            return boundary(returns, {k: float(v) for k, v in stats.items()}, worker=worker, version=version)

        if o.backend in REMOTE:
            pool = workers.remote_pool(o.backend, call_timeout=o.worker_timeout, ray_address=o.ray_address)
            run_gradient_workers(pool, self.learner, budget, on_update, self.learning_rate,
                                 steps_per_rollout=self.steps_per_rollout, keep_pool=o.keep_workers, **common)
            return
        workers.close_pool()  # remote workers kept from a run on another backend
        while True:  # one pass per stretch between cuts
            workers.prepare_local()
            if workers.n == 1:
                out = run_local(functools.partial(workers.local_worker, 0), self.learner, budget, on_update,
                                self.learning_rate, cut=lambda: workers.cut_pending, **common)
            else:
                pool = workers.local_pool(o.backend, o.worker_timeout)
                out = run_gradient_workers(pool, self.learner, budget, on_update, self.learning_rate,
                                           steps_per_rollout=self.steps_per_rollout,
                                           cut=lambda: workers.cut_pending, **common)
            if not out["cut"] or budget.claimed >= budget.total:
                return
