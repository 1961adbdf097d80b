"""One training run from a validated config: run directory, logs, checkpoints, exact resume, summary.

`prepare_run` does everything that can fail on a bad config (algorithm, hyperparameters, env,
agent construction) BEFORE anything is written; `run_training` then trains, logging through
`tlrl.logger.Logger` and checkpointing through `tlrl.checkpointing.CheckpointManager`.

How checkpoints stay exact. A checkpoint holds everything of the agent that
`BaseAgent.save` writes (weights, optimizer slots, counters, TF and numpy RNG states,
normalizers, replay buffer) but not the live training envs, whose internal state cannot be
saved in general. So a checkpoint is a point where the run *restarts its training envs*:
`learn(remaining)` is called with a callback that stops it at the first callback (after an
update; off-policy agents also call it before `learning_starts`) at or past each multiple of
`checkpoint.every_steps`; the checkpoint is written, the training
env is closed (`reset_train_env`), and `learn(remaining)` is called again, which creates
fresh envs seeded from the agent's (checkpointed) numpy RNG. A run resumed from that
checkpoint does exactly the same, so it reaches bit-for-bit the same weights as the
uninterrupted run. Each `learn` call asks for all the remaining steps, so schedules that
depend on training progress (`num_timesteps / total`) see the same values as one long call.
Episodes running at a checkpoint are cut there (treated as truncated: n-step returns do not
cross the cut, the replay keeps the true next observation).

Ctrl-C (SIGINT) and SIGTERM (schedulers, `docker stop`, Kubernetes) ask the agent to stop at
its next callback (the callback returns False), write a checkpoint there, print how to continue
and exit with code 130 (Ctrl-C) or 143 (SIGTERM); a second Ctrl-C aborts at once. The run
directory is locked for the whole training (`tlrl.run_lock`): a second `tlrl train --resume`
of the same directory is refused before it writes or cleans anything.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from tlrl.checkpointing import CheckpointError, CheckpointManager
from tlrl.config import ConfigError, RunConfig, dump_config, load_config
from tlrl.logger import Logger
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


# ----- preparing: validate everything, write nothing -----------------------------------------------------------
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
    """`runs/<algo>_<env>_<timestamp>` (the env id made file-name safe)."""
    env = re.sub(r"[^A-Za-z0-9._-]+", "-", config.env.id).strip("-")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(root, f"{config.algo}_{env}_{stamp}")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(root, f"{config.algo}_{env}_{stamp}-{n}")
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
    if _holds_files(run_dir):
        if os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            raise RunError(f"run directory {run_dir} already exists and holds a run; continue it with "
                           f"`tlrl train --resume {run_dir}` or choose another --run-dir")
        raise RunError(f"--run-dir {run_dir} already exists and holds files that are not a tlrl run; "
                       f"choose another --run-dir")
    command = None if config_path is None else {"config": config_path, "set": list(overrides), "seed": seed}
    return PreparedRun(config, run_dir, build_agent(config), command=command)


def _holds_files(run_dir: str) -> bool:
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
    if os.path.isfile(error) and not _holds_files(run_dir):
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


def _record_start(run: PreparedRun) -> None:
    """Write the run's command.json (if it has one) and remove the error.txt of a start that failed here before."""
    if run.command is not None:
        _write_json(os.path.join(run.run_dir, COMMAND_FILE), run.command)
    if os.path.isfile(os.path.join(run.run_dir, ERROR_FILE)):
        os.remove(os.path.join(run.run_dir, ERROR_FILE))


def write_error(run_dir: Optional[str], message: str) -> None:
    """Record a startup error as `run_dir/error.txt`, only in a directory that is new, empty or holds only
    the error.txt of an earlier failed start (replaced)."""
    if not run_dir or (os.path.exists(run_dir) and not os.path.isdir(run_dir)) or _holds_files(run_dir):
        return
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, ERROR_FILE), "w") as fh:
        fh.write(message.rstrip() + "\n")


# ----- training -------------------------------------------------------------------------------------------------
class StopFlag:
    """SIGINT (Ctrl-C) and SIGTERM (schedulers, `docker stop`, Kubernetes) set `requested`, and `signal` to the
    first one's name. A second Ctrl-C raises KeyboardInterrupt at once; a repeated SIGTERM does not abort (a
    checkpoint may be being written; the sender's SIGKILL ends a process that takes too long)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signal: Optional[str] = None
        self._previous: Dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.requested = True
        self.signal = signal.Signals(signum).name
        again = " (Ctrl-C again to abort)" if signum == signal.SIGINT else ""
        print(f"\ntlrl: {self.signal} received: stopping at the next update boundary to save a checkpoint{again}",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False


def reset_train_env(agent) -> None:
    """Close the agent's training envs so that its next `learn` starts fresh ones (at a checkpoint).

    Calls `agent.reset_train_env()` if the agent defines it. Otherwise: closes `agent.env` (and the
    workers' envs of worker-based agents such as A3C, through `agent.close()`), clears the running
    returns of `agent.episode_tracker` and of a reward normalizer (`agent.reward_normalizer.returns`),
    and marks the newest replay row as truncated so that n-step returns do not run across the cut.
    A restored agent starts in exactly this state, which is what makes resuming exact.
    """
    hook = getattr(agent, "reset_train_env", None)
    if callable(hook):
        hook()
        return
    env = getattr(agent, "env", None)
    if env is not None:
        env.close()
    agent.env = None
    if getattr(agent, "workers", None) and callable(getattr(agent, "close", None)):
        agent.close()
    tracker = getattr(agent, "episode_tracker", None)
    if tracker is not None and hasattr(tracker, "returns"):
        tracker.returns[:] = 0
        tracker.lengths[:] = 0
    rnorm = getattr(agent, "reward_normalizer", None)
    if rnorm is not None and hasattr(rnorm, "returns"):
        rnorm.returns = None
    replay = getattr(agent, "replay", None)
    truncated = getattr(replay, "_truncated", None)
    if replay is not None and truncated is not None and len(replay) > 0:
        last = (replay._pos - 1) % truncated.shape[0]
        truncated[last] |= ~replay._terminated[last]


def checkpoint_every(config: RunConfig) -> int:
    every = config.checkpoint.every_steps
    return int(every) if every else max(1, math.ceil(config.total_steps / 10))


def run_training(run: PreparedRun, *, progress: Optional[bool] = None, out=None) -> Dict[str, Any]:
    """Train `run.agent` to `config.total_steps` with logs and checkpoints; evaluate; write `summary.json`.

    Returns the summary dict (with `"interrupted": True`, `"signal"` and no evaluation if stopped by
    Ctrl-C or SIGTERM). The run directory is locked throughout (`run.lock`, taken here if
    `prepare_resume` did not). At the end, however it ends, the agent's `close()` (if it has one)
    stops its workers and the lock is released.
    """
    try:
        return _train(run, progress, out)
    finally:
        try:
            close = getattr(run.agent, "close", None)
            if callable(close):
                close()
        finally:
            if run.lock is not None:
                run.lock.release()


def _train(run: PreparedRun, progress: Optional[bool], out) -> Dict[str, Any]:
    config, run_dir, agent = run.config, run.run_dir, run.agent
    out = out or sys.stderr
    os.makedirs(run_dir, exist_ok=True)
    if run.lock is None or not run.lock.held:  # a new run: refuse before writing anything if another one is here
        run.lock = lock_run_dir(run_dir)
    dump_config(config, os.path.join(run_dir, CONFIG_FILE))
    _record_start(run)
    manager = CheckpointManager(os.path.join(run_dir, CHECKPOINT_DIR), keep=config.checkpoint.keep)
    manager.clean_stale()
    state = run.run_state or {}
    resumed = run.resume_from is not None
    logger = Logger(run_dir, config.total_steps, config.log.interval, tensorboard=config.log.tensorboard,
                    progress=config.log.progress if progress is None else progress,
                    state=state.get("logger") if resumed else None, start_step=int(agent.num_timesteps))
    if not resumed:  # a restart in a directory killed before its first checkpoint: drop its rows
        logger.truncate_after(0)
    every = checkpoint_every(config)
    eval_every = int(config.eval.eval_freq)
    next_eval = int(state.get("next_eval", (agent.num_timesteps // eval_every + 1) * eval_every if eval_every else 0))
    total = int(config.total_steps)
    if resumed:
        print(f"tlrl: resuming {run_dir} from {os.path.basename(run.resume_from)} (step {agent.num_timesteps})",
              file=out, flush=True)

    def run_state() -> Dict[str, Any]:
        return {"logger": logger.state(), "next_eval": next_eval, "total_steps": total,
                "resumed_from": run.resume_from}

    interrupted, path = False, None
    try:
        with StopFlag() as stop:
            while agent.num_timesteps < total and not stop.requested:
                before = int(agent.num_timesteps)
                next_ckpt = (before // every + 1) * every

                def callback(agent_, info):
                    nonlocal next_eval
                    logger(agent_, info)
                    n = int(info["num_timesteps"])
                    if eval_every and n >= next_eval:
                        mean, std = agent.evaluate(config.eval.episodes, config.eval.deterministic)
                        logger.log_eval(n, mean, std)
                        next_eval = (n // eval_every + 1) * eval_every
                    if stop.requested or (next_ckpt <= n < total):
                        return False
                    return None

                agent.learn(total - before, callback=callback)
                if agent.num_timesteps <= before:
                    raise RunError(f"{type(agent).__name__}.learn({total - before}) made no progress "
                                   f"(num_timesteps stayed {before})")
                if agent.num_timesteps < total and not stop.requested:
                    reset_train_env(agent)  # first: the cut (replay truncation mark) belongs in the checkpoint
                    path = manager.save(agent, run_state())
            interrupted = stop.requested and agent.num_timesteps < total
            if not interrupted:
                logger.finish()
            if path is None or _step_of(path) != agent.num_timesteps:  # (a signal during a save: it is saved)
                reset_train_env(agent)  # as at every checkpoint: a run resumed from it continues exactly
                path = manager.save(agent, run_state())
    finally:
        logger.close()
    wall = logger.wall
    summary = {
        "algo": config.algo, "env": config.env.id, "seed": config.seed, "total_steps": total,
        "num_timesteps": int(agent.num_timesteps), "wall_seconds": wall, "checkpoint": os.path.relpath(path, run_dir),
        "episodes": logger.episodes, "train_return_mean": _finite(logger.return_mean),
    }
    if interrupted:
        print(f"tlrl: {stop.signal or 'interrupted'}: stopped at step {agent.num_timesteps}; checkpoint {path}. "
              f"Continue with: tlrl train --resume {run_dir}", file=out, flush=True)
        return dict(summary, interrupted=True, signal=stop.signal)
    mean, std = agent.evaluate(config.eval.episodes, config.eval.deterministic)
    summary.update(eval_return_mean=mean, eval_return_std=std, eval_episodes=config.eval.episodes,
                   eval_deterministic=config.eval.deterministic)
    _write_json(os.path.join(run_dir, SUMMARY_FILE), summary)
    env = getattr(agent, "env", None)
    if env is not None:
        env.close()
    return summary


def _step_of(checkpoint: str) -> int:
    return int(os.path.basename(checkpoint).split("_")[-1])


def _finite(x: float) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _write_json(path: str, data: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


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
