"""Gradient workers for asynchronous actor-critic training (A3C), backend-neutral.

* `GradientWorker`: own env copy + local actor-critic; `set_weights(numpy list)`,
  `compute_gradients() -> (numpy grads, stats)`, and `step(flat weights) -> (flat grads,
  stats)`, one call per rollout for remote backends.
* `Learner`: shared variables + optimizer; `apply(grads, lr) -> (fresh numpy weights, info)`
  under a lock that checkpoints share.
* `run_inline` (one worker, the caller's thread) and `run_threads` for workers that already
  exist; `tlrl.runner` runs workers on threads, processes or Ray, with restarts.

Only numpy arrays cross between a worker and the learner.
"""
from tlrl.workers.backends import StepBudget, WorkerError, run_inline, run_threads
from tlrl.workers.learner import Learner
from tlrl.workers.worker import GradientWorker, n_step_returns

__all__ = ["GradientWorker", "Learner", "StepBudget", "WorkerError", "n_step_returns", "run_inline", "run_threads"]
