"""One training run from a validated config: logs, checkpoints, exact resume, summary.

`tlrl.run_dir` prepares the run (everything that can fail on a bad config: algorithm,
hyperparameters, env, agent construction) BEFORE anything is written; `run_training` then
trains, logging through `tlrl.logger.Logger` and checkpointing through
`tlrl.checkpointing.CheckpointManager`.

How checkpoints stay exact. A checkpoint holds everything of the agent that
`BaseAgent.save` writes (weights, optimizer slots, counters, TF and numpy RNG states,
normalizers, replay buffer) but not the live training envs, whose internal state cannot be
saved in general. So a checkpoint is a point where the run *cuts its training episodes*: the
run's `tlrl.runner.Runner` (built from the config's `runner` section: the agent's own loop, its
workers or Ape-X actors) runs the one loop (`tlrl.loop.train`) once for the whole run, and its
callback, at the first boundary (after an update; off-policy agents also before
`learning_starts`) at or past each multiple of `checkpoint.every_steps`, calls
`agent.cut_episodes()` (the envs close, episode sums reset, the store marks the cut) and writes
the checkpoint; the loop goes on with fresh envs seeded from the agent's (checkpointed) numpy
RNG. A run resumed from that checkpoint starts in exactly that state, so it reaches
bit-for-bit the same weights as the uninterrupted run (the agent's own loop and in-process A3C
workers; asynchronous workers and Ape-X actors, whose envs run on through a checkpoint, are not
reproducible in any case), and schedules that depend on training
progress (`num_timesteps / total`) see the same values. Episodes running at a checkpoint are
cut there (treated as truncated: n-step returns do not cross the cut, the replay keeps the
true next observation). Workers and the loop itself live through checkpoints.

Ctrl-C (SIGINT) and SIGTERM (schedulers, `docker stop`, Kubernetes) ask the agent to stop at
its next boundary (the callback returns False), write a checkpoint there, print how to continue
and exit with code 130 (Ctrl-C) or 143 (SIGTERM); a second Ctrl-C aborts at once. The run
directory is locked for the whole training (`tlrl.run_lock`): a second `tlrl train --resume`
of the same directory is refused before it writes or cleans anything.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
from typing import Any, Callable, Dict, Optional

from tlrl.checkpointing import CheckpointManager
from tlrl.config import RunConfig, dump_config
from tlrl.logger import Logger
from tlrl.run_dir import (CHECKPOINT_DIR, CONFIG_FILE, SUMMARY_FILE, PreparedRun, RunError, holds_files,
                          lock_run_dir, record_start, write_json)


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
        message = f"\ntlrl: {self.signal} received: stopping at the next update boundary to save a checkpoint{again}\n"
        try:  # a raw write: print() here can raise "reentrant call" if the signal came during a write to stderr
            os.write(2, message.encode())
        except OSError:
            pass

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False


def checkpoint_every(config: RunConfig) -> int:
    every = config.checkpoint.every_steps
    return int(every) if every else max(1, math.ceil(config.total_steps / 10))


def run_training(run: PreparedRun, *, progress: Optional[bool] = None, out=None,
                 on_eval: Optional[Callable[[int, float, float], None]] = None) -> Dict[str, Any]:
    """Train `run.agent` to `config.total_steps` with logs and checkpoints; evaluate; write `summary.json`.

    Returns the summary dict (with `"interrupted": True`, `"signal"` and no evaluation if stopped by
    Ctrl-C or SIGTERM). The run directory is locked throughout (`run.lock`, taken here if
    `prepare_resume` did not). At the end, however it ends, `agent.close()` closes its envs and stops
    its workers, and the lock is released. `on_eval(step, mean, std)`, if given, is called after each
    periodic evaluation (`eval.eval_freq`); an exception it raises ends training there, as any error does
    (the checkpoints written so far stay; `tlrl sweep`'s pruner raises `optuna.TrialPruned`).
    """
    try:
        return _train(run, progress, out, on_eval)
    finally:
        try:
            run.agent.close()
        finally:
            if run.lock is not None:
                run.lock.release()


def _train(run: PreparedRun, progress: Optional[bool], out, on_eval=None) -> Dict[str, Any]:
    config, run_dir, agent = run.config, run.run_dir, run.agent
    out = out or sys.stderr
    os.makedirs(run_dir, exist_ok=True)
    if run.lock is None or not run.lock.held:  # a new run: refuse before writing anything if another one is here
        run.lock = lock_run_dir(run_dir)
        if holds_files(run_dir):  # another run started here between prepare_new's check and the lock
            raise RunError(f"run directory {run_dir} was taken by another run while this one was being prepared; "
                           f"choose another --run-dir")
    dump_config(config, os.path.join(run_dir, CONFIG_FILE))
    record_start(run)
    manager = CheckpointManager(os.path.join(run_dir, CHECKPOINT_DIR), keep=config.checkpoint.keep)
    manager.clean_stale()
    state = run.run_state or {}
    resumed = run.resume_from is not None
    logger = Logger(run_dir, config.total_steps, config.log.interval, tensorboard=config.log.tensorboard,
                    progress=config.log.progress if progress is None else progress,
                    state=state.get("logger") if resumed else None, start_step=int(agent.num_timesteps))
    if not resumed:  # a restart in a directory killed before its first checkpoint: drop its rows
        logger.truncate_after(0)
    eval_every = int(config.eval.eval_freq)
    next_eval = int(state.get("next_eval", (agent.num_timesteps // eval_every + 1) * eval_every if eval_every else 0))
    total = int(config.total_steps)
    if resumed:
        print(f"tlrl: resuming {run_dir} from {os.path.basename(run.resume_from)} (step {agent.num_timesteps})",
              file=out, flush=True)

    def run_state() -> Dict[str, Any]:
        return {"logger": logger.state(), "next_eval": next_eval, "total_steps": total,
                "resumed_from": run.resume_from}

    every = checkpoint_every(config)
    next_ckpt = (int(agent.num_timesteps) // every + 1) * every
    path: Optional[str] = None

    def checkpoint() -> str:
        agent.cut_episodes()  # first: the cut (the store's truncation mark) belongs in the checkpoint
        return manager.save(agent, run_state())

    runner = None
    try:
        with StopFlag() as stop:
            from tlrl.runner import Runner

            runner = Runner.from_config(agent, config.runner)  # the config's workers, for the whole run

            def callback(agent_, info) -> Optional[bool]:
                nonlocal next_eval, next_ckpt, path
                logger(agent_, info)
                n = int(info["num_timesteps"])
                if eval_every and n >= next_eval:
                    mean, std = agent.evaluate(config.eval.episodes, config.eval.deterministic)
                    logger.log_eval(n, mean, std)
                    if on_eval is not None:
                        on_eval(n, mean, std)
                    next_eval = (n // eval_every + 1) * eval_every
                if stop.requested:
                    return False
                if next_ckpt <= n < total:
                    path = checkpoint()
                    next_ckpt = (n // every + 1) * every
                return not stop.requested  # a signal during the save: it is saved, stop here

            if agent.num_timesteps < total:
                runner.learn(total - int(agent.num_timesteps), callback=callback)  # the one loop of the run
                if agent.num_timesteps < total and not stop.requested:
                    raise RunError(f"training {type(agent).__name__} stopped at step {agent.num_timesteps}, before "
                                   f"the run's total_steps {total}, without being asked to")
            interrupted = stop.requested and agent.num_timesteps < total
            if not interrupted:
                logger.finish()
            if path is None or _step_of(path) != agent.num_timesteps:
                path = checkpoint()  # as at every checkpoint: a run resumed from it continues exactly
    finally:
        try:
            if runner is not None:
                runner.close()  # its workers (the agent's own are stopped by agent.close() in any case)
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
    write_json(os.path.join(run_dir, SUMMARY_FILE), summary)
    return summary


def _step_of(checkpoint: str) -> int:
    return int(os.path.basename(checkpoint).split("_")[-1])


def _finite(x: float) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
