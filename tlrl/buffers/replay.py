"""`ReplayBuffer`: uniform experience replay for vector envs, with n-step returns.

Layout. Every field is one preallocated array `[rows, n_envs, ...]` with
`rows = capacity // n_envs`: row r holds one vector-env step, column e is env e's stream, so
an n-step look-ahead moves down one column and never mixes envs. `add` writes one row; the
row index wraps (a ring). A transition's *slot* (the `indices` of a `Batch`) is the flat
index `row * n_envs + env`. Observations keep the space's dtype (uint8 images stay uint8:
the agent casts at its boundary), rewards are float32, dones bool.

n-step returns (see `tlrl.buffers.nstep`). A segment from slot (row, env) runs down the env's
column for up to `n_step` steps and stops at the first terminated or truncated step and at
the newest written row. So the newest `n_step - 1` steps of each stream *are* sampled, with
a shorter segment that bootstraps (discount gamma**k) from their own `next_obs`; nothing is
excluded from sampling and no segment looks past the newest step or into the overwritten
oldest one across the ring wrap. Truncation stops a segment but still bootstraps from the
true final observation (the caller stores it as `next_obs`); termination gives discount 0.

Reading. `sample(batch_size)` draws slots uniformly with replacement, so a batch may be larger
than `len(buffer)` (as in Stable-Baselines3: with `learning_starts: 0` the first updates sample
the few stored transitions repeatedly); `gather(indices)` reads given slots the same way,
without drawing.

Files. `save(path)` writes one `.npz` (no pickle) holding the arrays, position, fullness,
config, the spaces (Box bounds included) and the RNG state; `ReplayBuffer.load(path)`
rebuilds the buffer exactly, spaces included (pass `observation_space` / `action_space` to
use your own objects; they must match the stored shapes and dtypes).

>>> import gymnasium as gym
>>> buf = ReplayBuffer(100, gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), n_envs=2, seed=0)
>>> for _ in range(2):
...     buf.add(np.zeros((2, 3)), np.array([0, 1]), np.ones(2), np.ones((2, 3)), np.array([False, True]), np.zeros(2, bool))
>>> batch = buf.sample(3)
>>> batch.obs.shape, batch.obs.dtype, batch.discount.dtype, len(buf)
((3, 3), dtype('float32'), dtype('float32'), 4)
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Tuple

import gymnasium as gym
import numpy as np

from tlrl.buffers import _io
from tlrl.buffers._spaces import allocate, check_array, check_field, flat_view, put, space_from_json, space_spec, space_to_json, take
from tlrl.buffers.nstep import discount_powers, window_returns
from tlrl.core import Batch, Transition


def check_positive_int(name: str, value: Any) -> int:
    """`value` as an int if it is a positive integer, else a ValueError naming `name`."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_unit_interval(name: str, value: Any) -> float:
    """`value` as a float if it lies in [0, 1], else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_seed(seed: Any) -> Optional[int]:
    """`seed` if it is None or a non-negative integer, else a ValueError."""
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return seed


class ReplayBuffer:
    """Uniform replay of vector-env transitions with n-step returns (see the module docstring).

    Args:
        capacity: transitions kept (rounded down to a multiple of `n_envs`; see `capacity`).
        observation_space: Box/Discrete/MultiDiscrete/MultiBinary, or a flat Dict of those.
        action_space: Box/Discrete/MultiDiscrete/MultiBinary.
        n_envs: envs per `add` (columns of the storage).
        n_step: steps of the sampled returns (1 = one-step TD).
        gamma: discount factor in [0, 1].
        seed: seed of the buffer's own `np.random.Generator` (sampling only).
    """

    _KIND = "ReplayBuffer"

    def __init__(
        self,
        capacity: int,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        n_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        seed: Optional[int] = None,
    ):
        capacity = check_positive_int("capacity", capacity)
        self._n_envs = check_positive_int("n_envs", n_envs)
        self._n_step = check_positive_int("n_step", n_step)
        self._gamma = check_unit_interval("gamma", gamma)
        self._rows = capacity // self._n_envs
        if self._rows < self._n_step:
            raise ValueError(
                f"capacity {capacity} is too small: capacity // n_envs ({self._rows}) must be at least n_step ({self._n_step})"
            )
        self.observation_space = observation_space
        self.action_space = action_space
        self._obs_spec = space_spec(observation_space, "observation_space")
        self._action_spec = space_spec(action_space, "action_space", allow_dict=False)
        lead = (self._rows, self._n_envs)
        self._obs = allocate(self._obs_spec, lead)
        self._next_obs = allocate(self._obs_spec, lead)
        self._action = allocate(self._action_spec, lead)
        self._reward = np.zeros(lead, np.float32)
        self._terminated = np.zeros(lead, bool)
        self._truncated = np.zeros(lead, bool)
        n = self._rows * self._n_envs
        # Flat [rows * n_envs, ...] views: sampling gathers by slot index with one take per field.
        self._obs_flat = flat_view(self._obs, n)
        self._next_obs_flat = flat_view(self._next_obs, n)
        self._action_flat = flat_view(self._action, n)
        self._reward_flat = self._reward.reshape(n)
        self._terminated_flat = self._terminated.reshape(n)
        self._truncated_flat = self._truncated.reshape(n)
        self._gamma32 = np.float32(self._gamma)
        self._window_offsets = np.arange(self._n_step, dtype=np.int64) * self._n_envs
        self._powers = discount_powers(self._gamma, self._n_step)
        self._pos = 0
        self._full = False
        self._rng = np.random.default_rng(check_seed(seed))

    # --- sizes ---

    @property
    def capacity(self) -> int:
        """Transitions the buffer holds when full: `(capacity // n_envs) * n_envs`."""
        return self._rows * self._n_envs

    @property
    def n_envs(self) -> int:
        return self._n_envs

    @property
    def n_step(self) -> int:
        return self._n_step

    @property
    def gamma(self) -> float:
        return self._gamma

    @property
    def full(self) -> bool:
        """Whether the ring has wrapped (every slot holds a transition)."""
        return self._full

    def __len__(self) -> int:
        """Transitions stored (all of them can be sampled)."""
        return (self._rows if self._full else self._pos) * self._n_envs

    # --- writing ---

    def add(
        self,
        obs: Any,
        action: Any = None,
        reward: Any = None,
        next_obs: Any = None,
        terminated: Any = None,
        truncated: Any = None,
    ) -> None:
        """Store one vector-env step: every argument has leading dim `n_envs`.

        `next_obs` must be the true final observation where an episode ended (not the reset
        observation). Also accepts a single `tlrl.core.Transition`. Raises ValueError on a
        wrong shape, an unknown or missing Dict key, or a dtype that cannot be stored.
        """
        if isinstance(obs, Transition):
            obs, action, reward, next_obs, terminated, truncated = obs
        elif action is None or reward is None or next_obs is None or terminated is None or truncated is None:
            raise TypeError("add() needs obs, action, reward, next_obs, terminated, truncated (or one Transition)")
        lead = (self._n_envs,)
        obs = check_field(obs, self._obs_spec, lead, "obs")
        next_obs = check_field(next_obs, self._obs_spec, lead, "next_obs")
        action = check_field(action, self._action_spec, lead, "action")
        reward = check_array(reward, lead, np.dtype(np.float32), "reward")
        terminated = check_array(terminated, lead, np.dtype(bool), "terminated")
        truncated = check_array(truncated, lead, np.dtype(bool), "truncated")
        row = self._pos
        put(self._obs, row, obs)
        put(self._next_obs, row, next_obs)
        put(self._action, row, action)
        self._reward[row] = reward
        self._terminated[row] = terminated
        self._truncated[row] = truncated
        self._pos = row + 1
        if self._pos == self._rows:
            self._pos = 0
            self._full = True

    def cut(self) -> None:
        """Mark the newest row truncated where it did not terminate: the episodes running there were cut (a
        checkpoint restarts the envs), so n-step returns do not run across the cut; bootstrapping from the
        stored next observation stays exact."""
        if len(self) == 0:
            return
        last = (self._pos - 1) % self._rows
        self._truncated[last] |= ~self._terminated[last]

    # --- sampling ---

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement, n-step returns included.

        Works as soon as one transition is stored; `batch_size` may exceed `len(self)`.

        Returns a `Batch` with `obs`/`next_obs` in the stored dtype, `reward` (n-step discounted
        sum) and `discount` (gamma**k, or 0 after termination) float32, `weights` ones, and
        `indices` the int64 slots.
        """
        self._check_batch_size(batch_size)
        # floor(U * n) with U in [0, 1) a 53-bit float: uniform to ~n / 2**53 and always < n,
        # and about 3x cheaper than Generator.integers for a batch.
        indices = (self._rng.random(batch_size) * len(self)).astype(np.int64)
        return self._gather(indices, np.ones(batch_size, np.float32))

    def gather(self, indices: Any) -> Batch:
        """The transitions at slots `indices` (1-D ints < len(self)), n-step returns included.

        Reads without sampling (e.g. to re-read a batch, or to inspect the buffer); `weights`
        are ones.
        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be a 1-D integer array, got shape {idx.shape} and dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ValueError(f"indices must lie in [0, {len(self)}) (the stored slots), got range [{idx.min()}, {idx.max()}]")
        return self._gather(idx.astype(np.int64), np.ones(idx.shape, np.float32))

    def _check_batch_size(self, batch_size: Any) -> None:
        """A positive `batch_size` and a non-empty buffer; the batch may exceed `len(self)` (with replacement)."""
        check_positive_int("batch_size", batch_size)
        if len(self) == 0:
            raise ValueError(f"cannot sample from an empty {type(self).__name__}: add transitions first")

    def _gather(self, indices: np.ndarray, weights: np.ndarray) -> Batch:
        """The batch at slots `indices` (int64, all stored)."""
        if self._n_step == 1:
            reward = self._reward_flat.take(indices)
            discount = np.multiply(~self._terminated_flat.take(indices), self._gamma32)
            next_indices = indices
        else:
            reward, discount, next_indices = self._nstep(indices)
        return Batch(
            obs=take(self._obs_flat, indices),
            action=self._action_flat.take(indices, axis=0),
            reward=reward,
            next_obs=take(self._next_obs_flat, next_indices),
            discount=discount,
            weights=weights,
            indices=indices,
        )

    def _nstep(self, indices: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n-step (reward, discount, bootstrap slot) of the segments starting at `indices`."""
        # Slot s = row * n_envs + env, so env's next step is slot s + n_envs (mod capacity).
        capacity = self._rows * self._n_envs
        window = indices[:, None] + self._window_offsets  # [B, n] slots
        np.remainder(window, capacity, out=window)
        # Rows from each start to the newest row (pos - 1), ring-aware: ((pos*n - 1 - s) mod C) // n.
        horizon = (self._pos * self._n_envs - 1 - indices) % capacity // self._n_envs + 1
        np.minimum(horizon, self._n_step, out=horizon)
        reward, discount, offsets = window_returns(
            self._reward_flat.take(window), self._terminated_flat.take(window), self._truncated_flat.take(window),
            self._powers, horizon,
        )
        next_indices = (indices + offsets * self._n_envs) % capacity
        return reward, discount, next_indices

    # --- files ---

    def save(self, path: "str | os.PathLike[str]") -> str:
        """Write the whole buffer (arrays, position, config, spaces, RNG state) to one `.npz`.

        `.npz` is appended to `path` if missing; the write is atomic. Returns the path written.
        """
        obs_desc, obs_arrays = space_to_json(self.observation_space, "space.obs")
        act_desc, act_arrays = space_to_json(self.action_space, "space.action")
        header = {
            "config": {"capacity": self.capacity, "n_envs": self._n_envs, "n_step": self._n_step, "gamma": self._gamma,
                       **self._extra_config()},
            "observation_space": obs_desc,
            "action_space": act_desc,
            "pos": self._pos,
            "full": self._full,
            "rng": _io.rng_to_json(self._rng),
        }
        arrays: Dict[str, np.ndarray] = {**obs_arrays, **act_arrays}
        arrays.update(_io.field_arrays(self._obs, "obs"))
        arrays.update(_io.field_arrays(self._next_obs, "next_obs"))
        arrays.update(action=self._action, reward=self._reward, terminated=self._terminated, truncated=self._truncated)
        arrays.update(self._extra_arrays())
        return _io.save(path, self._KIND, header, arrays)

    @classmethod
    def load(
        cls,
        path: "str | os.PathLike[str]",
        observation_space: Optional[gym.Space] = None,
        action_space: Optional[gym.Space] = None,
    ) -> "ReplayBuffer":
        """Rebuild a buffer written by `save`, exactly (next samples included).

        Raises:
            FileNotFoundError: no such file.
            ValueError: corrupt or truncated file, a file of another buffer type, or spaces
                that do not match the stored shapes/dtypes; the message names the file.
        """
        meta, arrays, path = _io.load(path, cls._KIND)
        try:
            config = dict(meta["config"])
            stored_obs = space_from_json(meta["observation_space"], arrays, "space.obs")
            stored_act = space_from_json(meta["action_space"], arrays, "space.action")
            pos, full, rng = int(meta["pos"]), bool(meta["full"]), _io.rng_from_json(meta["rng"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{path!r} has a corrupt or incomplete header: {e!r}") from e
        for given, stored, name in ((observation_space, stored_obs, "observation_space"), (action_space, stored_act, "action_space")):
            if given is not None and space_spec(given, name) != space_spec(stored, name):
                raise ValueError(f"{path!r}: the given {name} {given} does not match the stored {stored}")
        try:
            buf = cls(
                config.pop("capacity"),
                stored_obs if observation_space is None else observation_space,
                stored_act if action_space is None else action_space,
                **config,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path!r} holds an invalid buffer config: {e}") from e
        if not 0 <= pos < buf._rows:
            raise ValueError(f"{path!r}: position {pos} is outside [0, {buf._rows})")
        _io.restore_field(buf._obs, "obs", arrays, path)
        _io.restore_field(buf._next_obs, "next_obs", arrays, path)
        _io.restore_field(buf._action, "action", arrays, path)
        for name in ("reward", "terminated", "truncated"):
            _io.restore_field(getattr(buf, "_" + name), name, arrays, path)
        buf._pos, buf._full, buf._rng = pos, full, rng
        buf._restore_extra(meta, arrays, path)
        return buf

    # Hooks for subclasses that keep more state (e.g. priorities).

    def _extra_config(self) -> Dict[str, Any]:
        return {}

    def _extra_arrays(self) -> Dict[str, np.ndarray]:
        return {}

    def _restore_extra(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: str) -> None:
        pass
