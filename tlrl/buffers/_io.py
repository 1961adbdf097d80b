"""Buffer files: one `.npz` (no pickle) holding the arrays and a JSON header.

The header (`__tlrl__`, a unicode scalar) names the buffer kind and format version and
carries the config and, where the buffer has one, the RNG state. Every failure to read a
file (not a zip, truncated, bad CRC, wrong kind, missing or misshaped array) is raised as a
ValueError that names the file.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Tuple

import numpy as np

from tlrl.durable import fsync_dir, fsync_file

FORMAT_VERSION = 1
_HEADER = "__tlrl__"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def npz_path(path: "str | os.PathLike[str]") -> str:
    """`path` as a string ending in `.npz` (appended if missing, as `np.savez` would)."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def rng_to_json(rng: np.random.Generator) -> str:
    """The Generator's `bit_generator.state` as a JSON string."""
    return json.dumps(rng.bit_generator.state, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))


def rng_from_json(text: str) -> np.random.Generator:
    """A Generator in exactly the state written by `rng_to_json`."""
    state = json.loads(text)
    name = state.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    if name == "MT19937":
        state["state"]["key"] = np.asarray(state["state"]["key"], dtype=np.uint32)
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def save(path: "str | os.PathLike[str]", kind: str, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """Write `arrays` and a JSON `header` for a buffer of `kind`; atomic and durable (temp file, fsync, rename,
    fsync of the folder). Returns the path."""
    path = npz_path(path)
    meta = {"kind": kind, "version": FORMAT_VERSION, **header}
    payload = dict(arrays)
    payload[_HEADER] = np.array(json.dumps(meta))
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **payload)
        fsync_file(tmp)  # durable before the rename: a crash never leaves a short file at `path`
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)  # e.g. the disk filled up: give the space back
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return path


def load(path: "str | os.PathLike[str]", kind: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray], str]:
    """Read a file written by `save` for `kind`: returns `(header, arrays, path)`.

    Raises:
        FileNotFoundError: no file at `path` (nor at `path + ".npz"`).
        ValueError: the file is corrupt or truncated, or holds another kind of buffer.
    """
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(npz_path(path)):
        path = npz_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no buffer file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as e:  # zipfile.BadZipFile, EOFError, OSError, ValueError, ... all mean "not readable".
        raise ValueError(f"{path!r} is not a readable tlrl {kind} file (corrupt or truncated?): {e}") from e
    if _HEADER not in arrays:
        raise ValueError(f"{path!r} is not a tlrl buffer file: it has no {_HEADER!r} header")
    try:
        meta = json.loads(str(arrays.pop(_HEADER)))
    except ValueError as e:
        raise ValueError(f"{path!r} has a corrupt header: {e}") from e
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        found = meta.get("kind") if isinstance(meta, dict) else None
        raise ValueError(f"{path!r} holds a {found}, not a {kind}; load it with {found}.load")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has format version {meta.get('version')}, this tlrl reads version {FORMAT_VERSION}")
    return meta, arrays, path


def expect(arrays: Mapping[str, np.ndarray], name: str, like: np.ndarray, path: str) -> np.ndarray:
    """`arrays[name]`, checked to have the shape and dtype of `like`; else a ValueError naming `path`."""
    if name not in arrays:
        raise ValueError(f"{path!r} is missing the array {name!r}")
    arr = arrays[name]
    if arr.shape != like.shape or arr.dtype != like.dtype:
        raise ValueError(
            f"{path!r}: array {name!r} has shape {arr.shape} and dtype {arr.dtype}, "
            f"expected {like.shape} and {like.dtype}"
        )
    return arr


def field_arrays(field: "np.ndarray | Dict[str, np.ndarray]", name: str) -> Dict[str, np.ndarray]:
    """Name the arrays of a (possibly dict) field for a file: `name`, or `name.0`, `name.1`, ... per key."""
    if isinstance(field, dict):
        return {f"{name}.{i}": v for i, v in enumerate(field.values())}
    return {name: field}


def restore_field(field: "np.ndarray | Dict[str, np.ndarray]", name: str, arrays: Mapping[str, np.ndarray], path: str) -> None:
    """Copy the arrays named by `field_arrays` back into the preallocated `field`."""
    for key, target in field_arrays(field, name).items():
        target[...] = expect(arrays, key, target, path)

