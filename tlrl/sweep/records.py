"""A sweep directory's trials, read without changing anything (for `tlrl runs` and `tlrl plot SWEEP_DIR`).

The study is opened read-only (a SQLite file in read-only mode; a server without creating tables), its
search space taken from the directory's sweep.yaml as plain data: no config is validated, so nothing
imports TensorFlow.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import yaml

from tlrl.sweep.space import KINDS, Param
from tlrl.sweep.spec import SweepError
from tlrl.sweep.sweep_dir import SWEEP_FILE, read_info, storage_of, trial_run_dir


@dataclass
class TrialRecord:
    """One trial as stored: state ('complete', 'pruned', 'fail', 'running', 'waiting'), objective, values,
    each finished seed's result (`tlrl.sweep.trial`), its run directories and why it failed."""
    number: int
    state: str
    value: Optional[float]
    params: Dict[str, Any]
    seeds: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    run_dirs: List[str] = field(default_factory=list)
    worker: Optional[str] = None
    error: Optional[str] = None
    interrupted: Optional[str] = None
    last_step: Optional[int] = None
    intermediate: Dict[int, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """The state in words: complete, pruned, failed, interrupted, running, waiting."""
        if self.state == "fail":
            return "interrupted" if self.interrupted else "failed"
        return self.state


@dataclass
class SweepRecord:
    sweep_dir: str
    study: str
    seeds: List[int]
    space: Dict[str, Param]
    trials: List[TrialRecord]


def read_space(sweep_dir: str) -> Tuple[Dict[str, Param], List[int]]:
    """The search space and seeds recorded in the directory's sweep.yaml (written by tlrl sweep, read as data)."""
    path = os.path.join(sweep_dir, SWEEP_FILE)
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        space = {k: KINDS[v["type"]](**{n: x for n, x in v.items() if n != "type"})
                 for k, v in (data.get("search_space") or {}).items()}
        return space, [int(s) for s in data.get("seeds") or []]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SweepError(f"cannot read the search space of {sweep_dir} from {path}: {exc}") from None


def read_sweep(sweep_dir: str, storage: Optional[str] = None) -> SweepRecord:
    """Every trial of the sweep in `sweep_dir`, its values decoded as config values."""
    from tlrl.sweep.space import decoded
    from tlrl.sweep.study import open_storage, optuna_module

    info = read_info(sweep_dir)
    space, seeds = read_space(sweep_dir)
    optuna = optuna_module()
    store = open_storage(storage_of(sweep_dir, storage), read_only=True)
    try:
        study = optuna.load_study(study_name=info["study"], storage=store)
    except KeyError:
        raise SweepError(f"the storage of {sweep_dir} holds no study named {info['study']!r}") from None
    trials = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        run_dirs = list(attrs.get("run_dirs") or [])
        if not run_dirs and seeds:  # failed before its run directory held a run: it may hold error.txt
            run_dirs = [os.path.abspath(trial_run_dir(sweep_dir, t.number, seeds[0]))]
        trials.append(TrialRecord(t.number, t.state.name.lower(), t.value, decoded(space, dict(t.params)),
                                  dict(attrs.get("seeds") or {}), run_dirs, attrs.get("worker"), attrs.get("error"),
                                  attrs.get("interrupted"), t.last_step, dict(t.intermediate_values)))
    return SweepRecord(sweep_dir, info["study"], seeds, space, trials)
