"""A sweep's Optuna study and its storage: a SQLite file in the sweep directory by default, or a database server
(`--storage postgresql://...`) that any number of `tlrl sweep` processes, on any machines, join.

Every storage is an Optuna `RDBStorage` with heartbeats: a running trial writes one every
`failures.heartbeat_interval` seconds; one silent for `failures.grace_period` (its worker was killed or
its machine lost) is marked failed by the next process that starts a trial, and
`RetryHeartbeatStaleTrialCallback` (Optuna 5's name for `RetryFailedTrialCallback`) queues it again with
the same values, at most `failures.max_retry` times. The study records what it was made from (the sweep
and its resolved config); a process that brings a different sweep under the same name is refused.
"""
from __future__ import annotations

import json
import os
import random
import time
import warnings
from typing import Any, Dict, List, Optional

from tlrl.sweep.spec import SweepError, SweepSpec
from tlrl.sweep.start_lock import driver_url

STUDY_DB = "study.db"
#: The study's user attribute holding what it was made from (`SweepSpec.fingerprint`).
MADE_FROM = "tlrl_sweep"
SCHEMES = ("sqlite", "postgresql", "mysql")


def optuna_module():
    """Optuna, quiet (only errors logged; its experimental-API warnings off), or SweepError with the pip line."""
    try:
        import optuna
    except ImportError:
        raise SweepError('tlrl sweep needs Optuna: pip install "tlrl[sweep]" (optuna and psycopg2-binary)') from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_storage(sweep_dir: str) -> str:
    """The SQLite database of a sweep directory (nothing to start)."""
    return f"sqlite:///{os.path.abspath(os.path.join(sweep_dir, STUDY_DB))}"


def masked(url: str) -> str:
    """`url` with its password hidden (what is written to files and printed)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is refused by check_url anyway
        return url


def check_url(url: str) -> str:
    """`url` if it names a database Optuna can use, else SweepError with the forms it takes."""
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise SweepError(f"--storage {masked(url)!r} is not a database URL; use postgresql://USER:PASSWORD@HOST:5432/DB "
                         f"(a server every process can reach) or sqlite:///PATH/study.db (one machine)")
    return url


def open_storage(url: str, failures=None, *, read_only: bool = False):
    """The Optuna RDBStorage at `url`, with heartbeats and the retry of dead trials from `failures`
    (`tlrl.sweep.spec.Failures`); `read_only` opens a SQLite file so that nothing can be written."""
    optuna = optuna_module()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    check_url(url)
    url = driver_url(url)
    sqlite = url.startswith("sqlite")
    kwargs: Dict[str, Any] = {"engine_kwargs": {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}}
    if read_only:
        if sqlite:
            path = url.split(":///", 1)[1]
            if not os.path.isfile(path):
                raise SweepError(f"the sweep's study database {path} does not exist")
            url = f"sqlite:///file:{path}?mode=ro&uri=true"
        kwargs.update(skip_table_creation=True, skip_compatibility_check=True)
    elif failures is not None:
        kwargs.update(heartbeat_interval=failures.heartbeat_interval, grace_period=failures.grace,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=failures.max_retry))
    try:
        return _with_retries(lambda: RDBStorage(url, **kwargs))
    except ImportError as exc:
        raise SweepError(f"the storage {masked(url)} needs a database driver ({exc}); pip install \"tlrl[sweep]\" "
                         f"(psycopg2-binary for PostgreSQL)") from None
    except optuna.exceptions.StorageInternalError as exc:
        raise SweepError(f"cannot open the storage {masked(url)}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's connection errors: a server down, a wrong password
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepError(f"cannot open the storage {masked(url)}: {first}. Is the database server running and "
                         f"reachable? (docs/sweeps.md says how to start one)") from None


def _with_retries(make, attempts: int = 5):
    """`make()`, tried again after a short pause when it fails: processes that start together on a new database
    race to create Optuna's tables (one of them gets "relation already exists"); the last error is raised."""
    for attempt in range(attempts):
        try:
            return make()
        except ImportError:
            raise
        except Exception:  # noqa: BLE001 - SQLAlchemy's errors of the race (and of a server down: raised at the end)
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.2)


def make_sampler(spec: SweepSpec, worker: int = 0, existing: int = 0):
    """The sampler of `spec` for worker `worker` of a process that starts on a study of `existing` trials: its seed
    is `sampler.seed + worker + 1000 * existing`, so workers differ and a resumed sweep does not draw its first
    values again (a sweep is reproducible when one worker runs it from the start)."""
    optuna = optuna_module()
    seed = None if spec.sampler.seed is None else spec.sampler.seed + worker + 1000 * existing
    if spec.sampler.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler.type == "grid":
        return optuna.samplers.GridSampler(spec.grid(), seed=seed)
    startup = {} if spec.sampler.n_startup_trials is None else {"n_startup_trials": spec.sampler.n_startup_trials}
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, **startup)  # liar: workers spread out


def make_pruner(spec: SweepSpec):
    optuna = optuna_module()
    pruner = spec.pruner
    if pruner.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.n_startup_trials,
                                           n_warmup_steps=pruner.n_warmup_steps)
    if pruner.type == "threshold":
        return optuna.pruners.ThresholdPruner(lower=pruner.lower, upper=pruner.upper,
                                              n_warmup_steps=pruner.n_warmup_steps)
    return optuna.pruners.NopPruner()


def create_or_join(spec: SweepSpec, storage, worker: int = 0):
    """The study `spec.name` in `storage`: made now, or joined if it exists and was made from the same sweep."""
    optuna = optuna_module()
    study = optuna.create_study(storage=storage, study_name=spec.name, direction="maximize", load_if_exists=True,
                                sampler=make_sampler(spec, worker), pruner=make_pruner(spec))
    made_from = study.user_attrs.get(MADE_FROM)
    if made_from is None:
        if study.get_trials(deepcopy=False):
            raise SweepError(f"the storage already holds a study named {spec.name!r} that tlrl sweep did not make; "
                             f"give the sweep another name (name: ... in the sweep file)")
        study.set_user_attr(MADE_FROM, spec.fingerprint())
    elif made_from != spec.fingerprint():
        raise SweepError(f"the study {spec.name!r} in this storage was made from a different sweep (they differ in "
                         f"{', '.join(_differences(json.loads(made_from), json.loads(spec.fingerprint())))}); "
                         f"use the same sweep file and config to join it, or give this one another name")
    return study


def load_study(spec: SweepSpec, storage, worker: int = 0):
    """The existing study of `spec` in `storage`, with the sweep's sampler (for worker `worker`) and pruner."""
    optuna = optuna_module()
    existing = len(optuna.load_study(study_name=spec.name, storage=storage).get_trials(deepcopy=False))
    return optuna.load_study(study_name=spec.name, storage=storage, sampler=make_sampler(spec, worker, existing),
                             pruner=make_pruner(spec))


def _differences(a: Dict[str, Any], b: Dict[str, Any], prefix: str = "") -> List[str]:
    """The dotted keys whose values differ between two nested mappings."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}")
    return out


def counts(study) -> Dict[str, int]:
    """Trials of the study by state ('complete', 'pruned', 'fail', 'running', 'waiting')."""
    out: Dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name.lower()] = out.get(trial.state.name.lower(), 0) + 1
    return out


def best_trial(study) -> Optional[Any]:
    """The complete trial with the highest objective, or None."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number), default=None)
