"""Training logs: a CSV of metrics, TensorBoard event files and a progress bar, as one callback.

`Logger` is a callback for any agent's `learn(total_steps, callback=)`: the loop
(`tlrl.loop`) calls it at each boundary with `info = {"num_timesteps", "metrics",
"episode_returns"}`, `metrics` empty where no update ran (off-policy agents before
`learning_starts`; the row then has empty loss cells). Every `interval`
env steps it writes one row to `metrics.csv` (`num_timesteps, wall, steps_per_s,
episode_return_mean, episodes`, then every metric the agent reported except `AGENT_DUPLICATES`)
and the same scalars to TensorBoard; the progress bar shows steps, steps/s and the recent episode return.

The logger's own state (recent returns, the next row's step, the wall clock) is saved with
each checkpoint (`state()` / `Logger(..., state=)`), and `MetricsCSV.truncate_after(step)`
drops the rows written after the checkpoint, so a resumed run continues the file with no
duplicate and no missing row; `truncate_events_after(tb_dir, step)` does the same for the
TensorBoard event files (otherwise a resumed run's curves would hold every step past the
checkpoint twice).

TensorBoard files are written with `tf.summary.write` and the scalar plugin's metadata,
which needs no `tensorboard` package (install it only to view them).

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> log = Logger(d, total_steps=300, interval=100, tensorboard=False, progress=False)
>>> for step in (100, 200, 300):
...     log(None, {"num_timesteps": step, "metrics": {"loss": 0.5}, "episode_returns": [float(step)]})
>>> log.close()
>>> [row["num_timesteps"] for row in read_metrics(os.path.join(d, "metrics.csv"))]
[100.0, 200.0, 300.0]
"""
from __future__ import annotations

import csv
import math
import os
import sys
import time
from collections import deque
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

METRICS_FILE = "metrics.csv"
EVAL_FILE = "evaluations.csv"
TB_DIR = "tb"
BASE_COLUMNS = ["num_timesteps", "wall", "steps_per_s", "episode_return_mean", "episodes"]
#: Agent metrics that a logger column already measures, left out of the rows: agents report
#: `steps_per_second` since their `learn` call began; `steps_per_s` is over each row's interval.
AGENT_DUPLICATES = frozenset({"steps_per_second"})
EVAL_COLUMNS = ["num_timesteps", "eval_return_mean", "eval_return_std"]


def read_metrics(path: str) -> List[Dict[str, float]]:
    """Rows of a metrics CSV as dicts of floats ("nan", "inf", "-inf" and empty cells, a metric that
    row does not have, read as NaN and infinities); incomplete rows are skipped."""
    return [{k: float(v) if v != "" else math.nan for k, v in row.items()} for row in _read_cells(path)]


def _read_cells(path: str) -> List[Dict[str, str]]:
    """The complete rows of a CSV as dicts of its cells, unparsed (so a rewrite keeps them as written)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return []
    header, out = rows[0], []
    for row in rows[1:]:
        if len(row) != len(header):
            continue
        try:
            [float(v) for v in row if v != ""]
        except ValueError:
            continue
        out.append(dict(zip(header, row)))
    return out


class MetricsCSV:
    """Append-only CSV with a header that grows when new metric names appear (the file is then rewritten)."""

    def __init__(self, path: str, base_columns: List[str]):
        self.path = path
        self.columns = list(base_columns)
        if os.path.exists(path):
            with open(path, newline="") as fh:
                header = next(csv.reader(fh), None)
            if header:
                self.columns = header + [c for c in base_columns if c not in header]

    def truncate_after(self, step: float) -> int:
        """Keep only complete rows with `num_timesteps <= step`; return how many rows were kept."""
        rows = [r for r in _read_cells(self.path) if float(r.get("num_timesteps") or "nan") <= step]
        self._rewrite(rows)
        return len(rows)

    def write(self, row: Mapping[str, float]) -> None:
        new = [k for k in row if k not in self.columns]
        if new:
            old = _read_cells(self.path)
            self.columns += new
            self._rewrite(old)
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        line = _csv_line([row.get(c, "") for c in self.columns])
        with open(self.path, "a", newline="") as fh:
            fh.write(line if exists else _csv_line(self.columns) + line)  # one write: a row is whole or absent

    def _rewrite(self, rows: List[Mapping[str, str]]) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as fh:
            fh.write(_csv_line(self.columns))
            for r in rows:
                fh.write(_csv_line([r.get(c, "") for c in self.columns]))
        os.replace(tmp, self.path)


def _csv_line(values) -> str:
    """One CSV line; floats as integers where exact, NaN and infinities as "nan", "inf", "-inf" (an empty
    cell means the row has no such metric)."""
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)):
            v = float(v)
            v = str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)  # repr: "nan", "inf", "-inf"
        out.append(str(v))
    return ",".join(out) + "\n"


def truncate_events_after(logdir: str, step: int) -> int:
    """Drop the summaries of steps after `step` from the TensorBoard event files in `logdir`; returns how many.

    A file is rewritten (to a temporary file, then renamed over it) only if it has such
    summaries; other records (the file-version header) are kept byte for byte. A record torn by
    a kill mid-write ends the file there.
    """
    import glob

    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    dropped = 0
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        kept, cut = [], 0
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                event = event_pb2.Event.FromString(record)
                if event.HasField("summary") and event.step > step:
                    cut += 1
                else:
                    kept.append(record)
        except tf.errors.DataLossError:  # a torn last record: the file ends before it
            cut += 1
        if not cut:
            continue
        tmp = os.path.join(logdir, ".truncating-" + os.path.basename(path))  # not an events.* name
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in kept:
                writer.write(record)
        os.replace(tmp, path)
        dropped += cut
    return dropped


class TensorBoardWriter:
    """Scalars to TensorBoard event files with `tf.summary.write` (no `tensorboard` package needed).

    The event file is opened at the first `scalars` call, so a resumed run can truncate the
    earlier files (`truncate_events_after`) until it logs its first row.
    """

    def __init__(self, logdir: str):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf, self._logdir = tf, logdir
        self._writer = None
        meta = summary_pb2.SummaryMetadata()
        meta.plugin_data.plugin_name = "scalars"
        meta.data_class = summary_pb2.DATA_CLASS_SCALAR
        self._metadata = meta.SerializeToString()

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        tf = self._tf
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._logdir)
        with self._writer.as_default():
            for tag, value in values.items():
                if value is None:
                    continue  # NaN and inf are written: TensorBoard shows them, and a diverging run is visible
                tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=self._metadata)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class Logger:
    """Callback that logs metrics rows every `interval` steps to CSV, TensorBoard and a progress bar.

    Args:
        run_dir: where `metrics.csv`, `evaluations.csv` and `tb/` go.
        total_steps: the run's target step count (for the progress bar).
        interval: env steps between rows (a row is written at the first update at or past each multiple).
        tensorboard: write TensorBoard event files.
        progress: show a tqdm progress bar on stderr.
        state: what `state()` returned at the checkpoint this run resumes from.
        start_step: the agent's step count at start (the checkpoint's step when resuming).
        window: how many recent episodes `episode_return_mean` averages.
    """

    def __init__(self, run_dir: str, total_steps: int, interval: int = 1000, *, tensorboard: bool = True,
                 progress: bool = True, state: Optional[Mapping[str, Any]] = None, start_step: int = 0,
                 window: int = 100):
        self.run_dir = run_dir
        self.total_steps = int(total_steps)
        self.interval = int(interval)
        os.makedirs(run_dir, exist_ok=True)
        self.csv = MetricsCSV(os.path.join(run_dir, METRICS_FILE), BASE_COLUMNS)
        self.eval_csv = MetricsCSV(os.path.join(run_dir, EVAL_FILE), EVAL_COLUMNS)
        state = dict(state or {})
        self.recent = deque(state.get("recent_returns", []), maxlen=window)
        self.episodes = int(state.get("episodes", 0))
        self.wall_offset = float(state.get("wall", 0.0))
        self.step = int(state.get("step", start_step))
        self.next_row = int(state.get("next_row", (self.step // self.interval + 1) * self.interval))
        self.tb_dir = os.path.join(run_dir, TB_DIR) if tensorboard else None
        if state or start_step:
            self.truncate_after(self.step)
        self._t0 = time.perf_counter()
        self._last_row = (self.step, 0.0)  # (step, session wall) of the previous row
        self.last_metrics: Dict[str, float] = {}
        self.tb = TensorBoardWriter(self.tb_dir) if tensorboard else None
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total_steps, initial=min(self.step, self.total_steps), unit="step",
                            dynamic_ncols=True, file=sys.stderr, smoothing=0.1, mininterval=0.5)

    # ----- clock --------------------------------------------------------------------------------------------
    @property
    def wall(self) -> float:
        """Training seconds so far, over every session of the run."""
        return self.wall_offset + (time.perf_counter() - self._t0)

    # ----- the callback ----------------------------------------------------------------------------------------
    def __call__(self, agent, info: Mapping[str, Any]) -> None:
        step = int(info["num_timesteps"])
        for ret in info.get("episode_returns", ()) or ():
            self.recent.append(float(ret))
            self.episodes += 1
        metrics = {k: _to_float(v) for k, v in dict(info.get("metrics") or {}).items()}
        if metrics:  # a boundary with no update (empty metrics) keeps the last update's for `finish`
            self.last_metrics = metrics
        if self.bar is not None:
            self.bar.update(max(0, min(step, self.total_steps) - self.bar.n))
            post = {"ret": f"{self.return_mean:.3g}"}
            self.bar.set_postfix(post, refresh=False)
        self.step = step
        if step >= self.next_row:
            self.write_row(step, metrics)

    @property
    def return_mean(self) -> float:
        return float(np.mean(self.recent)) if self.recent else math.nan

    def write_row(self, step: int, metrics: Mapping[str, float]) -> None:
        """Write one metrics row now (at `step`) and schedule the next at the following multiple of `interval`."""
        session_wall = time.perf_counter() - self._t0
        last_step, last_wall = self._last_row
        dt = session_wall - last_wall
        row = {"num_timesteps": step, "wall": self.wall_offset + session_wall,
               "steps_per_s": (step - last_step) / dt if dt > 0 and step > last_step else math.nan,
               "episode_return_mean": self.return_mean, "episodes": self.episodes}
        for k, v in metrics.items():
            if k not in AGENT_DUPLICATES:
                row[k if k not in row else f"train/{k}"] = v
        self.csv.write(row)
        if self.tb is not None:
            self.tb.scalars({k if "/" in k else f"train/{k}": v for k, v in row.items() if k != "num_timesteps"}, step)
        self._last_row = (step, session_wall)
        self.next_row = (step // self.interval + 1) * self.interval

    def finish(self) -> None:
        """Write a last row for the steps since the previous one (at the end of training)."""
        if self.step > self._last_row[0] and self.step < self.next_row:
            self.write_row(self.step, self.last_metrics)

    def log_eval(self, step: int, mean: float, std: float) -> None:
        self.eval_csv.write({"num_timesteps": step, "eval_return_mean": mean, "eval_return_std": std})
        if self.tb is not None:
            self.tb.scalars({"eval/return_mean": mean, "eval/return_std": std}, step)
        if self.bar is not None:
            self.bar.write(f"step {step}: eval return {mean:.2f} ± {std:.2f}")

    # ----- persistence -----------------------------------------------------------------------------------------
    def truncate_after(self, step: int) -> None:
        """Drop what earlier sessions logged after `step` (CSV rows, TensorBoard summaries): the run goes on from there.

        Call it before this session logs its first row: its own TensorBoard file is opened then.
        """
        self.csv.truncate_after(step)
        self.eval_csv.truncate_after(step)
        if self.tb_dir is not None and os.path.isdir(self.tb_dir):
            truncate_events_after(self.tb_dir, step)

    def state(self) -> Dict[str, Any]:
        """What a checkpoint must hold for a resumed run to continue the logs seamlessly (JSON-able)."""
        return {"recent_returns": list(self.recent), "episodes": self.episodes, "wall": self.wall,
                "step": self.step, "next_row": self.next_row}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def _to_float(v) -> float:
    try:
        return float(np.asarray(v))
    except (TypeError, ValueError):
        return math.nan
