"""Run existing `GradientWorker` objects against a `Learner`: inline (one worker) or on threads.

Thin entry points over `tlrl.runner.gradient`, which holds the loop for every backend
(threads, processes, Ray) and the restart policy. These two take workers that already exist
in this process, so a failed worker cannot be rebuilt: by default a failure stops training
with `WorkerError` (A3C builds its workers through `tlrl.runner`, which can restart them).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

from tlrl.runner.driver_policy import StepBudget  # noqa: F401 - re-exported
from tlrl.runner.pools import WorkerError  # noqa: F401 - re-exported: one error type everywhere

OnUpdate = Callable[[Dict[str, Any]], Optional[bool]]


def run_inline(worker, learner, total_steps: int, on_update: OnUpdate,
               learning_rate: Callable[[float], float]) -> Dict[str, Any]:
    """One worker in the caller's thread: synchronous n-step actor-critic, deterministic with a seed.

    If the worker's model is the learner's (same variables), each rollout costs one compiled
    call (gradient and update fused, `Learner.attach`). An exception of the worker is raised
    as a `WorkerError`; one raised by `on_update` propagates unchanged.
    """
    from tlrl.runner.gradient import run_local

    def make(attempt: int):
        if attempt:
            raise RuntimeError("run_inline cannot rebuild its worker")
        return worker

    return run_local(make, learner, total_steps, on_update, learning_rate, max_worker_restarts=0)


def run_threads(workers: Sequence, learner, total_steps: int, on_update: OnUpdate,
                learning_rate: Callable[[float], float], *, name: str = "tlrl-worker") -> Dict[str, Any]:
    """Each worker on its own thread, pushing gradients asynchronously (A3C's Hogwild!-style order,
    but each update applied whole, under the learner's lock, in the caller's thread).

    `on_update(stats)` runs in the caller's thread for every applied update; returning False
    stops training. If a worker raises, the others are stopped and joined and a `WorkerError`
    naming the worker is raised from its exception. No thread outlives this call; the workers
    are not closed.
    """
    from tlrl.runner.gradient import run_gradient_workers
    from tlrl.runner.thread_pool import ThreadPool

    workers = list(workers)
    pool = ThreadPool(lambda i, attempt: (lambda: workers[i]), len(workers), close_workers=False, name=name)
    return run_gradient_workers(pool, learner, total_steps, on_update, learning_rate,
                                steps_per_rollout=workers[0].steps_per_rollout, max_worker_restarts=0)
