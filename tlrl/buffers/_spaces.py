"""Gymnasium spaces as buffer fields: shapes, dtypes, input checks, and a JSON form for files.

A *spec* is `(shape, dtype)` for an array field, or a dict `{key: (shape, dtype)}` for a
(flat) `gymnasium.spaces.Dict`. Buffers allocate, check and gather fields through the
helpers here, so a Dict observation costs one array per key and nothing per transition.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple, Union

import gymnasium as gym
import numpy as np

ArraySpec = Tuple[Tuple[int, ...], np.dtype]
Spec = Union[ArraySpec, Dict[str, ArraySpec]]
Field = Union[np.ndarray, Dict[str, np.ndarray]]

_ARRAY_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def space_spec(space: gym.Space, name: str, *, allow_dict: bool = True) -> Spec:
    """The storage spec of `space`; raises a ValueError naming `name` for unsupported spaces."""
    if isinstance(space, gym.spaces.Dict):
        if not allow_dict:
            raise ValueError(f"{name}: a Dict space is not supported here (only inside an observation space)")
        if len(space.spaces) == 0:
            raise ValueError(f"{name}: the Dict space is empty")
        spec = {}
        for key, sub in space.spaces.items():
            if not isinstance(key, str):
                raise ValueError(f"{name}: Dict keys must be strings, got {key!r}")
            spec[key] = space_spec(sub, f"{name}[{key!r}]", allow_dict=False)
        return spec
    if not isinstance(space, _ARRAY_SPACES):
        raise ValueError(
            f"{name}: unsupported space {type(space).__name__}; buffers store Box, Discrete, "
            f"MultiDiscrete, MultiBinary, or a flat Dict of those"
        )
    return tuple(int(d) for d in space.shape), np.dtype(space.dtype)


def allocate(spec: Spec, lead: Tuple[int, ...]) -> Field:
    """Zero-filled storage of `spec` with leading dims `lead`."""
    if isinstance(spec, dict):
        return {k: np.zeros(lead + s, d) for k, (s, d) in spec.items()}
    shape, dtype = spec
    return np.zeros(lead + shape, dtype)


def flat_view(field: Field, n: int) -> Field:
    """View of `field` with its first two axes merged into one of length `n`."""
    if isinstance(field, dict):
        return {k: v.reshape((n,) + v.shape[2:]) for k, v in field.items()}
    return field.reshape((n,) + field.shape[2:])


def take(field: Field, index: np.ndarray) -> Field:
    """Rows `index` of a (flat) field, as new arrays."""
    # `take` along axis 0 is several times faster than `field[index]` on arrays of rank > 1.
    if isinstance(field, dict):
        return {k: v.take(index, axis=0) for k, v in field.items()}
    return field.take(index, axis=0)


def put(field: Field, index: int, value: Field) -> None:
    """Write an already checked `value` into `field[index]`."""
    if isinstance(field, dict):
        for k, v in value.items():
            field[k][index] = v
    else:
        field[index] = value


def check_array(value: Any, shape: Tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray:
    """`value` as an array of exactly `shape`, castable to `dtype`; else a ValueError saying what was wrong."""
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    if arr.dtype != dtype:
        ok = np.can_cast(arr.dtype, dtype, "same_kind") or (dtype.kind == "b" and arr.dtype.kind in "iu")
        if not ok:
            raise ValueError(f"{name} has dtype {arr.dtype}, which cannot be stored as {dtype} without changing its kind")
    return arr


def check_field(value: Any, spec: Spec, lead: Tuple[int, ...], name: str) -> Field:
    """Check `value` against `spec` with leading dims `lead` (dict specs need a mapping with the same keys)."""
    if isinstance(spec, dict):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict with keys {sorted(spec)}, got {type(value).__name__}")
        if value.keys() != spec.keys():
            unknown = sorted(set(value) - set(spec))
            missing = sorted(set(spec) - set(value))
            raise ValueError(f"{name} keys do not match the space: unknown keys {unknown}, missing keys {missing}")
        return {k: check_array(value[k], lead + s, d, f"{name}[{k!r}]") for k, (s, d) in spec.items()}
    shape, dtype = spec
    return check_array(value, lead + shape, dtype, name)


# --- JSON form of a space (for buffer files); arrays (Box bounds, nvec) travel next to it. ---

def space_to_json(space: gym.Space, prefix: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """A JSON-able description of `space` and the arrays it needs, named under `prefix`."""
    if isinstance(space, gym.spaces.Dict):
        desc: Dict[str, Any] = {"type": "Dict", "keys": list(space.spaces), "spaces": []}
        arrays: Dict[str, np.ndarray] = {}
        for i, sub in enumerate(space.spaces.values()):
            d, a = space_to_json(sub, f"{prefix}.{i}")
            desc["spaces"].append(d)
            arrays.update(a)
        return desc, arrays
    dtype = np.dtype(space.dtype).str
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "dtype": dtype}, {f"{prefix}.low": space.low, f"{prefix}.high": space.high}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start), "dtype": dtype}, {}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "dtype": dtype}, {f"{prefix}.nvec": space.nvec, f"{prefix}.start": space.start}
    if isinstance(space, gym.spaces.MultiBinary):
        n = space.n if isinstance(space.n, (int, np.integer)) else [int(x) for x in space.n]
        return {"type": "MultiBinary", "n": n}, {}
    raise ValueError(f"cannot describe space {type(space).__name__}")


def space_from_json(desc: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str) -> gym.Space:
    """Rebuild the space written by `space_to_json`."""
    kind = desc["type"]
    if kind == "Dict":
        return gym.spaces.Dict(
            {k: space_from_json(d, arrays, f"{prefix}.{i}") for i, (k, d) in enumerate(zip(desc["keys"], desc["spaces"]))}
        )
    if kind == "Box":
        return gym.spaces.Box(arrays[f"{prefix}.low"], arrays[f"{prefix}.high"], dtype=np.dtype(desc["dtype"]))
    if kind == "Discrete":
        return gym.spaces.Discrete(desc["n"], start=desc["start"], dtype=np.dtype(desc["dtype"]))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(arrays[f"{prefix}.nvec"], dtype=np.dtype(desc["dtype"]), start=arrays[f"{prefix}.start"])
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(desc["n"])
    raise ValueError(f"unknown space type {kind!r}")
