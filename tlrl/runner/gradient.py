"""Asynchronous gradient workers (A3C): workers compute gradients, the learner applies them as they arrive.

Per worker, the driver (in the caller's thread) repeats: claim a rollout's worth of the step
budget, send the worker the current weights, receive its gradients, apply them
(`Learner.apply_flat`, under the learner's lock), report the update (`on_update`), send the
fresh weights back for the next rollout. Workers on threads, processes or Ray actors run
their rollouts in parallel while the driver applies the updates one at a time, each whole.
A worker is any object with `step(flat weights) -> (flat gradients, stats)`
(`tlrl.runner.gradient_worker.GradientWorker`); only numpy arrays and floats travel.

`run_local` is the one-worker case in the caller's thread: the worker may share the
learner's variables, and gradient and update are then one compiled call per rollout.
`tlrl.runner.gradient_source.GradientSource` runs both for `tlrl.loop.train`.

Faults. A worker that raises, whose process or actor dies, or that misses the pool's call
deadline (`worker_timeout`; it is then stopped, see `tlrl.runner.worker_pool`) loses its
rollout: the claimed steps go back to the budget, the failure is logged (logger
"tlrl.runner"), the worker is rebuilt (`attempt` + 1, which re-seeds it) and training goes on
to its step target. After `max_worker_restarts` restarts in one run, the next failure stops
training with a `WorkerError` that names the worker and carries its traceback. Whatever ends
the run (the budget is spent, `on_update` returns False or raises, Ctrl-C, a failure), every
worker is stopped before these functions return, except that a *kept* pool (`keep_pool=True`)
stays up after a run that ended normally, so the next run skips the workers' startup;
`start_workers` starts one ahead of training.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Union

from tlrl.runner.driver_policy import Restarts, StepBudget, start_pool
from tlrl.runner.host import describe_exception
from tlrl.runner.worker_pool import Failure, WorkerPool

OnUpdate = Callable[[Dict[str, Any]], Optional[bool]]


def start_workers(pool: WorkerPool, learner, *, max_worker_restarts: int = 3) -> float:
    """Start the pool's workers and wait until each holds the learner's weights; returns the seconds it took.

    Worker processes and Ray actors take seconds to start (importing TF, building the env and
    network, tracing). A worker that fails here is handled as in training; on any error the
    pool is closed.
    """
    return start_pool(pool, learner.get_flat_weights, "set_flat_weights", max_worker_restarts=max_worker_restarts)


def _budget(total: Union[int, StepBudget]) -> StepBudget:
    return total if isinstance(total, StepBudget) else StepBudget(total)


def run_gradient_workers(pool: WorkerPool, learner, total_steps: Union[int, StepBudget], on_update: OnUpdate,
                         learning_rate: Callable[[float], float], *, steps_per_rollout: int,
                         max_worker_restarts: int = 3, keep_pool: bool = False, restarts: Optional[Restarts] = None,
                         progress: Optional[Callable[[int], float]] = None,
                         cut: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """Train until `total_steps` env steps are applied (rounded up to whole rollouts); see the module docstring.

    Args:
        pool: the workers; started here unless running already (a kept pool).
        learner: a `tlrl.runner.learner.Learner` holding the shared weights.
        total_steps: env steps to train for, or a `StepBudget` shared with other calls.
        on_update: called in this thread after each applied update with the worker's stats plus
            `grad_norm`, `version`, `worker`, `learning_rate`, `worker_restarts`; False stops training.
        learning_rate: schedule of the step size over the progress 0 -> 1.
        steps_per_rollout: env steps of one worker call.
        max_worker_restarts: worker restarts allowed in this run before a failure stops it.
        keep_pool: leave the workers running when training ends normally (the budget is spent
            or `on_update` returned False), for the next run; the pool is closed on any error
            or Ctrl-C all the same.
        restarts: the restart policy to use (its count goes on across calls); default a new one.
        progress: `steps claimed before a rollout -> progress` for `learning_rate`; default
            the fraction of `total_steps`.
        cut: asked after each applied update; True ends the call at once: the calls in flight are
            dropped, their steps given back to the budget, and the pool closed.

    Returns:
        `{"restarts", "updates", "wall", "cut"}` of this run.
    """
    budget = _budget(total_steps)
    if restarts is None:
        restarts = Restarts(pool, max_worker_restarts, what="rollout")
    restarts.pool = pool
    progress = progress or (lambda before: before / max(budget.total, 1))
    claims: Dict[int, int] = {}
    updates, stopping, finished, was_cut = 0, False, False, False
    t0 = time.perf_counter()

    def dispatch(i: int, flat) -> None:
        before = budget.claim(steps_per_rollout)
        if before is not None:
            claims[i] = before
            pool.submit(i, "step", flat)

    try:
        pool.start()
        flat = learner.get_flat_weights()
        for i in range(pool.n):
            dispatch(i, flat)
        while claims and not was_cut:
            for ev in pool.poll(timeout=1.0):
                i = ev.index
                before = claims.pop(i)
                if ev.failure is not None:
                    budget.release(steps_per_rollout)
                    restarts.handle(ev.failure)
                    if not stopping:
                        dispatch(i, learner.get_flat_weights())
                    continue
                if stopping:
                    continue  # training was stopped: results still in flight are dropped
                grads, stats = ev.value
                lr = float(learning_rate(progress(before)))
                weights, info = learner.apply_flat(grads, lr)
                updates += 1
                stats.update(info, worker=i, learning_rate=lr, worker_restarts=restarts.count)
                if on_update(stats) is False:
                    stopping = True
                elif cut is not None and cut():
                    was_cut = True
                    break
                else:
                    dispatch(i, weights)
        for _ in claims:  # dropped by the cut: the pool is closed below
            budget.release(steps_per_rollout)
        finished = True
    finally:
        try:
            learner.sync()  # the network and optimizer variables hold the last update
        finally:
            if not (keep_pool and finished and not was_cut):
                pool.close()
    return {"restarts": restarts.count, "updates": updates, "wall": time.perf_counter() - t0, "cut": was_cut}


class _LocalSlot:
    """The one-worker "pool" of `run_local`, as `Restarts` sees it."""

    backend, n = "sync", 1

    def __init__(self, make_worker: Callable[[int], Any], learner):
        self.make_worker, self.learner = make_worker, learner
        self.completed, self.attempt = [0], 0
        self.worker = None

    def start(self) -> None:
        self.worker = self.make_worker(self.attempt)
        w, learner = self.worker, self.learner
        if not learner.is_attached(w) and [id(v) for v in w.variables] == [id(v) for v in learner.variables]:
            learner.attach(w)  # same variables: gradient and update in one compiled call
        w.set_weights(learner.get_weights())

    def restart(self, i: int) -> None:
        try:
            self.worker.close()
        except Exception:  # noqa: BLE001 - the worker already failed; closing is best effort
            pass
        self.attempt += 1
        self.start()


def run_local(make_worker: Callable[[int], Any], learner, total_steps: Union[int, StepBudget], on_update: OnUpdate,
              learning_rate: Callable[[float], float], *, max_worker_restarts: int = 3,
              restarts: Optional[Restarts] = None, progress: Optional[Callable[[int], float]] = None,
              cut: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """One gradient worker in the caller's thread: synchronous n-step actor-critic, deterministic with a seed.

    Args:
        make_worker: `attempt -> GradientWorker` (attempt 0 first, + 1 per restart). If the
            worker's model is the learner's own (same variables), gradient and update run
            fused in one compiled call per rollout (`Learner.attach`).
        learner, total_steps, on_update, learning_rate, max_worker_restarts, restarts, progress, cut:
            as for `run_gradient_workers`. An exception raised by `on_update` propagates unchanged.

    The worker is not closed at the end (the caller may keep it for the next run).
    """
    budget = _budget(total_steps)
    slot = _LocalSlot(make_worker, learner)
    if restarts is None:
        restarts = Restarts(slot, max_worker_restarts, what="rollout")
    restarts.pool = slot
    progress = progress or (lambda before: before / max(budget.total, 1))
    updates, was_cut = 0, False
    t0 = time.perf_counter()
    slot.start()
    while True:
        worker = slot.worker
        before = budget.claim(worker.steps_per_rollout)
        if before is None:
            break
        lr = float(learning_rate(progress(before)))
        try:
            if learner.is_attached(worker):
                stats = learner.train(worker, lr)
            else:
                grads, stats = worker.step(learner.get_flat_weights())
                stats.update(learner.apply_flat(grads, lr)[1])
        except Exception as exc:  # noqa: BLE001 - the restart policy decides
            budget.release(worker.steps_per_rollout)
            restarts.handle(Failure(0, "raised", *describe_exception(exc), exc))
            continue
        slot.completed[0] += 1
        updates += 1
        stats.update(worker=0, learning_rate=lr, worker_restarts=restarts.count)
        if on_update(stats) is False:
            break
        if cut is not None and cut():
            was_cut = True
            break
    learner.sync()
    return {"restarts": restarts.count, "updates": updates, "wall": time.perf_counter() - t0, "cut": was_cut}
