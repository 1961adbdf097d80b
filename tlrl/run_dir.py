"""A run directory: prepare a new run or a resumed one (everything that can fail, before anything is written),
record how it started, and load a finished or interrupted run for `tlrl eval` / `tlrl export`.

A run directory holds `config.yaml` (the resolved config), `command.json` (the CONFIG, --set and --seed it
started with), `metrics.csv`, `evaluations.csv`, `tb/`, `checkpoints/`, `summary.json` at the end, and `.lock`
while a process trains in it (`tlrl.run_lock`). A directory holding only the `error.txt` of a start that
failed can be used again. Loading takes the env, seed and hyperparameters from the validated `config.yaml`;
a checkpoint whose `agent.json` disagrees is refused (`CheckpointManager.load_agent`). The training loop
itself is `tlrl.training.run_training`.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from tlrl.checkpointing import CheckpointError, CheckpointManager
from tlrl.config import RunConfig, load_config
from tlrl.durable import write_text
from tlrl.run_lock import LOCK_FILE, RunLock, RunLockedError

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.txt"
COMMAND_FILE = "command.json"  # the CONFIG file, --set values and --seed a run was started with
CHECKPOINT_DIR = "checkpoints"
INTERRUPTED = 130  # exit code after Ctrl-C (128 + SIGINT)
TERMINATED = 143  # exit code after SIGTERM (128 + SIGTERM), as a process killed by it


class RunError(RuntimeError):
    """A run that cannot start or continue (existing run dir, nothing to resume, ...)."""


@dataclass
class PreparedRun:
    config: RunConfig
    run_dir: str
    agent: Any
    resume_from: Optional[str] = None  # checkpoint path
    run_state: Optional[Dict[str, Any]] = None
    lock: Optional[RunLock] = None  # held from prepare_resume (or the start of training) to the end of run_training
    command: Optional[Dict[str, Any]] = None  # written as command.json: {"config", "set", "seed"} of the command line


def default_run_dir(config: RunConfig, root: str = "runs") -> str:
    """`runs/<algo>_<env>_<timestamp>` (the algorithm and env id made file-name safe)."""
    algo, env = (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") for name in (config.algo, config.env.id))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(root, f"{algo}_{env}_{stamp}")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(root, f"{algo}_{env}_{stamp}-{n}")
    return path


def build_agent(config: RunConfig):
    """The agent the config describes (errors name the config key that causes them)."""
    from tlrl.algorithms import get_algorithm

    cls = get_algorithm(config.algo)
    try:
        return cls(config.env.id, seed=config.seed, env_kwargs=dict(config.env.kwargs), **config.hyperparameters)
    except (TypeError, ValueError, ImportError) as exc:  # EnvSpecError (a ValueError) too: a constructor that raised
        raise config.error(("env",), f"cannot build {cls.__name__} on {config.env.id!r} "
                                     f"(kwargs {dict(config.env.kwargs)}): {exc}") from None


def prepare_new(config: RunConfig, run_dir: Optional[str], *, config_path: Optional[str] = None,
                overrides: Sequence[str] = (), seed: Optional[int] = None) -> PreparedRun:
    """Check that a new run can start in `run_dir` (default: a fresh timestamped one) and build its agent.

    `run_dir` may exist if it is empty or holds only the `error.txt` of a start that failed (the run
    replaces it). The command line that made `config` (`config_path`, `overrides`, `seed`), if given,
    is kept in `command.json`: `tlrl train CONFIG --resume DIR` then applies them to CONFIG again.
    """
    run_dir = run_dir or default_run_dir(config)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunError(f"--run-dir {run_dir} exists and is a file, not a directory")
    if holds_files(run_dir):
        if os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            raise RunError(f"run directory {run_dir} already exists and holds a run; continue it with "
                           f"`tlrl train --resume {run_dir}` or choose another --run-dir")
        raise RunError(f"--run-dir {run_dir} already exists and holds files that are not a tlrl run; "
                       f"choose another --run-dir")
    command = None if config_path is None else {"config": config_path, "set": list(overrides), "seed": seed}
    return PreparedRun(config, run_dir, build_agent(config), command=command)


def holds_files(run_dir: str) -> bool:
    """Whether `run_dir` exists and holds anything but the `error.txt` of a start that failed (or the lock file
    of a process that died before writing anything)."""
    return os.path.isdir(run_dir) and any(name not in (ERROR_FILE, LOCK_FILE) for name in os.listdir(run_dir))


#: Keys that may change when a run is resumed (the rest must equal the saved config).
RESUMABLE_CHANGES = ("total_steps", "eval", "log", "checkpoint.keep")


def prepare_resume(run_dir: str, config_path: Optional[str] = None, overrides=(), seed: Optional[int] = None
                   ) -> PreparedRun:
    """Lock `run_dir` for this process, then load the run in it and its newest complete checkpoint (see
    `_prepare_resume`). The lock (`tlrl.run_lock`) is held until `run_training` ends; a second process is
    refused before it reads, cleans or writes anything."""
    lock = lock_run_dir(run_dir) if os.path.isfile(os.path.join(run_dir, CONFIG_FILE)) else None
    try:
        run = _prepare_resume(run_dir, config_path, overrides, seed)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    run.lock = lock
    return run


def lock_run_dir(run_dir: str) -> RunLock:
    """Take the lock on `run_dir` (an existing directory), or raise RunError naming the process that holds it."""
    try:
        return RunLock(run_dir).acquire()
    except RunLockedError as exc:
        raise RunError(str(exc)) from None


def newest_checkpoint(manager: CheckpointManager, out=None) -> Optional[str]:
    """The newest complete checkpoint of `manager` (None if there is none); each damaged newer one is named
    in a warning on `out` (stderr). Raises CheckpointError if there are checkpoints but all are damaged."""
    path, damaged = manager.find_latest()
    for bad, problem in damaged:
        print(f"tlrl: warning: skipping the damaged checkpoint {bad} ({problem})", file=out or sys.stderr, flush=True)
    if path is None and damaged:
        raise CheckpointError(f"every checkpoint in {manager.directory} is damaged, so there is nothing to resume "
                              f"from: {'; '.join(problem for _, problem in damaged)}")
    return path


def _prepare_resume(run_dir: str, config_path: Optional[str] = None, overrides=(), seed: Optional[int] = None
                    ) -> PreparedRun:
    """Load the run in `run_dir` and its latest checkpoint; `config_path`/`overrides` may change only
    `RESUMABLE_CHANGES` (e.g. `--set total_steps=...` to train longer)."""
    saved_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(saved_path):
        raise RunError(_not_resumable(run_dir))
    saved = load_config(saved_path)
    command = _read_command(run_dir)  # None: started without one (from Python)
    if config_path is not None or overrides or seed is not None:
        if config_path is not None:  # the run's own --set values and --seed apply to CONFIG again
            kept = command or {"set": [], "seed": None}
            wanted = load_config(config_path, [*kept["set"], *overrides], seed=kept["seed"] if seed is None else seed)
        else:
            wanted = load_config(saved_path, overrides, seed=seed)
        given = [name for name, on in (("CONFIG", config_path is not None), ("--seed", seed is not None),
                                       ("--set", bool(overrides))) if on]
        _check_resumable(run_dir, saved, wanted, " and ".join(filter(None, [", ".join(given[:-1]), given[-1]])))
        config = wanted
        if command is not None:
            command = dict(command, set=[*command["set"], *overrides], seed=command["seed"] if seed is None else seed)
    else:
        config = saved
    manager = CheckpointManager(os.path.join(run_dir, CHECKPOINT_DIR), keep=config.checkpoint.keep)
    latest = newest_checkpoint(manager)
    if latest is None:  # killed before its first checkpoint: start over in the same directory
        return PreparedRun(config, run_dir, build_agent(config), command=command)
    from tlrl.algorithms import get_algorithm

    state = manager.read_run_state(latest)
    agent = manager.load_agent(latest, get_algorithm(config.algo), run_config=config)
    if int(agent.num_timesteps) != int(state["step"]):
        raise CheckpointError(f"checkpoint {latest} is inconsistent: its agent is at step {agent.num_timesteps} "
                              f"but {os.path.basename(latest)}/run_state.json says {state['step']}")
    return PreparedRun(config, run_dir, agent, resume_from=latest, run_state=state, command=command)


def _not_resumable(run_dir: str) -> str:
    """Why `run_dir`, which has no config.yaml, cannot be resumed."""
    if not os.path.exists(run_dir):
        return f"cannot resume {run_dir}: the directory does not exist"
    if not os.path.isdir(run_dir):
        return f"cannot resume {run_dir}: it is a file, not a run directory"
    error = os.path.join(run_dir, ERROR_FILE)
    if os.path.isfile(error) and not holds_files(run_dir):
        with open(error) as fh:
            reason = " ".join(fh.read().split())
        return (f"cannot resume {run_dir}: its run never started ({ERROR_FILE}: {reason}); fix that and start it "
                f"again with `tlrl train CONFIG --run-dir {run_dir}`")
    return f"cannot resume {run_dir}: it has no {CONFIG_FILE}, so it is not a tlrl run directory"


def _read_command(run_dir: str) -> Optional[Dict[str, Any]]:
    """The run's command.json ({"config", "set", "seed"}), or None if it has none."""
    path = os.path.join(run_dir, COMMAND_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from None
    if not (isinstance(data, dict) and isinstance(data.get("set"), list)
            and all(isinstance(s, str) for s in data["set"]) and (data.get("seed") is None or type(data["seed"]) is int)):
        raise RunError(f"{path} is not what tlrl writes ({{\"config\": ..., \"set\": [\"key=value\", ...], "
                       f"\"seed\": N or null}}); delete it and resume without CONFIG: tlrl train --resume {run_dir}")
    return data


def _check_resumable(run_dir: str, saved: RunConfig, wanted: RunConfig, given: str) -> None:
    """Raise RunError naming each key, with both values, that `wanted` changes outside `RESUMABLE_CHANGES`."""
    changed = [(key, a, b) for key, a, b in _differences(saved.to_dict(), wanted.to_dict())
               if not any(key == p or key.startswith(p + ".") for p in RESUMABLE_CHANGES)]
    if changed:
        what = "; ".join(f"{key} differs (the run has {_shown(a)}, now {_shown(b)})" for key, a, b in changed)
        raise RunError(f"cannot resume {run_dir} with a different config: {what}. Only {', '.join(RESUMABLE_CHANGES)} "
                       f"may change on resume; to continue the run as it was configured, leave out {given}: "
                       f"tlrl train --resume {run_dir}")


_MISSING = object()


def _differences(a: Dict[str, Any], b: Dict[str, Any], prefix: str = "") -> list:
    """(dotted key, value in a, value in b) of every leaf that differs (`_MISSING` where a key is absent)."""
    out = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}{key}"
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, path + ".")
        elif va != vb:
            out.append((path, va, vb))
    return out


def _shown(value: Any) -> str:
    return "the default" if value is _MISSING else repr(value)


def record_start(run: PreparedRun) -> None:
    """Write the run's command.json (if it has one) and remove the error.txt of a start that failed here before."""
    if run.command is not None:
        write_json(os.path.join(run.run_dir, COMMAND_FILE), run.command)
    if os.path.isfile(os.path.join(run.run_dir, ERROR_FILE)):
        os.remove(os.path.join(run.run_dir, ERROR_FILE))


def write_error(run_dir: Optional[str], message: str) -> None:
    """Record a startup error as `run_dir/error.txt`, only in a directory that is new, empty or holds only
    the error.txt of an earlier failed start (replaced)."""
    if not run_dir or (os.path.exists(run_dir) and not os.path.isdir(run_dir)) or holds_files(run_dir):
        return
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, ERROR_FILE), "w") as fh:
        fh.write(message.rstrip() + "\n")


def write_json(path: str, data: Dict[str, Any]) -> None:
    """Write `data` as JSON, atomically and durably (`tlrl.durable.write_text`)."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def load_run(run_dir: str, checkpoint: Optional[str] = None):
    """(config, agent) of the run in `run_dir`, restored from its latest checkpoint (or `checkpoint`).

    The env, seed and hyperparameters come from the validated config.yaml; a checkpoint whose
    agent.json disagrees with it is refused (`CheckpointManager.load_agent`)."""
    from tlrl.algorithms import get_algorithm

    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise RunError(f"{run_dir} is not a tlrl run directory: it has no {CONFIG_FILE}")
    config = load_config(path)
    manager = CheckpointManager(os.path.join(run_dir, CHECKPOINT_DIR))
    ckpt = checkpoint or newest_checkpoint(manager)
    if ckpt is None:
        raise RunError(f"{run_dir} has no checkpoint yet ({manager.describe()})")
    return config, manager.load_agent(ckpt, get_algorithm(config.algo), run_config=config)
