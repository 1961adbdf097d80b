"""Checkpoints of a training run: atomic, the last K kept, with a `latest` pointer, restorable exactly.

Layout under a run directory::

    checkpoints/
        step_000010000/
            agent/            BaseAgent.save: agent.json, ckpt/ (tf.train.Checkpoint: weights, optimizer
                              slots, counters, TF RNG), state.npz (numpy RNG, normalizers), buffers (.npz)
            run_state.json    the run's own state (logger, wall clock, step), JSON
        latest                name of the newest complete checkpoint (written with os.replace)

A checkpoint is written into a hidden temporary directory and renamed into place, then
`latest` is replaced: a crash at any moment leaves the previous checkpoint usable (stale
temporary directories are removed on the next start). Loading reads only JSON, `.npz`
without pickle and TF checkpoints; a corrupt, truncated or foreign checkpoint raises
`CheckpointError` with a plain message.

>>> import tempfile
>>> manager = CheckpointManager(tempfile.mkdtemp(), keep=2)
>>> manager.latest() is None
True
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

AGENT_DIR = "agent"
RUN_STATE = "run_state.json"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (missing, corrupt, truncated, or of another algorithm)."""


def _fsync_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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

    # ----- listing ------------------------------------------------------------------------------------------
    def checkpoints(self) -> List[Tuple[int, str]]:
        """(step, path) of every complete checkpoint, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        out = []
        for name in os.listdir(self.directory):
            m = _STEP_DIR.match(name)
            path = os.path.join(self.directory, name)
            if m and os.path.isfile(os.path.join(path, RUN_STATE)):
                out.append((int(m.group(1)), path))
        return sorted(out)

    def latest(self) -> Optional[str]:
        """Path of the newest checkpoint: the one `latest` names, else the newest complete one, else None."""
        pointer = os.path.join(self.directory, LATEST)
        if os.path.isfile(pointer):
            with open(pointer) as fh:
                name = fh.read().strip()
            path = os.path.join(self.directory, name)
            if _STEP_DIR.match(name) and os.path.isdir(path):
                return path
        found = self.checkpoints()
        return found[-1][1] if found else None

    # ----- saving -------------------------------------------------------------------------------------------
    def save(self, agent, run_state: Mapping[str, Any]) -> str:
        """Write a checkpoint of `agent` (at its `num_timesteps`) and `run_state`; return its path."""
        step = int(agent.num_timesteps)
        os.makedirs(self.directory, exist_ok=True)
        name = f"step_{step:09d}"
        final = os.path.join(self.directory, name)
        tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.directory)
        try:
            agent.save(os.path.join(tmp, AGENT_DIR))
            state = {"step": step, "algo": type(agent).__name__, "format": 1, **dict(run_state)}
            _fsync_write(os.path.join(tmp, RUN_STATE), json.dumps(state, indent=2, default=_json_default))
            if os.path.exists(final):  # same step saved twice (e.g. Ctrl-C right at a checkpoint)
                old = final + ".old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_write(os.path.join(self.directory, LATEST), name + "\n")
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
    def load_agent(path: str, agent_cls, env=None, **overrides):
        """Rebuild the agent saved in checkpoint `path` as `agent_cls`, with plain errors on any problem."""
        from tlrl.agent import read_agent_meta

        agent_path = os.path.join(path, AGENT_DIR)
        try:
            meta = read_agent_meta(agent_path)
        except (FileNotFoundError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} is unusable: {exc}") from None
        if meta["algo"] != agent_cls.__name__:
            raise CheckpointError(f"checkpoint {path} holds a {meta['algo']} agent, not {agent_cls.__name__}: "
                                  f"it comes from another run or algorithm")
        try:
            return agent_cls.load(agent_path, env=env, **overrides)
        except CheckpointError:
            raise
        except (ValueError, OSError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise CheckpointError(f"checkpoint {path} cannot be restored: it is corrupt or truncated "
                                  f"({type(exc).__name__}: {first})") from None

    def describe(self) -> str:
        found = self.checkpoints()
        if not found:
            return f"no checkpoints in {self.directory}"
        return f"checkpoints in {self.directory}: " + ", ".join(os.path.basename(p) for _, p in found)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in {RUN_STATE}")
