"""`tlrl sweep`: validate the sweep, make (or find) its directory and its study, run its workers, report.

Workers (`tlrl.sweep.worker`) all pull trials from the one storage: `--workers 1` runs in this process;
`--workers N` starts N worker processes (each in its own session, so a Ctrl-C here reaches each of them
once, forwarded; they end if this process is killed); `--backend ray` runs N Ray tasks on a local Ray, or
the cluster `RAY_ADDRESS` names.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

from tlrl.sweep.spec import SweepError, SweepSpec, load_sweep
from tlrl.sweep.study import best_trial, check_url, counts, create_or_join, default_storage, masked, open_storage
from tlrl.sweep.sweep_dir import load_dir, prepare, storage_of
from tlrl.sweep.worker import STORAGE_ENV, run_worker

BACKENDS = ("process", "ray")


def run_sweep(sweep_file: Optional[str] = None, *, resume: Optional[str] = None, out: Optional[str] = None,
              storage: Optional[str] = None, workers: int = 1, backend: str = "process", err=None
              ) -> Tuple[int, Dict[str, Any]]:
    """Run (or continue, with `resume`) a sweep; (exit code, summary). Everything that can be refused (the sweep
    file, the directory, the storage, the study) is checked before any trial starts."""
    err = err or sys.stderr
    if (sweep_file is None) == (resume is None):
        raise SweepError("give a SWEEP file, or --resume DIR to continue a sweep (not both)")
    if resume and out and os.path.abspath(out) != os.path.abspath(resume):
        raise SweepError("--out and --resume name different directories; --resume DIR continues DIR")
    if type(workers) is not int or workers < 1:
        raise SweepError(f"--workers must be a positive number of processes, got {workers!r}")
    if backend not in BACKENDS:
        raise SweepError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if resume:
        spec, sweep_dir = load_dir(resume), resume
        url = storage_of(resume, storage)
    else:
        spec = load_sweep(sweep_file)
        sweep_dir = prepare(spec, out, check_url(storage) if storage else None)
        url = storage or default_storage(sweep_dir)
    study = create_or_join(spec, open_storage(url, spec.failures))
    if spec.budget.n_trials is not None:
        workers = min(workers, spec.budget.n_trials)
    print(f"tlrl sweep: study {spec.name!r} in {masked(url)}, trials under {sweep_dir}, {workers} worker"
          f"{'s' if workers > 1 else ''} ({backend})", file=err, flush=True)
    if backend == "ray":
        code = _ray_workers(sweep_dir, url, workers)
    elif workers == 1:
        code = run_worker(sweep_dir, url, 0, out=err)
    else:
        code = _process_workers(sweep_dir, url, workers)
    if code:
        again = " --storage URL" if "***" in masked(url) else ""
        print(f"tlrl sweep: stopped (exit code {code}); continue with: tlrl sweep --resume {sweep_dir}{again}",
              file=err, flush=True)
    return code, summary(spec, sweep_dir, url, study)


def summary(spec: SweepSpec, sweep_dir: str, url: str, study) -> Dict[str, Any]:
    """What the sweep found: trials by state, the best trial, its values and its best run directory."""
    from tlrl.sweep.space import decoded
    from tlrl.sweep.trial import best_run_dir

    best = best_trial(study)
    found = None if best is None else {"trial": best.number, "value": best.value,
                                       "params": decoded(spec.search_space, best.params),
                                       "run_dir": best_run_dir(best)}
    return {"sweep_dir": sweep_dir, "study": spec.name, "storage": masked(url), "trials": counts(study),
            "best": found}


def _process_workers(sweep_dir: str, url: str, n: int) -> int:
    """N worker processes; SIGINT and SIGTERM here are passed on to each; the exit code of the first that failed."""
    env = {**os.environ, STORAGE_ENV: url}
    procs: List[subprocess.Popen] = []

    def forward(signum, frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i in range(n):
            procs.append(subprocess.Popen([sys.executable, "-m", "tlrl.sweep.worker", sweep_dir, "--index", str(i),
                                           "--parent", str(os.getpid())], env=env, start_new_session=True))
        codes = [proc.wait() for proc in procs]
    finally:
        for proc in procs:  # an error here (not a signal): do not leave workers behind
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return next((c for c in codes if c), 0)


def ray_worker(sweep_dir: str, url: str, index: int) -> int:
    """A worker as a Ray task (module level, so Ray imports it by name)."""
    from tlrl.quiet_import import hide_tensorflow_startup_log

    hide_tensorflow_startup_log()
    return run_worker(sweep_dir, url, index)


def _ray_workers(sweep_dir: str, url: str, n: int) -> int:
    """N workers as Ray tasks of one CPU each (`tlrl.runner.ray_init`: a local Ray on 127.0.0.1, or the cluster
    RAY_ADDRESS names); Ctrl-C cancels them (their trials fail as interrupted)."""
    from tlrl.runner.ray_init import init_ray, shutdown_ray

    try:
        ray = init_ray(os.environ.get("RAY_ADDRESS") or None, log_to_driver=True, runtime_env={
            "env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}})
    except ImportError as exc:
        raise SweepError(f"--backend ray: {exc}") from None
    task = ray.remote(num_cpus=1, max_retries=0)(ray_worker)
    refs = [task.remote(os.path.abspath(sweep_dir), url, i) for i in range(n)]
    try:
        return next((c for c in ray.get(refs) if c), 0)
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref)
        ray.wait(refs, num_returns=len(refs))
        return 130
    finally:
        shutdown_ray()
