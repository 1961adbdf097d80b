"""Gradient workers for asynchronous actor-critic training (A3C), backend-neutral.

* `GradientWorker`: own env copy + local actor-critic; `set_weights(numpy list)`,
  `compute_gradients() -> (numpy grads, stats)`, and `step(flat weights) -> (flat grads,
  stats)`, one call per rollout for remote backends.
* `Learner`: shared variables + optimizer; `apply(grads, lr) -> (fresh numpy weights, info)`
  under a lock that checkpoints share; with `tlrl.optim.Adam` the step runs on a numpy copy
  (`HostAdam`) and the TF variables are written back when the lock is taken.
* `run_inline` (one worker, the caller's thread) and `run_threads` for workers that already
  exist; `tlrl.runner` runs workers on threads, processes or Ray, with restarts.

Only numpy arrays cross between a worker and the learner.
"""
from tlrl.workers.backends import StepBudget, WorkerError, run_inline, run_threads
from tlrl.workers.host_adam import HostAdam
from tlrl.workers.learner import Learner
from tlrl.workers.worker import GradientWorker, n_step_returns

__all__ = ["GradientWorker", "HostAdam", "Learner", "StepBudget", "WorkerError", "n_step_returns", "run_inline", "run_threads"]
