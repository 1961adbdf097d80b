"""One trial of a sweep: the base config with the trial's values, trained once per seed through the code path
of `tlrl train` (`tlrl.config.load_config` with --set items, `tlrl.run_dir.prepare_new`,
`tlrl.training.run_training`), each seed in an ordinary run directory; the objective is the seeds' final
(or best) evaluation, aggregated by their mean or by the worst seed.

Periodic evaluations go to Optuna as intermediate values through `run_training(on_eval=...)`, so the
pruner can stop a trial early (`optuna.TrialPruned` raised inside training ends the run there). Seed i's
evaluations are reported at step `i * total_steps + (n // eval_freq) * eval_freq` and its final evaluation
at `(i + 1) * total_steps`, so a trial's first seed is compared with other trials' first seed at the same
step. A trial whose config cannot be loaded fails with its error (recorded, never retried); one stopped by
Ctrl-C or SIGTERM fails as interrupted.
"""
from __future__ import annotations

import os
import socket
import statistics
from typing import Any, Dict, List, Optional

from tlrl.sweep.space import suggest
from tlrl.sweep.spec import SweepSpec
from tlrl.sweep.sweep_dir import BASE_FILE, trial_run_dir


class TrialInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the trial (it fails, marked `interrupted`; the sweep stops)."""


class StopRequest:
    """Whether the worker was asked to stop (set by its signal handler, or when a run reports a signal)."""

    def __init__(self):
        self.requested = False
        self.signal: Optional[str] = None

    def set(self, signal_name: str) -> None:
        self.requested, self.signal = True, self.signal or signal_name


class EvalReporter:
    """`run_training`'s `on_eval`: each periodic evaluation to the trial as an intermediate value (may prune)."""

    def __init__(self, trial, offset: int, eval_freq: int, reported: set):
        self.trial, self.offset, self.eval_freq, self.reported = trial, offset, eval_freq, reported
        self.values: List[float] = []

    def __call__(self, step: int, mean: float, std: float) -> None:
        self.values.append(float(mean))
        report(self.trial, self.reported, self.offset + step // self.eval_freq * self.eval_freq, mean,
               f"at step {step}")


def report(trial, reported: set, step: int, value: float, where: str) -> None:
    """Give the trial `value` at `step` (once per step) and raise optuna.TrialPruned if the pruner says so."""
    import optuna

    if step in reported:
        return
    reported.add(step)
    trial.report(float(value), step)
    if trial.should_prune():
        raise optuna.TrialPruned(f"evaluation {value:.1f} {where} is below what the pruner allows")


class TrialRunner:
    """The Optuna objective of a sweep (one call: one trial)."""

    def __init__(self, spec: SweepSpec, sweep_dir: str, stop: StopRequest):
        self.spec, self.sweep_dir, self.stop = spec, sweep_dir, stop
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial) -> float:
        spec = self.spec
        values = {key: suggest(trial, key, param) for key, param in spec.search_space.items()}
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("run_dirs", [])  # (a retried trial starts with the attributes of the one that died)
        trial.set_user_attr("seeds", {})
        reported: set = set()
        scores: List[float] = []
        for index, seed in enumerate(spec.seeds):
            if self.stop.requested:
                self._interrupted(trial)
            try:
                result = self._run_seed(trial, index, seed, values, reported)
            except KeyboardInterrupt:  # a second Ctrl-C, or a cancelled Ray task
                trial.set_user_attr("interrupted", "aborted")
                raise
            except Exception as exc:
                import optuna

                if not isinstance(exc, (optuna.TrialPruned, TrialInterrupted)):
                    trial.set_user_attr("error", f"seed {seed}: {exc}" if str(exc) else f"seed {seed}: "
                                                                                       f"{type(exc).__name__}")
                raise
            scores.append(result["score"])
            trial.set_user_attr("seeds", {**trial.user_attrs["seeds"], str(seed): result})
            if index + 1 < len(spec.seeds):  # the next seeds are worth running only if this one passes
                report(trial, reported, (index + 1) * spec.base_config.total_steps, result["eval_return_mean"],
                       f"(seed {seed}'s final)")
        return min(scores) if spec.objective.aggregate == "worst" else statistics.fmean(scores)

    def _run_seed(self, trial, index: int, seed: int, values: Dict[str, Any], reported: set) -> Dict[str, Any]:
        from tlrl.config import ConfigError, load_config
        from tlrl.run_dir import RunError, prepare_new, write_error
        from tlrl.training import run_training

        base = os.path.join(self.sweep_dir, BASE_FILE)
        sets = self.spec.trial_sets(values)
        run_dir = trial_run_dir(self.sweep_dir, trial.number, seed)
        try:
            config = load_config(base, sets, seed=seed)
            run = prepare_new(config, run_dir, config_path=base, overrides=sets, seed=seed)
        except (ConfigError, RunError) as exc:
            write_error(run_dir, str(exc))
            raise
        trial.set_user_attr("run_dirs", [*trial.user_attrs["run_dirs"], os.path.abspath(run_dir)])
        freq = int(config.eval.eval_freq)
        reporter = EvalReporter(trial, index * int(config.total_steps), freq, reported) if freq else None
        summary = run_training(run, progress=False, on_eval=reporter)
        if summary.get("interrupted"):
            self.stop.set(summary.get("signal") or "SIGINT")
            self._interrupted(trial)
        final = float(summary["eval_return_mean"])
        best = max([final, *(reporter.values if reporter else [])])
        return {"run_dir": os.path.abspath(run_dir), "eval_return_mean": final,
                "eval_return_std": float(summary["eval_return_std"]), "best_eval": best,
                "num_timesteps": int(summary["num_timesteps"]), "wall_seconds": float(summary["wall_seconds"]),
                "score": final if self.spec.objective.metric == "final" else best}

    def _interrupted(self, trial) -> None:
        trial.set_user_attr("interrupted", self.stop.signal or "SIGINT")
        raise TrialInterrupted(f"stopped by {self.stop.signal or 'SIGINT'}")


def best_run_dir(trial) -> Optional[str]:
    """The run directory of a finished trial's best seed (the highest final evaluation), for `tlrl export`."""
    seeds = trial.user_attrs.get("seeds") or {}
    best = max(seeds.values(), key=lambda r: r["eval_return_mean"], default=None)
    return best["run_dir"] if best else None
