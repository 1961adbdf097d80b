"""Checkpoints of a training run: atomic, the last K kept, with a `latest` pointer, restorable exactly.

Layout under a run directory::

    checkpoints/
        step_000010000/
            agent/            BaseAgent.save: agent.json, ckpt/ (tf.train.Checkpoint: weights, optimizer
                              slots, counters, TF RNG), state.npz (numpy RNG, normalizers), buffers (.npz)
            run_state.json    the run's own state (logger, wall clock, step), JSON
        latest                name of the newest complete checkpoint (written with os.replace)

A checkpoint is written into a hidden temporary directory, every file and folder of it is
fsynced (`tlrl.durable`), it is renamed into place and the checkpoints folder fsynced, then
`latest` is replaced (durably), and only then are older checkpoints pruned: a crash or power
loss at any moment leaves the previous checkpoint usable (stale temporary directories are
removed on the next start). A full disk (ENOSPC, EDQUOT, or EFBIG from a file size limit)
raises `CheckpointError` with the temporary files removed and the last good checkpoint
untouched. `find_latest` skips damaged checkpoints (e.g. a zero-length `run_state.json` after
a power loss) and names them. Loading reads only JSON, `.npz` without pickle and TF
checkpoints; a corrupt, truncated or foreign checkpoint raises `CheckpointError` with a plain
message.

>>> import tempfile
>>> manager = CheckpointManager(tempfile.mkdtemp(), keep=2)
>>> manager.latest() is None
True
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

from tlrl.config_schema import plain
from tlrl.durable import fsync_dir, no_space_reason, write_text
from tlrl.saved_agent import json_default

AGENT_DIR = "agent"
RUN_STATE = "run_state.json"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (missing, corrupt, truncated, or of another algorithm)."""


class CheckpointManager:
    """Save and find checkpoints under `directory`, keeping the newest `keep`.

    Args:
        directory: the checkpoints folder (created if needed).
        keep: how many checkpoints to keep; older ones are deleted after each save.
    """

    def __init__(self, directory: str, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = os.path.abspath(directory)
        self.keep = int(keep)

    def clean_stale(self) -> None:
        """Remove temporary directories left by a save that was killed (call once, before training)."""
        if not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if name.startswith(".tmp-"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
            elif name.startswith(LATEST + ".tmp-"):  # a `latest` pointer that was being replaced
                os.remove(os.path.join(self.directory, name))

    # ----- listing ------------------------------------------------------------------------------------------
    def checkpoints(self) -> List[Tuple[int, str]]:
        """(step, path) of every checkpoint that has its run_state.json, oldest first (see `problem`)."""
        return [(step, path) for step, path in self._step_dirs() if os.path.isfile(os.path.join(path, RUN_STATE))]

    def _step_dirs(self) -> List[Tuple[int, str]]:
        if not os.path.isdir(self.directory):
            return []
        out = []
        for name in os.listdir(self.directory):
            m = _STEP_DIR.match(name)
            path = os.path.join(self.directory, name)
            if m and os.path.isdir(path):
                out.append((int(m.group(1)), path))
        return sorted(out)

    def latest(self) -> Optional[str]:
        """Path of the newest complete checkpoint (see `find_latest`), else None."""
        return self.find_latest()[0]

    def find_latest(self) -> Tuple[Optional[str], List[Tuple[str, str]]]:
        """`(path, damaged)`: the newest checkpoint that passes `problem` (or None), and `(path, problem)` of
        each newer one passed over because it is damaged (e.g. cut short by a power loss).

        Every checkpoint folder is fsynced before it is renamed into place, so the newest complete one
        is used even where the `latest` pointer (which moves after the rename) lags behind it.
        """
        damaged = []
        for _, path in reversed(self._step_dirs()):
            problem = self.problem(path)
            if problem is None:
                return path, damaged
            damaged.append((path, problem))
        return None, damaged

    @staticmethod
    def problem(path: str) -> Optional[str]:
        """Why checkpoint `path` is damaged, or None if it looks complete. Cheap checks only: run_state.json
        and agent.json parse; the TF checkpoint's index and data files and state.npz exist and are not empty."""
        from tlrl.agent import CKPT_PREFIX, STATE_FILE, read_agent_meta

        agent_dir = os.path.join(path, AGENT_DIR)
        try:
            CheckpointManager.read_run_state(path)
            read_agent_meta(agent_dir)
        except (CheckpointError, FileNotFoundError, ValueError) as exc:
            return str(exc)
        ckpt_dir, stem = os.path.split(os.path.join(agent_dir, CKPT_PREFIX))
        names = os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []
        if not any(n.startswith(stem + ".data-") for n in names):
            return f"{os.path.join(ckpt_dir, stem)}.data-* is missing"
        files = [os.path.join(ckpt_dir, n) for n in names if n.startswith(stem + ".data-")]
        for file in [os.path.join(ckpt_dir, stem + ".index"), os.path.join(agent_dir, STATE_FILE), *files]:
            if not os.path.isfile(file):
                return f"{file} is missing"
            if os.path.getsize(file) == 0:
                return f"{file} is empty (cut short by a crash or power loss)"
        return None

    # ----- saving -------------------------------------------------------------------------------------------
    def save(self, agent, run_state: Mapping[str, Any]) -> str:
        """Write a checkpoint of `agent` (at its `num_timesteps`) and `run_state`; return its path.

        Durable before it counts: every file and folder is fsynced before `latest` moves, and older
        checkpoints are pruned only after that. Raises `CheckpointError` if the disk is full.
        """
        step = int(agent.num_timesteps)
        name = f"step_{step:09d}"
        final = os.path.join(self.directory, name)
        tmp = None
        try:
            os.makedirs(self.directory, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.directory)
            agent.save(os.path.join(tmp, AGENT_DIR))  # fsyncs its files and folders, and `tmp`
            state = {"step": step, "algo": type(agent).__name__, "format": 1, **dict(run_state)}
            write_text(os.path.join(tmp, RUN_STATE), json.dumps(state, indent=2, default=json_default))
            if os.path.exists(final):  # same step saved twice (e.g. Ctrl-C right at a checkpoint)
                old = final + ".old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                fsync_dir(self.directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
                fsync_dir(self.directory)
            tmp = None
            write_text(os.path.join(self.directory, LATEST), name + "\n")
        except BaseException as exc:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)  # also gives the space back on a full disk
            reason = no_space_reason(exc) if isinstance(exc, Exception) else None
            if reason is None:
                raise
            last = self.latest()
            kept = (f"the last good checkpoint, {os.path.basename(last)}, is intact and `tlrl train --resume` "
                    f"continues from it" if last else "no earlier checkpoint exists")
            raise CheckpointError(f"cannot write checkpoint {name} into {self.directory}: {reason} "
                                  f"({_first_line(exc)}); {kept}. Free some space (or lower checkpoint.keep) "
                                  f"and resume.") from None
        self._prune(keep_path=final)
        return final

    def _prune(self, keep_path: str) -> None:
        found = self.checkpoints()
        for _, path in found[:-self.keep]:
            if os.path.abspath(path) != os.path.abspath(keep_path):
                shutil.rmtree(path, ignore_errors=True)

    # ----- loading ------------------------------------------------------------------------------------------
    @staticmethod
    def read_run_state(path: str) -> Dict[str, Any]:
        file = os.path.join(path, RUN_STATE)
        try:
            with open(file) as fh:
                state = json.load(fh)
        except FileNotFoundError:
            raise CheckpointError(f"{path} is not a complete checkpoint: {RUN_STATE} is missing") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{file} is corrupt ({exc}); the checkpoint is unusable") from None
        if not isinstance(state, dict) or "step" not in state:
            raise CheckpointError(f"{file} lacks 'step'; it was not written by tlrl")
        return state

    @staticmethod
    def load_agent(path: str, agent_cls, env=None, run_config=None, **overrides):
        """Rebuild the agent saved in checkpoint `path` as `agent_cls`, with plain errors on any problem.

        With `run_config` (the run's validated config.yaml) the env (unless `env` is given), its
        kwargs, the seed and the hyperparameters are the config's, and an agent.json that disagrees
        with it is refused, so an edited agent.json cannot choose what gets built or run."""
        from tlrl.agent import read_agent_meta
        from tlrl.envs import EnvSpecError

        agent_path = os.path.join(path, AGENT_DIR)
        try:
            meta = read_agent_meta(agent_path)
        except (FileNotFoundError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} is unusable: {exc}") from None
        if meta["algo"] != agent_cls.__name__:
            raise CheckpointError(f"checkpoint {path} holds a {meta['algo']} agent, not {agent_cls.__name__}: "
                                  f"it comes from another run or algorithm")
        env_kwargs = None
        if run_config is not None:
            _check_agrees_with_config(path, meta, agent_cls, run_config)
            if env is None:
                env, env_kwargs = run_config.env.id, dict(run_config.env.kwargs)
        try:
            return agent_cls.load(agent_path, env=env, env_kwargs=env_kwargs, **overrides)
        except CheckpointError:
            raise
        except EnvSpecError as exc:
            raise CheckpointError(f"checkpoint {path}: its env cannot be built: {exc}") from None
        except (ValueError, OSError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise CheckpointError(f"checkpoint {path} cannot be restored: it is corrupt or truncated "
                                  f"({type(exc).__name__}: {first})") from None

    def describe(self) -> str:
        found = self.checkpoints()
        if not found:
            return f"no checkpoints in {self.directory}"
        return f"checkpoints in {self.directory}: " + ", ".join(os.path.basename(p) for _, p in found)


def _first_line(exc: BaseException) -> str:
    """`Type: first line` of `exc`, without TensorFlow's `{{function_node ...}}` prefix."""
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", str(exc).strip()).splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _check_agrees_with_config(path: str, meta: Dict[str, Any], agent_cls, run_config) -> None:
    """Raise CheckpointError unless agent.json's env, env kwargs, seed and hyperparameters are the config's."""
    from tlrl.hyperparams import build_config

    env_id, env_kwargs = run_config.env.id, dict(run_config.env.kwargs)
    problems = []
    if meta["env"] != env_id or meta["env_kwargs"] != env_kwargs:
        problems.append(f"env {meta['env']!r} (kwargs {meta['env_kwargs']}) in agent.json, {env_id!r} "
                        f"(kwargs {env_kwargs}) in config.yaml")
    if meta["seed"] != run_config.seed:
        problems.append(f"seed {meta['seed']!r} in agent.json, {run_config.seed!r} in config.yaml")
    if meta["callables_not_saved"]:  # a config.yaml holds no functions, so its agent saved none
        problems.append(f"agent.json says the functions {meta['callables_not_saved']} were not saved, but the "
                        f"run's hyperparameters in config.yaml are plain values")
    config = build_config(agent_cls.Config, agent_cls.__name__, dict(run_config.hyperparameters))
    expected = {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    # an agent.json written before a hyperparameter existed lacks it: the class default is what it ran with
    saved = {**_defaults(agent_cls.Config), **meta["config"]}
    differ = sorted(k for k in set(expected) | set(saved)
                    if not callable(expected.get(k)) and plain(saved.get(k)) != expected.get(k))
    if differ:
        problems.append("hyperparameters " + ", ".join(f"{k}={saved.get(k)!r} in agent.json, {expected.get(k)!r} "
                                                         f"in config.yaml" for k in differ))
    if problems:
        raise CheckpointError(f"checkpoint {path}: its agent/agent.json and the run's config.yaml disagree: "
                              f"{'; '.join(problems)}. The checkpoint was edited or comes from another run; tlrl "
                              f"loads a run only as its config.yaml describes it")


def _defaults(config_cls) -> Dict[str, Any]:
    """The plain default value of each field of `config_cls` that has one."""
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = plain(f.default_factory())
    return out

