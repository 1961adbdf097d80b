"""What a sweep costs on top of its training: `tlrl sweep` overhead per trial, and throughput with 1 vs 2 workers.

One sweep of PPO on CartPole-v1 (the settings of configs/ppo_cartpole.yaml, `--steps` env steps per trial, one
seed, learning rate sampled by a seeded random sampler, no pruner) runs through `python -m tlrl sweep` in a
fresh process for each worker count, on a fresh SQLite storage. From the study's timestamps and each run's
summary.json it reports:

- start-up: from the command's start to its first trial's start (Python, TensorFlow and the algorithm, which
  validating the sweep imports, Optuna, the storage; with N workers, N worker processes that import them too);
- training: the median trial's training loop (`summary.json` wall_seconds: collect and update);
- overhead per trial: the median trial's wall time minus its training (config, agent build and tracing,
  final evaluation, checkpoints, the storage's calls), for the first trial and the others;
- trials per minute over the whole command, and the speed-up of 2 workers over 1;
- storage alone: milliseconds per trial of Optuna's ask/tell with the sweep's user attributes, heartbeat thread
  and budget callback on SQLite, with an objective that does nothing.

    python scripts/bench_sweep.py                        # 6 trials of 8192 steps, 1 and 2 workers
    python scripts/bench_sweep.py --trials 8 --steps 20480 --write

`--write` replaces the `bench_sweep` section of BENCHMARKS.md. The numbers move with the machine's load:
run it on a quiet machine (the load average is printed with the table).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
import bench_sections  # noqa: E402 - scripts/ is on the path now

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
START, END = "<!-- bench_sweep -->", "<!-- /bench_sweep -->"

SWEEP = """\
name: bench
base: {base}
overrides: {{total_steps: {steps}, eval.episodes: 5, eval.eval_freq: 0, log.tensorboard: false,
            log.progress: false, checkpoint.every_steps: {steps}}}
search_space:
  learning_rate: {{type: loguniform, low: 3.0e-4, high: 3.0e-3}}
budget: {{n_trials: {trials}}}
sampler: {{type: random, seed: 0}}
pruner: {{type: none}}
"""


def run_sweep(folder: str, workers: int, trials: int, steps: int) -> dict:
    """One `tlrl sweep` in a fresh process; its timings."""
    path = os.path.join(folder, f"sweep_{workers}.yaml")
    with open(path, "w") as fh:
        fh.write(SWEEP.format(base=os.path.join(ROOT, "configs", "ppo_cartpole.yaml"), steps=steps, trials=trials))
    out = os.path.join(folder, f"w{workers}")
    started = datetime.datetime.now()
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tlrl", "sweep", path, "--workers", str(workers), "--out", out],
                          capture_output=True, text=True, cwd=folder)
    total = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"tlrl sweep failed:\n{done.stderr[-3000:]}")
    trials_ = _trials(out)
    rows = []
    for t in trials_:
        wall = (t.datetime_complete - t.datetime_start).total_seconds()
        train = sum(r["wall_seconds"] for r in t.user_attrs["seeds"].values())
        rows.append((t.datetime_start, wall, train))
    rows.sort()
    first = rows[0]
    return {"workers": workers, "total": total, "startup": (first[0] - started).total_seconds(),
            "train": statistics.median(r[2] for r in rows), "first_overhead": first[1] - first[2],
            "overhead": statistics.median(r[1] - r[2] for r in rows[1:]) if len(rows) > 1 else float("nan"),
            "per_minute": 60 * len(rows) / total}


def _trials(sweep_dir: str):
    from tlrl.sweep.study import open_storage, optuna_module
    from tlrl.sweep.sweep_dir import read_info, storage_of

    optuna = optuna_module()
    store = open_storage(storage_of(sweep_dir), read_only=True)
    return [t for t in optuna.load_study(study_name=read_info(sweep_dir)["study"], storage=store).get_trials()
            if t.state.name == "COMPLETE"]


def storage_only(folder: str, n: int = 50) -> float:
    """Milliseconds per trial of the study's own calls, with an objective that trains nothing."""
    from tlrl.sweep.spec import load_sweep
    from tlrl.sweep.study import create_or_join, open_storage
    from tlrl.sweep.trial import StopRequest
    from tlrl.sweep.worker import Budget

    path = os.path.join(folder, "sweep_storage.yaml")
    with open(path, "w") as fh:
        fh.write(SWEEP.format(base=os.path.join(ROOT, "configs", "ppo_cartpole.yaml"), steps=1024, trials=n))
    spec = load_sweep(path)
    url = f"sqlite:///{os.path.join(folder, 'storage_only.db')}"
    study = create_or_join(spec, open_storage(url, spec.failures))

    def objective(trial):
        trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True)
        for key, value in (("worker", "host:1"), ("run_dirs", []), ("seeds", {}), ("run_dirs", ["/x/seed_0"]),
                           ("seeds", {"0": {"eval_return_mean": 1.0}})):
            trial.set_user_attr(key, value)
        return 1.0

    t0 = time.perf_counter()
    study.optimize(objective, callbacks=[Budget(spec, StopRequest())])
    return 1000 * (time.perf_counter() - t0) / n


def table(results, storage_ms: float, trials: int, steps: int) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("tensorflow", "optuna", "sqlalchemy"))
    lines = [
        "## Sweep overhead (`scripts/bench_sweep.py`)", "",
        f"PPO CartPole-v1 (configs/ppo_cartpole.yaml), {trials} trials of {steps} steps, 1 seed, SQLite storage, "
        f"`python -m tlrl sweep --workers N` in a fresh process.", "",
        "| workers | start-up s | training s / trial | overhead s, 1st trial | overhead s / trial | trials / min |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['workers']} | {r['startup']:.1f} | {r['train']:.1f} | {r['first_overhead']:.1f} | "
                     f"{r['overhead']:.2f} | {r['per_minute']:.1f} |")
    if len(results) == 2:
        lines += ["", f"2 workers vs 1: {results[1]['per_minute'] / results[0]['per_minute']:.2f}x trials per minute."]
    lines += ["", f"Storage alone (ask/tell, user attributes, heartbeat thread, budget callback; SQLite): "
                  f"{storage_ms:.1f} ms per trial.", "",
              f"- machine: `{platform.platform()}`, {os.cpu_count()} CPUs; load average at the end {load}",
              f"- versions: python {platform.python_version()}, {versions}",
              f"- date: {datetime.date.today().isoformat()}",
              f"- command: `python scripts/bench_sweep.py --trials {trials} --steps {steps}`"]
    return "\n".join(lines)


def write_section(text: str) -> None:
    bench_sections.write_section(START, END, text)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--steps", type=int, default=8192, help="env steps per trial")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = p.parse_args(argv)
    from tlrl.quiet_import import hide_tensorflow_startup_log

    hide_tensorflow_startup_log()
    with tempfile.TemporaryDirectory() as folder:
        results = [run_sweep(folder, int(n), args.trials, args.steps) for n in args.workers.split(",")]
        storage_ms = storage_only(folder)
    text = table(results, storage_ms, args.trials, args.steps)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
