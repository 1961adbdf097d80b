"""Hyperparameter and seed sweeps on Optuna: `tlrl sweep SWEEP.yaml` (docs/sweeps.md).

A sweep file (`tlrl.sweep.spec`) names a tlrl config, a search space over its keys
(`tlrl.sweep.space`), the seeds of each trial, the objective, the budget, the sampler and the pruner.
Each trial is the config with the trial's values, trained per seed by the code of `tlrl train` into
ordinary run directories under the sweep directory (`tlrl.sweep.trial`, `tlrl.sweep.sweep_dir`). The
study lives in an Optuna storage (`tlrl.sweep.study`): a SQLite file in the sweep directory, or a
PostgreSQL server that processes on many machines join; workers (`tlrl.sweep.worker`) pull trials from
it, in this process, in N processes or as Ray tasks (`tlrl.sweep.launch`).
"""
from tlrl.sweep.spec import SweepError, SweepSpec, load_sweep

__all__ = ["SweepError", "SweepSpec", "load_sweep", "run_sweep"]


def run_sweep(*args, **kwargs):
    """`tlrl.sweep.launch.run_sweep` (imported on use: it imports Optuna)."""
    from tlrl.sweep.launch import run_sweep as run

    return run(*args, **kwargs)
