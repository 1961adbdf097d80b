"""`BaseAgent`: what every agent shares, and the public extension points an algorithm fills in.

Shared: env resolution and checking, seeding, hyperparameter validation, the training envs
(`collector`), the counters, `learn` (through `tlrl.loop.train`), single vs batched `act`,
`evaluate`, and `save`/`load` (config JSON + `tf.train.Checkpoint` + `.npz` for numpy state;
written to a temporary directory and swapped in, so a crash while saving leaves the previous
save usable).

An algorithm (or a user's composed agent, see docs/compose.md) sets `Config` (a dataclass,
one docstring line per field) and implements, all public:

- construction: `check_spaces`, `build` (networks, optimizers, compiled update, `plan`, `store`);
- acting (`tlrl.core.Actor`): `act_batch`, `explore`, optionally `observe`, `acting_variables`
  and `weights_changed`;
- learning (`tlrl.core.Learner`): `update(obs) -> metrics`, `trackables`, optionally
  `numpy_state`/`set_numpy_state`;
- the data path: `add(step, extras)` (default: into `self.store`), `cut_episodes`;
- export: `policy_graph(obs)`, the deterministic policy in TF.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.collector import Collector
from tlrl.core import Callback, CollectPlan, Extras, Metrics, Observation, Transition
from tlrl.durable import fsync_tree
from tlrl.episodes import EpisodeTracker
from tlrl.hyperparams import build_config
from tlrl.saved_agent import AGENT_FILE, json_default, read_agent_meta, swap_in  # noqa: F401 - public names
from tlrl.seeding import seed_everything
from tlrl.spaces import batch_of_one, is_single_obs, to_env_action

CKPT_PREFIX = "ckpt/agent"
STATE_FILE = "state.npz"


class BaseAgent:
    """Shared constructor, training, acting, evaluation and persistence of tlrl agents.

    Attributes:
        config: the validated hyperparameters (an instance of `Config`).
        observation_space, action_space: the spaces of one env.
        n_envs: training envs stepped together (`config.n_envs` when the config has it, else 1).
        rng: the numpy generator everything random on the numpy side draws from (seeded).
        collector: the training envs and their current observations (`tlrl.collector.Collector`).
        plan: the algorithm's schedule (`tlrl.core.CollectPlan`), set by `build`.
        store: where collected steps go by default (a replay buffer store), or None.
        episode_tracker: returns/lengths of the training episodes.
        num_timesteps, vector_steps, n_updates: env steps, vector steps and gradient steps so far;
        total_timesteps: `num_timesteps` at the end of the current `learn` call (for `progress`).
    """

    Config: ClassVar[Type] = None  # set by subclasses

    def __init__(self, env, *, seed: Optional[int] = None, env_kwargs: Optional[Dict[str, Any]] = None,
                 **hyperparameters):
        self.config = build_config(self.Config, type(self).__name__, hyperparameters)
        self.seed = seed
        self.env_spec, self.env_kwargs = env, dict(env_kwargs or {})
        self.rng = seed_everything(seed)
        self.tf_rng = tf.random.Generator.from_seed(0 if seed is None else seed) if seed is not None \
            else tf.random.Generator.from_non_deterministic_state()
        self.num_timesteps = self.vector_steps = self.n_updates = self.total_timesteps = 0
        self.n_envs = int(getattr(self.config, "n_envs", 1))
        probe = self.make_env()
        self.observation_space: gym.Space = probe.observation_space
        self.action_space: gym.Space = probe.action_space
        self.check_spaces(self.observation_space, self.action_space)
        from tlrl.envs import check_env

        check_env(probe)
        self._probe_env = probe
        self._evaluation_env: Optional[gym.Env] = None
        self.episode_tracker = EpisodeTracker(self.n_envs)
        self.collector = Collector(self)
        self.store = None
        self.plan = CollectPlan(steps=1)
        self.build()

    # ----- extension points: construction ---------------------------------------------------
    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Raise TypeError naming the space if the algorithm cannot handle it."""

    def build(self) -> None:
        """Create networks and optimizers eagerly (nothing is created inside a compiled function), the compiled
        update, `self.plan` and, for replay agents, `self.store`."""
        raise NotImplementedError(f"{type(self).__name__} must implement build()")

    # ----- extension points: acting (tlrl.core.Actor) --------------------------------------
    def act_batch(self, obs: Observation, deterministic: bool) -> np.ndarray:
        """Actions for a batch of observations (leading batch dimension), as the env takes them."""
        raise NotImplementedError(f"{type(self).__name__} must implement act_batch(obs, deterministic)")

    def explore(self, obs: Observation) -> Tuple[np.ndarray, Extras]:
        """Behaviour actions for the training envs' current observations (one call for all envs), as the env
        takes them, and the extras `add` stores with them."""
        raise NotImplementedError(f"{type(self).__name__} must implement explore(obs)")

    def observe(self, obs: Observation) -> Observation:
        """New observations of the training envs as acting and storage see them (called once per observation;
        e.g. normalized, updating the statistics). Default: unchanged."""
        return obs

    def acting_variables(self) -> List[tf.Variable]:
        """The variables acting reads (what remote actors receive through `get_weights`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement acting_variables() to act remotely")

    def weights_changed(self) -> None:
        """Called after the acting variables changed outside `update` (a load, `set_weights`): refresh copies."""

    def constant_exploration(self, level: float) -> Dict[str, Any]:
        """Hyperparameters that make a copy of this agent explore at the constant `level` in [0, 1] (Ape-X gives
        each actor its own; DQN: epsilon). Default {}: the agent has no such level."""
        return {}

    def get_weights(self) -> List[np.ndarray]:
        """The acting variables' values, in `acting_variables` order."""
        return [v.numpy() for v in self.acting_variables()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Assign `weights` (in `acting_variables` order) to the acting variables."""
        variables = self.acting_variables()
        if len(weights) != len(variables):
            raise ValueError(f"set_weights got {len(weights)} arrays for {len(variables)} acting variables")
        for v, w in zip(variables, weights):
            v.assign(w)
        self.weights_changed()

    # ----- extension points: learning (tlrl.core.Learner) ----------------------------------
    def update(self, obs: Optional[Observation]) -> Metrics:
        """One training phase on the stored data; returns metrics as floats (every loss term).

        `obs` are the training envs' current observations (None when the envs are remote)."""
        raise NotImplementedError(f"{type(self).__name__} must implement update(obs)")

    def trackables(self) -> Dict[str, Any]:
        """TF objects saved in the checkpoint (networks, optimizers, counters)."""
        return {}

    def numpy_state(self) -> Dict[str, np.ndarray]:
        """Extra numpy state saved with the agent (normalizers, noise; the store saves itself)."""
        return {}

    def set_numpy_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what `numpy_state` returned."""

    # ----- extension points: the data path -----------------------------------------------
    def add(self, step: Transition, extras: Extras) -> None:
        """Store one collected vector step (`tlrl.core.Store`). Default: into `self.store`."""
        if self.store is None:
            raise NotImplementedError(f"{type(self).__name__} has no store: set self.store in build() or "
                                      f"implement add(step, extras)")
        self.store.add(step, extras)

    def cut_episodes(self) -> None:
        """End the running training episodes here (at a checkpoint): the envs are closed, the next step starts
        fresh ones seeded from `rng`, and the store marks the cut, so a run resumed here continues exactly."""
        self.collector.close()
        self.episode_tracker.returns[:] = 0
        self.episode_tracker.lengths[:] = 0
        if self.store is not None:
            self.store.cut()

    # ----- extension points: export ------------------------------------------------------------
    def policy_graph(self, obs) -> tf.Tensor:
        """The deterministic policy in TF, for export: `obs` a batch of raw observations in the dtypes of
        `tlrl.spaces.obs_signature`; returns actions as the env takes them. Reads only variables reachable from
        `trackables()`."""
        raise NotImplementedError(f"{type(self).__name__} must implement policy_graph(obs) to be exported")

    # ----- training -------------------------------------------------------------------------
    @property
    def progress(self) -> float:
        """Training progress in [0, 1] of the current `learn` call (SB3 convention: num_timesteps / total)."""
        return min(self.num_timesteps / max(self.total_timesteps, 1), 1.0)

    def learn(self, total_steps: int, callback: Optional[Callback] = None) -> "BaseAgent":
        """Train for `total_steps` more env steps (counted over all envs) in `tlrl.loop.train`.

        `callback(agent, info)` is called at every boundary of the loop (after each update; off-policy
        agents also every `train_freq` vector steps before `learning_starts`, with empty metrics), `info`
        holding `num_timesteps`, `metrics` (every loss term, `steps_per_second`), `episode_returns` (of
        episodes finished since the previous call), `progress` and `n_updates`; returning False stops.
        """
        from tlrl.loop import train

        return train(self, total_steps, callback)

    def worker_source(self, backend: Optional[str], **options: Any) -> Any:
        """The `tlrl.loop` source that trains this agent with workers of its own (A3C's gradient workers) on
        `backend` ("sync", "thread", "process", "ray"; None: the agent's default), with `tlrl.runner.Runner`
        options (`workers`, `max_worker_restarts`, `worker_timeout`, `ray_address`; an unknown one: TypeError).
        Default None: no workers of its own (a replay agent runs with Ape-X actors instead)."""
        return None

    def close(self) -> None:
        """Close the training envs (and stop workers an agent runs)."""
        self.collector.close()

    # ----- envs ---------------------------------------------------------------------------
    def make_env(self, render_mode: Optional[str] = None) -> gym.Env:
        """One env of the agent's spec (the instance itself when the agent was given one)."""
        from tlrl.envs import make_env

        if isinstance(self.env_spec, gym.Env):
            return self.env_spec
        return make_env(self.env_spec, self.env_kwargs, render_mode=render_mode)

    def make_vector_env(self, n_envs: int, seed: Optional[int], asynchronous: bool = False) -> gym.vector.VectorEnv:
        """`n_envs` envs of the agent's spec in one vector env (subprocesses with `asynchronous`)."""
        from tlrl.envs import make_vector_env

        if isinstance(self.env_spec, gym.Env):
            if n_envs != 1 or asynchronous:
                raise ValueError(
                    f"{type(self).__name__} needs {n_envs} envs{' in subprocesses' if asynchronous else ''} but was "
                    f"given one env instance; pass an env id, 'package.module:Class' or a factory callable instead "
                    f"so copies can be made."
                )
            return make_vector_env(lambda: self.env_spec, 1, seed=seed)
        return make_vector_env(self.env_spec, n_envs, seed=seed, kwargs=self.env_kwargs, asynchronous=asynchronous)

    def set_collector(self, collector: Collector) -> None:
        """Collect with `collector` from now on (e.g. envs in subprocesses); the current envs are closed."""
        self.collector.close()
        self.collector = collector

    # ----- acting -------------------------------------------------------------------------
    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Actions for one observation or a batch (leading dimension) of them.

        A single observation gives a single action; a batch gives a batch.
        """
        if is_single_obs(self.observation_space, obs):
            return self.act_batch(batch_of_one(obs), deterministic)[0]
        return self.act_batch(obs, deterministic)

    def evaluate(self, episodes: int = 10, deterministic: bool = True, seed: Optional[int] = None) -> Tuple[float, float]:
        """Mean and std of the undiscounted return over `episodes` full episodes on a separate env."""
        if episodes <= 0:
            raise ValueError(f"episodes must be positive, got {episodes}")
        env = self.evaluation_env()
        base = (seed if seed is not None else (self.seed or 0) + 10_000)
        returns = []
        for i in range(episodes):
            obs, _ = env.reset(seed=base + i)
            done, total = False, 0.0
            while not done:
                obs, reward, terminated, truncated, _ = env.step(to_env_action(self.action_space,
                                                                               self.act(obs, deterministic)))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns)), float(np.std(returns))

    def evaluation_env(self) -> gym.Env:
        """The separate env `evaluate` runs on (made once)."""
        if self._evaluation_env is None:
            if isinstance(self.env_spec, gym.Env):
                try:
                    self._evaluation_env = copy.deepcopy(self.env_spec)
                except Exception as exc:  # noqa: BLE001 - report what the user can do
                    raise ValueError(
                        "evaluate() needs a second copy of the env, and this env instance cannot be deep-copied "
                        f"({exc}). Pass an env id or factory instead of an instance."
                    ) from exc
            else:
                self._evaluation_env = self.make_env()
        return self._evaluation_env

    # ----- persistence ----------------------------------------------------
    def save_files(self, directory: str) -> None:
        """Write files beyond the checkpoint into a save directory. Default: the store's (the replay buffer)."""
        if self.store is not None:
            self.store.save(directory)

    def load_files(self, directory: str) -> None:
        """Read what `save_files` wrote."""
        if self.store is not None:
            self.store.load(directory)

    def _checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(tf_rng=self.tf_rng, **self.trackables())

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
                json.dump(meta, fh, indent=2, default=json_default)
            self._checkpoint().write(os.path.join(tmp, CKPT_PREFIX))
            state = dict(self.numpy_state())
            state["__counters__"] = np.array([self.vector_steps, self.n_updates, self.total_timesteps], np.int64)
            state["__rng__"] = np.array(json.dumps(self.rng.bit_generator.state))
            np.savez(os.path.join(tmp, STATE_FILE), **state)
            self.save_files(tmp)
            fsync_tree(tmp)  # every file and folder on disk before the new save takes the old one's place
            swap_in(tmp, path)
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
        if "__counters__" in state:
            self.vector_steps, self.n_updates, self.total_timesteps = (int(x) for x in state.pop("__counters__"))
        self.set_numpy_state(state)
        self.num_timesteps = int(meta["num_timesteps"])
        self.load_files(path)
        self.weights_changed()  # numpy copies of the networks act with the restored weights
