"""Learning curves from run directories (matplotlib, no display needed).

Runs whose configs are equal except for the seed form one curve: the mean over seeds of
`episode_return_mean` (or any column of `metrics.csv`) against env steps, with a band of
one standard deviation (and the min-max range, lighter). Each run is interpolated onto a
common step grid, limited to the steps every run of the group reached.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tlrl.logger import METRICS_FILE, read_metrics


class PlotError(RuntimeError):
    """Nothing to plot (no metrics, unknown column, ...)."""


def _run_key(run_dir: str) -> Tuple[str, str]:
    """(group key, label): runs equal in everything but the seed share a key."""
    import yaml

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return run_dir, os.path.basename(os.path.normpath(run_dir))
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    config.pop("seed", None)
    for section in ("log", "checkpoint", "eval"):
        config.pop(section, None)
    env = config.get("env", {})
    label = f"{config.get('algo', '?')} {env.get('id', '?') if isinstance(env, dict) else env}"
    return json.dumps(config, sort_keys=True, default=str), label


def load_curves(run_dirs: Sequence[str], metric: str = "episode_return_mean"
                ) -> "OrderedDict[str, Tuple[str, List[Tuple[np.ndarray, np.ndarray]]]]":
    """Group key -> (label, [(steps, values) per run]) for the runs that have `metric`."""
    groups: "OrderedDict[str, Tuple[str, List]]" = OrderedDict()
    for run_dir in run_dirs:
        path = os.path.join(run_dir, METRICS_FILE)
        rows = read_metrics(path)
        if not rows:
            raise PlotError(f"{run_dir} has no {METRICS_FILE} rows to plot")
        if metric not in rows[0]:
            raise PlotError(f"{path} has no column {metric!r}; columns: {', '.join(rows[0])}")
        steps = np.array([r["num_timesteps"] for r in rows])
        values = np.array([r[metric] for r in rows])
        keep = np.isfinite(values)
        key, label = _run_key(run_dir)
        groups.setdefault(key, (label, []))[1].append((steps[keep], values[keep]))
    # distinct labels for groups that differ in hyperparameters only
    labels: Dict[str, int] = {}
    for key, (label, runs) in list(groups.items()):
        labels[label] = labels.get(label, 0) + 1
        if labels[label] > 1:
            groups[key] = (f"{label} ({labels[label]})", runs)
    return groups


def aggregate(runs: List[Tuple[np.ndarray, np.ndarray]], points: int = 200):
    """Common grid and the per-run values on it: (grid, values[runs, points])."""
    runs = [(s, v) for s, v in runs if len(s) > 0]
    if not runs:
        return np.zeros(0), np.zeros((0, 0))
    start = max(s[0] for s, _ in runs)
    end = min(s[-1] for s, _ in runs)
    if end <= start:
        grid = np.array([end])
    else:
        grid = np.linspace(start, end, points)
    values = np.stack([np.interp(grid, s, v) for s, v in runs])
    return grid, values


def plot_runs(run_dirs: Sequence[str], out: str, *, metric: str = "episode_return_mean",
              title: Optional[str] = None) -> str:
    """Plot the learning curves of `run_dirs` into image file `out`; return `out`.

    Raises:
        PlotError: matplotlib is not installed (the message gives the pip line), or nothing to plot.
    """
    plt = _pyplot()
    groups = load_curves(run_dirs, metric)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, runs in groups.values():
        grid, values = aggregate(runs)
        if values.size == 0:
            continue
        mean = values.mean(axis=0)
        line, = ax.plot(grid, mean, label=f"{label} (n={len(runs)})")
        if len(runs) > 1:
            std = values.std(axis=0)
            ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.25, linewidth=0)
            ax.fill_between(grid, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.1,
                            linewidth=0)
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric.replace("_", " "))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_dirs(dirs: Sequence[str], out: Optional[str], *, metric: str = "episode_return_mean",
              title: Optional[str] = None, storage: Optional[str] = None) -> List[str]:
    """`tlrl plot`: the learning curves of run directories into image `out`, or the pictures of one sweep
    directory into folder `out` (`plot_sweep`); the files written."""
    from tlrl.sweep.sweep_dir import is_sweep_dir

    if any(is_sweep_dir(d) for d in dirs):
        if len(dirs) != 1:
            raise PlotError("plot one sweep directory at a time (its trials' curves: tlrl plot SWEEP/trials/NNNN/seed_* "
                            "--out FILE.png)")
        return plot_sweep(dirs[0], out, storage=storage)
    if not out:
        raise PlotError("--out FILE.png is needed to plot run directories")
    return [plot_runs(dirs, out, metric=metric, title=title)]


def plot_sweep(sweep_dir: str, out: Optional[str] = None, *, storage: Optional[str] = None) -> List[str]:
    """Pictures of a sweep into folder `out` (default SWEEP_DIR/plots): `objective.png`, the objective of each
    trial in order (pruned trials at their last evaluation; the best so far as a line), and `param_KEY.png`
    for each swept key, the objective against the key's value (log axis for a log-scale range)."""
    from tlrl.sweep.records import read_sweep
    from tlrl.sweep.space import Categorical, IntRange, LogUniform

    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    record = read_sweep(sweep_dir, storage)
    done = [t for t in record.trials if t.state == "complete" and t.value is not None]
    pruned = [t for t in record.trials if t.state == "pruned" and t.intermediate]
    if not done and not pruned:
        raise PlotError(f"{sweep_dir} has no complete or pruned trial to plot yet")
    out = out or os.path.join(sweep_dir, "plots")
    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([t.number for t in done], [t.value for t in done], label=f"complete ({len(done)})", zorder=3)
    if pruned:
        ax.scatter([t.number for t in pruned], [t.intermediate[max(t.intermediate)] for t in pruned], marker="x",
                   color="grey", label=f"pruned ({len(pruned)}, last evaluation)", zorder=2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if done:
        best = np.maximum.accumulate([t.value for t in done])
        ax.step([t.number for t in done], best, where="post", color="C1", label="best so far")
    paths = [_save(fig, ax, plt, os.path.join(out, "objective.png"), "trial", "objective",
                   f"sweep {record.study}: objective per trial")]
    for key, param in record.space.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        values = [t.params.get(key) for t in done]
        if isinstance(param, Categorical):
            labels = [json.dumps(c) if isinstance(c, (list, dict)) else str(c) for c in param.choices]
            ax.set_xticks(range(len(labels)), labels)
            values = [labels.index(json.dumps(v) if isinstance(v, (list, dict)) else str(v)) for v in values]
        elif isinstance(param, LogUniform) or (isinstance(param, IntRange) and param.log):
            ax.set_xscale("log")
        elif isinstance(param, IntRange):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.scatter(values, [t.value for t in done], zorder=3)
        paths.append(_save(fig, ax, plt, os.path.join(out, f"param_{_file_safe(key)}.png"), key, "objective",
                           f"{key} (complete trials: {len(done)})"))
    return paths


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotError('plotting needs matplotlib: pip install "tlrl[plot]" (or pip install matplotlib)') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, ax, plt, path: str, xlabel: str, ylabel: str, title: str) -> str:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
