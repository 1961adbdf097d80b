"""`tlrl runs`: the hub's view of run directories and sweep trials, as a table, JSON or the best run's path.

One row per run directory: algo, env, seed, steps, evaluation (mean ± std), wall time, status and, for a
sweep's trials, the trial, its objective and its swept values. A run's row comes from its config.yaml and
summary.json (a run still going or stopped: the last rows of metrics.csv and evaluations.csv); a sweep's
rows add what its study stores (`tlrl.sweep.records`: state, objective, values; trials run on other
machines appear from the storage alone). Everything is read, nothing is written, and no config is
validated, so no TensorFlow is imported.

`--best` prints the run directory to export: the best complete trial by objective (then its seed with the
highest final evaluation) when the rows hold sweep trials, else the complete run with the highest final
evaluation.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence

import yaml

from tlrl.logger import EVAL_FILE, METRICS_FILE, read_metrics
from tlrl.run_lock import LOCK_FILE

#: Columns of the table, in order (then one per swept key); the keys --sort and --filter take.
COLUMNS = ("run_dir", "algo", "env", "seed", "steps", "eval", "wall", "status", "sweep", "trial", "objective")
DEFAULT_DIRS = ("runs", "sweeps")


class RunsError(RuntimeError):
    """Nothing to list, or an unknown --sort / --filter key."""


def runs_command(dirs: Sequence[str], *, sort: Optional[str] = None, reverse: bool = False,
                 filters: Sequence[str] = (), best: bool = False, as_json: bool = False,
                 storage: Optional[str] = None) -> str:
    """The output of `tlrl runs`: a table, JSON rows, or (with `best`) the best run directory."""
    rows = collect(dirs, storage=storage)
    rows = apply_filters(rows, filters)
    if sort:
        rows = sorted_rows(rows, sort, reverse)
    if best:
        row = best_row(rows)
        return json.dumps(row, indent=2) if as_json else row["run_dir"]
    return json.dumps(rows, indent=2) if as_json else table(rows)


def collect(dirs: Sequence[str], storage: Optional[str] = None) -> List[Dict[str, Any]]:
    """Rows of the run and sweep directories in `dirs` (each one such a directory or a folder holding them)."""
    if not dirs:
        dirs = [d for d in DEFAULT_DIRS if os.path.isdir(d)]
        if not dirs:
            raise RunsError("no runs/ or sweeps/ folder here; name the run or sweep directories: tlrl runs DIR ...")
    rows: List[Dict[str, Any]] = []
    for d in dirs:
        if not os.path.isdir(d):
            raise RunsError(f"{d} is not a directory")
        rows += _walk(d, storage, depth=0)
    return rows


def _walk(path: str, storage: Optional[str], depth: int) -> List[Dict[str, Any]]:
    from tlrl.sweep.sweep_dir import is_sweep_dir

    if is_sweep_dir(path):
        return sweep_rows(path, storage)
    if os.path.isfile(os.path.join(path, "config.yaml")) or os.path.isfile(os.path.join(path, "error.txt")):
        return [run_row(path)]
    if depth >= 4:
        return []
    out = []
    for name in sorted(os.listdir(path)):
        child = os.path.join(path, name)
        if os.path.isdir(child) and not name.startswith("."):
            out += _walk(child, storage, depth + 1)
    return out


def run_row(run_dir: str) -> Dict[str, Any]:
    """The row of one run directory, from its files."""
    config = _read(os.path.join(run_dir, "config.yaml"), yaml.safe_load) or {}
    summary = _read(os.path.join(run_dir, "summary.json"), json.load) or {}
    env = config.get("env")
    row: Dict[str, Any] = {"run_dir": _shown_path(run_dir), "algo": config.get("algo"),
                           "env": env.get("id") if isinstance(env, dict) else env, "seed": config.get("seed"),
                           "steps": summary.get("num_timesteps"), "total_steps": config.get("total_steps"),
                           "eval_mean": summary.get("eval_return_mean"), "eval_std": summary.get("eval_return_std"),
                           "wall": summary.get("wall_seconds"), "status": _status(run_dir, summary, config),
                           "sweep": None, "trial": None, "objective": None, "params": {}}
    if not summary:
        metrics = read_metrics(os.path.join(run_dir, METRICS_FILE))
        evals = read_metrics(os.path.join(run_dir, EVAL_FILE))
        if metrics:
            row.update(steps=int(metrics[-1]["num_timesteps"]), wall=_number(metrics[-1].get("wall")))
        if evals:
            row.update(eval_mean=_number(evals[-1]["eval_return_mean"]), eval_std=_number(evals[-1]["eval_return_std"]))
    return row


def sweep_rows(sweep_dir: str, storage: Optional[str]) -> List[Dict[str, Any]]:
    """A row per seed of each trial of a sweep: the run's files where this machine has them, and the study's."""
    from tlrl.sweep.records import read_sweep

    record = read_sweep(sweep_dir, storage)
    rows = []
    for trial in record.trials:
        for run_dir in trial.run_dirs:
            if os.path.isdir(run_dir):
                row = run_row(run_dir)
            else:  # run on another machine (or not started): what the study knows
                row = {"run_dir": run_dir, "algo": None, "env": None, "seed": None, "steps": None, "eval_mean": None,
                       "eval_std": None, "wall": None}
            result = next((r for r in trial.seeds.values() if r.get("run_dir") == run_dir), None)
            if result and row["eval_mean"] is None:
                row.update(eval_mean=result["eval_return_mean"], eval_std=result["eval_return_std"],
                           steps=result["num_timesteps"], wall=result["wall_seconds"])
            row.update(status=trial.status, sweep=record.study, trial=trial.number, objective=trial.value,
                       params=trial.params, worker=trial.worker)
            if trial.error:
                row["error"] = trial.error
            rows.append(row)
    return rows


def _status(run_dir: str, summary: Dict[str, Any], config: Dict[str, Any]) -> str:
    if summary:
        return "complete"
    if not config:
        return "failed" if os.path.isfile(os.path.join(run_dir, "error.txt")) else "empty"
    return "running" if _lock_holder_alive(run_dir) else "stopped"


def _lock_holder_alive(run_dir: str) -> bool:
    """Whether the process whose pid the run's lock file holds is alive (read only: the lock is not touched)."""
    try:
        with open(os.path.join(run_dir, LOCK_FILE)) as fh:
            pid = int(fh.read().strip() or 0)
        if pid <= 0:
            return False
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _read(path: str, load) -> Any:
    try:
        with open(path) as fh:
            return load(fh)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _number(value: Any) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def _shown_path(path: str) -> str:
    """`path` relative to the current directory when it lies inside it (shorter), else as it is."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


# ----- sort, filter, best ------------------------------------------------------------------------------------------
def value_of(row: Dict[str, Any], key: str) -> Any:
    """The value a --sort or --filter KEY reads: a column ('eval' is the mean), or a swept key."""
    if key == "eval":
        return row.get("eval_mean")
    if key in row and key != "params":
        return row[key]
    return row.get("params", {}).get(key)


def _check_key(rows: List[Dict[str, Any]], key: str, option: str) -> None:
    swept = sorted({k for r in rows for k in r.get("params", {})})
    if key not in COLUMNS and key not in swept and not any(key in r for r in rows):
        raise RunsError(f"{option} {key!r} is not a column; use one of {', '.join(COLUMNS + tuple(swept))}")


def sorted_rows(rows: List[Dict[str, Any]], key: str, reverse: bool = False) -> List[Dict[str, Any]]:
    """Rows by `key` (rows without a value last, in either order)."""
    _check_key(rows, key, "--sort")
    have = [r for r in rows if value_of(r, key) is not None]
    missing = [r for r in rows if value_of(r, key) is None]
    try:
        have.sort(key=lambda r: value_of(r, key), reverse=reverse)
    except TypeError:  # mixed kinds (a categorical of numbers and strings): compare as text
        have.sort(key=lambda r: str(value_of(r, key)), reverse=reverse)
    return have + missing


def apply_filters(rows: List[Dict[str, Any]], filters: Sequence[str]) -> List[Dict[str, Any]]:
    """Rows where each KEY=VALUE holds (numbers compare as numbers, lists as their JSON text)."""
    for item in filters:
        if "=" not in item:
            raise RunsError(f"--filter {item!r}: expected KEY=VALUE, e.g. --filter algo=ppo")
        key, wanted = (s.strip() for s in item.split("=", 1))
        _check_key(rows, key, "--filter")
        rows = [r for r in rows if _equal(value_of(r, key), wanted)]
    return rows


def _equal(value: Any, wanted: str) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    if isinstance(value, (list, dict, bool)) or value is None:
        return json.dumps(value) == wanted or str(value) == wanted
    return str(value) == wanted


def best_row(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The run to export (see the module docstring)."""
    done = [r for r in rows if r["status"] == "complete" and r.get("eval_mean") is not None]
    trials = [r for r in done if r.get("trial") is not None and r.get("objective") is not None]
    if trials:
        top = max(trials, key=lambda r: r["objective"])
        done = [r for r in trials if (r["sweep"], r["trial"]) == (top["sweep"], top["trial"])]
    if not done:
        raise RunsError("no complete run with a final evaluation among these rows")
    return max(done, key=lambda r: r["eval_mean"])


# ----- the table -----------------------------------------------------------------------------------------------------
def table(rows: List[Dict[str, Any]]) -> str:
    """Rows as aligned text columns (a column no row has a value for is left out)."""
    if not rows:
        return "(no runs)"
    swept = sorted({k for r in rows for k in r.get("params", {})})
    cells = [[_cell(r, c) for c in COLUMNS] + [_format(r.get("params", {}).get(k)) for k in swept] for r in rows]
    header = list(COLUMNS) + swept
    keep = [i for i in range(len(header)) if any(row[i] != "" for row in cells)]
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) for i in keep]
    lines = ["  ".join(header[i].ljust(w) for i, w in zip(keep, widths)).rstrip()]
    lines += ["  ".join(row[i].ljust(w) for i, w in zip(keep, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(row: Dict[str, Any], column: str) -> str:
    if column == "eval":
        mean, std = row.get("eval_mean"), row.get("eval_std")
        return "" if mean is None else f"{mean:.1f} ± {std:.1f}" if std is not None else f"{mean:.1f}"
    if column == "wall":
        wall = row.get("wall")
        return "" if wall is None else f"{wall:.0f}s" if wall < 600 else f"{wall / 60:.0f}m"
    if column == "steps":
        steps, total = row.get("steps"), row.get("total_steps")
        return "" if steps is None else f"{steps}/{total}" if total and steps != total else str(steps)
    return _format(row.get(column))


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
