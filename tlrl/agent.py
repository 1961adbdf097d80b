"""`BaseAgent`: the plumbing every algorithm shares.

Env resolution and checking, seeding, hyperparameter validation, single vs
batched `act`, `evaluate`, and `save`/`load` (config JSON + `tf.train.Checkpoint`
+ `.npz` for numpy state; written to a temporary directory and swapped in, so
a crash while saving leaves the previous save usable).

An algorithm subclass sets `Config` (a dataclass, one docstring line per field),
implements `_check_spaces`, `_build`, `_act_batch`, `learn`, and lists what to
save in `_trackables` (TF objects) and `_numpy_state` / `_set_numpy_state`.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Tuple, Type

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.durable import fsync_dir, fsync_tree
from tlrl.finite import check_env_step
from tlrl.hyperparams import build_config
from tlrl.seeding import seed_everything

AGENT_FILE = "agent.json"
CKPT_PREFIX = "ckpt/agent"
STATE_FILE = "state.npz"


class BaseAgent:
    """Shared constructor, acting, evaluation and persistence of tlrl agents."""

    Config: ClassVar[Type] = None  # set by subclasses
    #: Number of training envs is read from `config.n_envs` when the config has it.

    def __init__(self, env, *, seed: Optional[int] = None, env_kwargs: Optional[Dict[str, Any]] = None,
                 **hyperparameters):
        self.config = build_config(self.Config, type(self).__name__, hyperparameters)
        self.seed = seed
        self.env_spec, self.env_kwargs = env, dict(env_kwargs or {})
        self.rng = seed_everything(seed)
        self.tf_rng = tf.random.Generator.from_seed(0 if seed is None else seed) if seed is not None \
            else tf.random.Generator.from_non_deterministic_state()
        self.num_timesteps = 0
        self.n_envs = int(getattr(self.config, "n_envs", 1))
        probe = self._make_single_env()
        self.observation_space: gym.Space = probe.observation_space
        self.action_space: gym.Space = probe.action_space
        self._check_spaces(self.observation_space, self.action_space)
        from tlrl.envs import check_env

        check_env(probe)
        self._probe_env = probe
        self.env = None  # the training vector env, created by `learn` on first use
        self._build()

    # ----- to implement -------------------------------------------------
    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Raise TypeError naming the space if the algorithm cannot handle it."""

    def _build(self) -> None:
        """Create networks and optimizers (eagerly, so nothing is created inside a compiled function)."""
        raise NotImplementedError

    def _act_batch(self, obs, deterministic: bool) -> np.ndarray:
        """Actions for a batch of observations (leading batch dimension)."""
        raise NotImplementedError

    def learn(self, total_steps: int, callback: Optional[Callable[..., Any]] = None) -> "BaseAgent":
        raise NotImplementedError

    def _trackables(self) -> Dict[str, Any]:
        """TF objects saved in the checkpoint (networks, optimizers, counters)."""
        return {}

    def _numpy_state(self) -> Dict[str, np.ndarray]:
        """Extra numpy state saved with the agent (normalizers, buffers are saved separately)."""
        return {}

    def _set_numpy_state(self, state: Mapping[str, np.ndarray]) -> None:
        pass

    def _save_extra(self, directory: str) -> None:
        """Write extra files (e.g. the replay buffer) into the save directory."""

    def _load_extra(self, directory: str) -> None:
        pass

    # ----- envs -----------------------------------------------------------
    def _make_single_env(self, render_mode: Optional[str] = None) -> gym.Env:
        from tlrl.envs import make_env

        if isinstance(self.env_spec, gym.Env):
            return self.env_spec
        return make_env(self.env_spec, self.env_kwargs, render_mode=render_mode)

    def _make_vector_env(self, n_envs: int, seed: Optional[int]) -> gym.vector.VectorEnv:
        from tlrl.envs import make_vector_env

        if isinstance(self.env_spec, gym.Env):
            if n_envs != 1:
                raise ValueError(
                    f"{type(self).__name__} needs {n_envs} envs but was given one env instance; pass an env id, "
                    f"'package.module:Class' or a factory callable instead so copies can be made."
                )
            return make_vector_env(lambda: self.env_spec, 1, seed=seed)
        return make_vector_env(self.env_spec, n_envs, seed=seed, kwargs=self.env_kwargs)

    def _ensure_train_env(self) -> gym.vector.VectorEnv:
        if self.env is None:
            env_seed = None if self.seed is None else int(self.rng.integers(0, 2**31 - 1))
            self.env = self._make_vector_env(self.n_envs, env_seed)
            self._obs, _ = self.env.reset(seed=env_seed)
            check_env_step(self.env, int(self.num_timesteps), self._obs, np.zeros(0, np.float32))  # first observations
        return self.env

    # ----- acting ---------------------------------------------------------
    def _is_single(self, obs) -> bool:
        space = self.observation_space
        if isinstance(space, gym.spaces.Dict):
            key = next(iter(space.spaces))
            return np.shape(obs[key]) == space.spaces[key].shape
        return np.shape(obs) == space.shape

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Actions for one observation or a batch (leading dimension) of them.

        A single observation gives a single action; a batch gives a batch.
        """
        if self._is_single(obs):
            batched = {k: np.asarray(v)[None] for k, v in obs.items()} if isinstance(obs, Mapping) \
                else np.asarray(obs)[None]
            return self._act_batch(batched, deterministic)[0]
        return self._act_batch(obs, deterministic)

    def evaluate(self, episodes: int = 10, deterministic: bool = True, seed: Optional[int] = None) -> Tuple[float, float]:
        """Mean and std of the undiscounted return over `episodes` full episodes on a separate env."""
        if episodes <= 0:
            raise ValueError(f"episodes must be positive, got {episodes}")
        env = self._eval_env()
        base = (seed if seed is not None else (self.seed or 0) + 10_000)
        returns = []
        for i in range(episodes):
            obs, _ = env.reset(seed=base + i)
            done, total = False, 0.0
            while not done:
                obs, reward, terminated, truncated, _ = env.step(self._to_env_action(self.act(obs, deterministic)))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns)), float(np.std(returns))

    def _eval_env(self) -> gym.Env:
        if getattr(self, "_evaluation_env", None) is None:
            if isinstance(self.env_spec, gym.Env):
                try:
                    self._evaluation_env = copy.deepcopy(self.env_spec)
                except Exception as exc:  # noqa: BLE001 - report what the user can do
                    raise ValueError(
                        "evaluate() needs a second copy of the env, and this env instance cannot be deep-copied "
                        f"({exc}). Pass an env id or factory instead of an instance."
                    ) from exc
            else:
                self._evaluation_env = self._make_single_env()
        return self._evaluation_env

    def _to_env_action(self, action: np.ndarray):
        """Convert a policy action to what env.step expects (clip Box actions to bounds)."""
        if isinstance(self.action_space, gym.spaces.Box):
            return np.clip(action, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
        if isinstance(self.action_space, gym.spaces.Discrete):
            return int(action)
        return np.asarray(action, dtype=self.action_space.dtype)

    # ----- persistence ----------------------------------------------------
    def _checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(tf_rng=self.tf_rng, **self._trackables())

    def _config_dict(self) -> Dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self.config):
            value = getattr(self.config, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def save(self, path: str) -> None:
        """Save everything needed to act and to continue training into directory `path`.

        The directory is written next to its final place, fsynced (every file and folder) and then
        swapped in, so an interrupted save, a crash or a power loss leaves any previous save at
        `path` intact.
        """
        path = os.path.abspath(path)
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        config = self._config_dict()
        not_json = [k for k, v in config.items() if callable(v)]
        for k in not_json:
            config[k] = None
        meta = {
            "algo": type(self).__name__,
            "config": config,
            "callables_not_saved": not_json,
            "env": self.env_spec if isinstance(self.env_spec, str) else None,
            "env_kwargs": self.env_kwargs,
            "seed": self.seed,
            "num_timesteps": int(self.num_timesteps),
            "format": 1,
        }
        tmp = tempfile.mkdtemp(prefix=".tmp-save-", dir=parent)
        try:
            with open(os.path.join(tmp, AGENT_FILE), "w") as fh:
                json.dump(meta, fh, indent=2, default=_json_default)
            self._checkpoint().write(os.path.join(tmp, CKPT_PREFIX))
            state = dict(self._numpy_state())
            state["__rng__"] = np.array(json.dumps(self.rng.bit_generator.state))
            np.savez(os.path.join(tmp, STATE_FILE), **state)
            self._save_extra(tmp)
            fsync_tree(tmp)  # every file and folder on disk before the new save takes the old one's place
            _swap_in(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: str, env=None, env_kwargs: Optional[Dict[str, Any]] = None, **overrides) -> "BaseAgent":
        """Rebuild an agent saved with `save`. `env` replaces the saved env spec (required if
        none was saved, e.g. for an env instance) and `env_kwargs` the saved env kwargs;
        `overrides` replace saved hyperparameters. A saved env string resolves only to a
        registered id or a gymnasium.Env subclass (`tlrl.envs.resolve_env_id`), checked before
        anything is built."""
        meta = read_agent_meta(path)
        if meta["algo"] != cls.__name__:
            raise ValueError(f"{path} holds a {meta['algo']} agent, not {cls.__name__}; load it with {meta['algo']}.load")
        if env is None and meta["env"] is None:
            raise ValueError(f"{path} was saved from an env instance or factory; pass env= to {cls.__name__}.load")
        if env is None:
            from tlrl.envs import resolve_env_id

            resolve_env_id(meta["env"])
        config = {k: v for k, v in meta["config"].items() if k not in meta.get("callables_not_saved", [])}
        hints = {f.name: f.type for f in dataclasses.fields(cls.Config)}
        config = {k: (tuple(v) if isinstance(v, list) and "Tuple" in str(hints.get(k, "")) else v)
                  for k, v in config.items()}
        config.update(overrides)
        agent = cls(env if env is not None else meta["env"], seed=meta["seed"],
                    env_kwargs=meta["env_kwargs"] if env_kwargs is None else env_kwargs, **config)
        agent.restore_state(path, meta)
        return agent

    def restore_state(self, path: str, meta: Optional[Dict[str, Any]] = None) -> None:
        """Restore weights, optimizer, counters and numpy state saved at `path` into this agent."""
        meta = meta or read_agent_meta(path)
        prefix = os.path.join(path, CKPT_PREFIX)
        try:
            status = self._checkpoint().read(prefix)
            status.assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as exc:  # IndexError: truncated data file
            raise ValueError(
                f"Cannot restore the checkpoint in {path}: it is corrupt, truncated, or was written by a different "
                f"network layout ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            ) from None
        try:
            with np.load(os.path.join(path, STATE_FILE), allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"Cannot read {os.path.join(path, STATE_FILE)}: {exc}") from None
        self.rng.bit_generator.state = json.loads(str(state.pop("__rng__")))
        self._set_numpy_state(state)
        self.num_timesteps = int(meta["num_timesteps"])
        self._load_extra(path)


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


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in agent.json")


def _swap_in(tmp: str, path: str) -> None:
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
