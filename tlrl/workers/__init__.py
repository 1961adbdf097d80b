"""Gradient workers for asynchronous actor-critic training (A3C), backend-neutral.

* `GradientWorker`: own env copy + local actor-critic; `set_weights(numpy list)`,
  `compute_gradients() -> (numpy grads, stats)`.
* `Learner`: shared variables + optimizer; `apply(grads, lr) -> (fresh numpy weights, info)`
  under a lock that checkpoints share.
* Backends: `run_inline` (one worker, the caller's thread) and `run_threads`.

Only numpy arrays cross between a worker and the learner, so process or Ray backends can
reuse the same worker.
"""
from tlrl.workers.backends import StepBudget, WorkerError, run_inline, run_threads
from tlrl.workers.learner import Learner
from tlrl.workers.worker import GradientWorker, n_step_returns

__all__ = ["GradientWorker", "Learner", "StepBudget", "WorkerError", "n_step_returns", "run_inline", "run_threads"]
