"""The files of a saved agent: `agent.json` read and checked, a save directory swapped in durably."""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict

import numpy as np

from tlrl.durable import fsync_dir

AGENT_FILE = "agent.json"


def read_agent_meta(path: str) -> Dict[str, Any]:
    """Read and check `agent.json` of a saved agent, with a clear error if it is missing or corrupt."""
    file = os.path.join(path, AGENT_FILE)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"No saved agent at {path}: {AGENT_FILE} is missing")
    try:
        with open(file) as fh:
            meta = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file} is corrupt ({exc}); the save is unusable") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{file} holds a {type(meta).__name__}, not a mapping; it was not written by tlrl's save()")
    missing = [k for k in ("algo", "config", "env", "seed", "num_timesteps") if k not in meta]
    if missing:
        raise ValueError(f"{file} lacks {missing}; it was not written by tlrl's save()")
    meta.setdefault("env_kwargs", {})
    meta.setdefault("callables_not_saved", [])
    expected = {"algo": (str,), "config": (dict,), "env": (str, type(None)), "env_kwargs": (dict,),
                "seed": (int, type(None)), "num_timesteps": (int,), "callables_not_saved": (list,)}
    words = {str: "a string", dict: "a mapping", int: "an integer", list: "a list", type(None): "null"}
    for key, types in expected.items():
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ValueError(f"{file}: {key!r} must be {' or '.join(words[t] for t in types)}, got {value!r}; the "
                             f"file was edited or not written by tlrl's save()")
    return meta


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in agent.json")


def swap_in(tmp: str, path: str) -> None:
    """Replace directory `path` by `tmp` with renames only (the old one survives until the new is in place);
    `tmp` must already be fsynced (`fsync_tree`)."""
    old = None
    if os.path.exists(path):
        old = path + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))  # the renames are durable before the old save goes
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
