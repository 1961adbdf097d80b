"""One training run from a validated config: run directory, logs, checkpoints, exact resume, summary.

`prepare_run` does everything that can fail on a bad config (algorithm, hyperparameters, env,
agent construction) BEFORE anything is written; `run_training` then trains, logging through
`tlrl.logger.Logger` and checkpointing through `tlrl.checkpointing.CheckpointManager`.

How checkpoints stay exact. A checkpoint holds everything of the agent that
`BaseAgent.save` writes (weights, optimizer slots, counters, TF and numpy RNG states,
normalizers, replay buffer) but not the live training envs, whose internal state cannot be
saved in general. So a checkpoint is a point where the run *restarts its training envs*:
`learn(remaining)` is called with a callback that stops it right after the first update at
or past each multiple of `checkpoint.every_steps`; the checkpoint is written, the training
env is closed (`reset_train_env`), and `learn(remaining)` is called again, which creates
fresh envs seeded from the agent's (checkpointed) numpy RNG. A run resumed from that
checkpoint does exactly the same, so it reaches bit-for-bit the same weights as the
uninterrupted run. Each `learn` call asks for all the remaining steps, so schedules that
depend on training progress (`num_timesteps / total`) see the same values as one long call.
Episodes running at a checkpoint are cut there (treated as truncated: n-step returns do not
cross the cut, the replay keeps the true next observation).

Ctrl-C (SIGINT) asks the agent to stop after its current update (the callback returns False),
writes a checkpoint there and exits with code 130; a second Ctrl-C aborts at once.
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
from typing import Any, Dict, Optional

from tlrl.checkpointing import CheckpointError, CheckpointManager
from tlrl.config import ConfigError, RunConfig, dump_config, load_config
from tlrl.logger import Logger

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.txt"
CHECKPOINT_DIR = "checkpoints"
INTERRUPTED = 130


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
    except (TypeError, ValueError, ImportError) as exc:
        raise config.error(("env",), f"cannot build {cls.__name__} on {config.env.id!r} "
                                     f"(kwargs {dict(config.env.kwargs)}): {exc}") from None


def prepare_new(config: RunConfig, run_dir: Optional[str]) -> PreparedRun:
    """Check that a new run can start in `run_dir` (default: a fresh timestamped one) and build its agent."""
    run_dir = run_dir or default_run_dir(config)
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        raise RunError(f"run directory {run_dir} already exists and is not empty; continue it with "
                       f"`tlrl train --resume {run_dir}` or choose another --run-dir")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunError(f"--run-dir {run_dir} exists and is a file, not a directory")
    return PreparedRun(config, run_dir, build_agent(config))


#: Keys that may change when a run is resumed (the rest must equal the saved config).
RESUMABLE_CHANGES = ("total_steps", "eval", "log", "checkpoint.keep")


def prepare_resume(run_dir: str, config_path: Optional[str] = None, overrides=(), seed: Optional[int] = None
                   ) -> PreparedRun:
    """Load the run in `run_dir` and its latest checkpoint; `config_path`/`overrides` may change only
    `RESUMABLE_CHANGES` (e.g. `--set total_steps=...` to train longer)."""
    saved_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(saved_path):
        raise RunError(f"cannot resume {run_dir}: it has no {CONFIG_FILE}, so it is not a tlrl run directory")
    saved = load_config(saved_path)
    if config_path is not None or overrides or seed is not None:
        wanted = load_config(config_path or saved_path, overrides, seed=seed)
        changed = _differences(saved.to_dict(), wanted.to_dict())
        bad = [k for k in changed if not any(k == p or k.startswith(p + ".") for p in RESUMABLE_CHANGES)]
        if bad:
            raise RunError(f"cannot resume {run_dir} with a different config: {', '.join(bad)} differ from its "
                           f"{CONFIG_FILE} (only {', '.join(RESUMABLE_CHANGES)} may change on resume)")
        config = wanted
    else:
        config = saved
    manager = CheckpointManager(os.path.join(run_dir, CHECKPOINT_DIR), keep=config.checkpoint.keep)
    latest = manager.latest()
    if latest is None:  # killed before its first checkpoint: start over in the same directory
        return PreparedRun(config, run_dir, build_agent(config))
    from tlrl.algorithms import get_algorithm

    state = manager.read_run_state(latest)
    agent = manager.load_agent(latest, get_algorithm(config.algo))
    if int(agent.num_timesteps) != int(state["step"]):
        raise CheckpointError(f"checkpoint {latest} is inconsistent: its agent is at step {agent.num_timesteps} "
                              f"but {os.path.basename(latest)}/run_state.json says {state['step']}")
    return PreparedRun(config, run_dir, agent, resume_from=latest, run_state=state)


def _differences(a: Dict[str, Any], b: Dict[str, Any], prefix: str = "") -> list:
    out = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key != "hyperparameters" and key != "kwargs":
            out += _differences(va, vb, path + ".")
        elif va != vb:
            out.append(path)
    return out


def write_error(run_dir: Optional[str], message: str) -> None:
    """Record a startup error as `run_dir/error.txt`, only in a directory that is new or empty."""
    if not run_dir or (os.path.isdir(run_dir) and os.listdir(run_dir)) or (os.path.exists(run_dir) and not os.path.isdir(run_dir)):
        return
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, ERROR_FILE), "w") as fh:
        fh.write(message.rstrip() + "\n")


# ----- training -------------------------------------------------------------------------------------------------
class StopFlag:
    """SIGINT sets `requested` (the first time); a second SIGINT raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ntlrl: stopping after the current update to save a checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
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

    Returns the summary dict (with `"interrupted": True` and no evaluation if stopped by Ctrl-C).
    At the end, however it ends, the agent's `close()` (if it has one) stops its workers.
    """
    try:
        return _train(run, progress, out)
    finally:
        close = getattr(run.agent, "close", None)
        if callable(close):
            close()


def _train(run: PreparedRun, progress: Optional[bool], out) -> Dict[str, Any]:
    config, run_dir, agent = run.config, run.run_dir, run.agent
    out = out or sys.stderr
    os.makedirs(run_dir, exist_ok=True)
    dump_config(config, os.path.join(run_dir, CONFIG_FILE))
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

    interrupted = False
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
                    manager.save(agent, run_state())
            interrupted = stop.requested and agent.num_timesteps < total
            if not interrupted:
                logger.finish()
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
        print(f"tlrl: interrupted at step {agent.num_timesteps}; checkpoint {path}. "
              f"Continue with: tlrl train --resume {run_dir}", file=out, flush=True)
        return dict(summary, interrupted=True)
    mean, std = agent.evaluate(config.eval.episodes, config.eval.deterministic)
    summary.update(eval_return_mean=mean, eval_return_std=std, eval_episodes=config.eval.episodes,
                   eval_deterministic=config.eval.deterministic)
    _write_json(os.path.join(run_dir, SUMMARY_FILE), summary)
    env = getattr(agent, "env", None)
    if env is not None:
        env.close()
    return summary


def _finite(x: float) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _write_json(path: str, data: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def load_run(run_dir: str, checkpoint: Optional[str] = None):
    """(config, agent) of the run in `run_dir`, restored from its latest checkpoint (or `checkpoint`)."""
    from tlrl.algorithms import get_algorithm

    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise RunError(f"{run_dir} is not a tlrl run directory: it has no {CONFIG_FILE}")
    config = load_config(path)
    manager = CheckpointManager(os.path.join(run_dir, CHECKPOINT_DIR))
    ckpt = checkpoint or manager.latest()
    if ckpt is None:
        raise RunError(f"{run_dir} has no checkpoint yet ({manager.describe()})")
    return config, manager.load_agent(ckpt, get_algorithm(config.algo))
