"""Run configuration files: load a YAML file, apply overrides, validate everything before anything runs.

A run config is a YAML mapping (read with `yaml.safe_load`: no code in a data file runs):

.. code-block:: yaml

    algo: ppo                      # a name of tlrl.algorithms.REGISTRY, or "package.module:Class" (an agent class)
    env:
      id: CartPole-v1              # a registered Gymnasium id, or "package.module:Class"
      kwargs: {}                   # passed to the env constructor
    hyperparameters:               # the algorithm's constructor arguments (its Config dataclass)
      learning_rate: 3.0e-4
    total_steps: 100000
    seed: 0
    eval: {episodes: 20, deterministic: true, eval_freq: 0}
    checkpoint: {every_steps: 10000, keep: 3}
    runner: {backend: null, workers: null}
    log: {interval: 1000, tensorboard: true, progress: true}

Hyperparameters live in their own `hyperparameters` section, so a typo in a run setting
and one in an algorithm setting give distinct messages. On the command line,
`--set key.path=value` sets any key; a bare name that is not a top-level key (e.g.
`--set learning_rate=1e-3`) means `hyperparameters.<name>`. Values are YAML scalars
(`1e-3` is a float, `[64, 64]` a list, `null` None).

Every error names the key, its line in the file (or "--set"), what was expected and
the close matches:

>>> text = "algo: ppo\\nenv: {id: CartPole-v1}\\ntotal_steps: 1000\\nchekpoint: {keep: 2}\\n"
>>> load_config_text(text, "run.yaml")
Traceback (most recent call last):
...
tlrl.config_schema.ConfigError: run.yaml, line 4: unknown key 'chekpoint'. Did you mean 'checkpoint'? Valid keys: algo, checkpoint, env, eval, hyperparameters, log, runner, seed, total_steps
"""
from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import math
import typing
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import yaml

from tlrl.config_schema import (SECTIONS, CheckpointConfig, ConfigError, EnvConfig, EvalConfig,  # noqa: F401
                                 LogConfig, Path, RunConfig, RunnerConfig, Places, plain, schema_doc)
from tlrl.hyperparams import describe, matches, build_config


# ----- where each key is: line numbers from yaml's node marks ---------------------------------------------
def _index_nodes(node, path: Path, places: Places) -> None:
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{places.source}, line {line}: key {'.'.join(path + (key,))!r} appears twice "
                                  f"(first on line {seen[key]}); keep one")
            seen[key] = line
            places.lines[path + (key,)] = line
            _index_nodes(value_node, path + (key,), places)


# ----- loading ------------------------------------------------------------------------------------------------
def parse_set(item: str) -> Tuple[Path, Any]:
    """Parse one `--set key.path=value` (value read as a YAML scalar or flow collection).

    >>> parse_set("env.kwargs.size=5")
    (('env', 'kwargs', 'size'), 5)
    >>> parse_set("learning_rate=1e-3")
    (('learning_rate',), 0.001)
    """
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set learning_rate=1e-3")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: the key must be a dotted path such as env.kwargs.size")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(value, str) and _looks_float(value):
        value = float(value)  # PyYAML reads 1e-3 (no dot) as a string; users mean a number
    return tuple(key.split(".")), value


def _looks_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def _fix_floats(value):
    """YAML 1.1 (PyYAML) reads `1e-3` as a string; turn such strings into floats."""
    if isinstance(value, dict):
        return {k: _fix_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_floats(v) for v in value]
    if isinstance(value, str) and _looks_float(value) and any(c in value for c in "eE"):
        return float(value)
    return value


def _apply_set(data: Dict[str, Any], path: Path, value: Any, places: Places) -> None:
    top = {f.name for f in dataclasses.fields(RunConfig)}
    if path[0] not in top:
        path = ("hyperparameters",) + path
    places.overridden.add(path)
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(path)}: {'.'.join(path[:i + 1])} is not a mapping "
                              f"(it is {child!r}), so it has no key {path[i + 1]!r}")
        node = child
    node[path[-1]] = value


def load_config(path: str, overrides: Sequence[str] = (), *, seed: Optional[int] = None,
                check_env: bool = True, check: bool = True) -> RunConfig:
    """Read, override and validate the run config in YAML file `path`.

    `overrides` are `key.path=value` strings (the CLI's `--set`); `seed`, if given, replaces
    `seed`. Raises `ConfigError` with the key, its line and the expected value on any problem.
    `check=False` stops after the YAML, the overrides and the sections' types (no TF imported yet):
    `check_config` does the rest.
    """
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    return load_config_text(text, path, overrides, seed=seed, check_env=check_env, check=check)


def load_config_text(text: str, source: str = "<config>", overrides: Sequence[str] = (), *,
                     seed: Optional[int] = None, check_env: bool = True, check: bool = True) -> RunConfig:
    """Like `load_config`, from YAML text; `source` names it in messages."""
    data, places = read_yaml(text, source)
    if data is None:
        raise ConfigError(f"{source}: the config is empty; it needs at least algo, env and total_steps")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys (algo, env, ...), "
                          f"not a {type(data).__name__}")
    for item in overrides:
        key, value = parse_set(item)
        _apply_set(data, key, value, places)
    if seed is not None:
        data["seed"] = seed
        places.overridden.add(("seed",))
    if isinstance(data.get("env"), str):  # shorthand: env: CartPole-v1
        data["env"] = {"id": data["env"]}
    config = _build(RunConfig, data, (), places)
    config.places = places
    return check_config(config, check_env=check_env) if check else config


def check_config(config: RunConfig, *, check_env: bool = True) -> RunConfig:
    """The checks of a parsed config that import the algorithm (TF) and make the env: `algo` resolved, the
    hyperparameters and runner section checked against it, the env id made. `load_config(..., check=False)`
    leaves them for this call, so `tlrl train` can start worker processes before TF is imported here."""
    _check_algorithm(config, config.places)
    if check_env:
        check_env_id(config.env.id, config.places)
    return config


def read_yaml(text: str, source: str) -> Tuple[Any, Places]:
    """(data, places) of YAML `text` read with `yaml.safe_load` (`1e-3` read as a float; `places` knows each
    key's line); ConfigError for text that is not YAML or a key given twice. Run configs and sweep files."""
    places = Places(source)
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}") from None
    _index_nodes(root, (), places)
    return _fix_floats(data), places


def build_section(cls, data: Any, path: Path, places: Places):
    """Dataclass `cls` built from mapping `data` with the checks of a config section (unknown keys with close
    matches, each field's type, min and max), errors naming `path` and its line; for other files (sweeps)."""
    return _build(cls, data, path, places)


def config_from_dict(data: Mapping[str, Any], source: str = "<config>", *, check_env: bool = True) -> RunConfig:
    """Validate an already-parsed config mapping (e.g. a run's `config.yaml`)."""
    return load_config_text(yaml.safe_dump(plain(dict(data)), sort_keys=False), source, check_env=check_env)


def _build(cls, data: Any, path: Path, places: Places):
    name = ".".join(path) or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise places.error(path, f"{name} must be a mapping of keys ({', '.join(f.name for f in dataclasses.fields(cls))}), "
                                 f"got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            where = f" in {name}" if path else ""
            raise places.error(path + (str(key),), f"unknown key {key!r}{where}.{hint} "
                                                   f"Valid keys: {', '.join(sorted(fields))}")
    values = {}
    for fname, f in fields.items():
        fpath = path + (fname,)
        if fname not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise places.error(path, f"missing required key {'.'.join(fpath)!r}: {f.metadata['doc']}")
            if fname in SECTIONS and path == ():
                values[fname] = _build(SECTIONS[fname], {}, fpath, places)
            continue
        value = data[fname]
        if fname in SECTIONS and path == ():
            values[fname] = _build(SECTIONS[fname], value, fpath, places)
            continue
        if not matches(value, hints[fname]):
            raise places.error(fpath, f"{'.'.join(fpath)} must be {_type_words(hints[fname])}, got {value!r}. "
                                      f"({f.metadata['doc']})")
        low = f.metadata.get("min")
        if low is not None and value is not None and value < low:
            raise places.error(fpath, f"{'.'.join(fpath)} must be >= {low}, got {value!r}. ({f.metadata['doc']})")
        high = f.metadata.get("max")
        if high is not None and value is not None and value > high:
            words = f.metadata.get("max_words", high)
            raise places.error(fpath, f"{'.'.join(fpath)} must be at most {words}, got {value!r}. ({f.metadata['doc']})")
        values[fname] = value
    return cls(**values)


def _type_words(hint) -> str:
    """Plain words for a type hint: 'an integer', 'a number or null', 'a list of integers'..."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    if hint in words:
        return words[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        parts = [_type_words(a) for a in args if a is not type(None)] + (["null"] if type(None) in args else [])
        return " or ".join(parts)
    if origin in (dict, typing.Dict) or hint is dict:
        return "a mapping"
    if origin in (tuple, list, collections.abc.Sequence):
        inner = [a for a in args if a is not Ellipsis]
        item = _type_words(inner[0]).replace("an ", "").replace("a ", "") if inner else "value"
        return f"a list of {item}s"
    if origin is collections.abc.Callable:
        return "a function (not possible in a YAML file)"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return describe(hint)


# ----- cross checks: algorithm, hyperparameters, runner, env ---------------------------------------------------
def _check_algorithm(config: RunConfig, places: Places) -> None:
    """Resolve `algo` (a registered name, or 'package.module:Class' naming a `tlrl.agent.BaseAgent` subclass:
    `tlrl.algorithms.get_algorithm`, the same code that builds the agent) and check the hyperparameters."""
    from tlrl.algorithms import REGISTRY, AlgorithmSpecError, get_algorithm

    if ":" not in config.algo:
        if config.algo.lower() not in REGISTRY:
            close = difflib.get_close_matches(config.algo.lower(), REGISTRY, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise places.error(("algo",), f"unknown algorithm {config.algo!r}.{hint} Available: "
                                          f"{', '.join(sorted(REGISTRY))}, or 'package.module:Class' naming your own "
                                          f"agent class (a subclass of tlrl.agent.BaseAgent)")
        config.algo = config.algo.lower()
    try:
        cls = get_algorithm(config.algo)
    except AlgorithmSpecError as exc:
        raise places.error(("algo",), f"algo: {exc}") from None
    except ImportError as exc:
        raise places.error(("algo",), f"algorithm {config.algo!r} is registered but cannot be imported ({exc})") from None
    _apply_runner(config, cls, places)
    hyper = config.hyperparameters
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    hints = typing.get_type_hints(cls.Config)
    for key, value in hyper.items():
        kpath = ("hyperparameters", str(key))
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise places.error(kpath, f"{cls.__name__} has no hyperparameter {key!r}.{hint} "
                                      f"Valid: {', '.join(sorted(fields))}")
        hint = hints[key]
        if not matches(value, hint):
            raise places.error(kpath, f"{cls.__name__} hyperparameter {key!r} must be {_type_words(hint)}, "
                                      f"got {value!r}")
    try:
        build_config(cls.Config, cls.__name__, dict(hyper))
    except (TypeError, ValueError) as exc:
        named = [k for k in hyper if repr(k) in str(exc) or str(k) in str(exc)]
        path = ("hyperparameters", named[0]) if named else ("hyperparameters",)
        raise places.error(path, f"{exc}") from None


def _apply_runner(config: RunConfig, cls, places: Places) -> None:
    """Check the runner section against what `cls` can run (`tlrl.runner.Runner.from_config` builds the runner):
    an agent with workers of its own (A3C: it overrides `worker_source`) takes `runner.workers` as its
    `n_workers` hyperparameter; a replay agent (its Config an `OffPolicyConfig`: dqn, ddpg, td3) runs Ape-X
    actors with a backend other than 'sync' or more than one worker; any agent runs its own loop otherwise."""
    from tlrl.agent import BaseAgent
    from tlrl.off_policy import OffPolicyConfig

    runner, hyper, name = config.runner, config.hyperparameters, cls.__name__
    values = dataclasses.asdict(runner)

    def fail(key: str, message: str) -> ConfigError:
        return places.error(("runner", key), message)

    own = cls.worker_source is not BaseAgent.worker_source
    actors = not own and issubclass(cls.Config, OffPolicyConfig)
    with_workers = own or (actors and (runner.backend not in (None, "sync") or (runner.workers or 1) > 1))
    how = ("its own workers" if own else "Ape-X actors") if with_workers else "its own loop, without workers"
    if not own and not actors:
        if runner.workers is not None:
            raise fail("workers", f"runner.workers is not supported by {name}: it has no workers (a3c has gradient "
                                  f"workers; dqn, ddpg, td3 train with Ape-X actors); remove it, or use "
                                  f"hyperparameters.n_envs for parallel envs")
        if runner.backend not in (None, "sync"):
            raise fail("backend", f"runner.backend {runner.backend!r} is not supported by {name}: it runs its vector "
                                  f"env synchronously in its own loop; use 'sync' or null (and runner.async_envs: true "
                                  f"to step its envs in subprocesses)")
    if runner.async_envs and with_workers:
        raise fail("async_envs", f"runner.async_envs applies to an algorithm's own loop, but {name} trains with {how} "
                                 f"here (runner.backend {runner.backend!r}, runner.workers {runner.workers}); remove it")
    apex = [k for k in ("block_steps", "pull_every", "exploration") if values[k] is not None]
    if apex and not (actors and with_workers):
        raise fail(apex[0], f"runner.{apex[0]} is an Ape-X option (dqn, ddpg, td3 with runner.backend 'thread', "
                            f"'process' or 'ray', or runner.workers > 1), but {name} trains with {how} here; remove it")
    for key in ("max_worker_restarts", "worker_timeout", "ray_address"):
        if values[key] is not None and not with_workers:
            raise fail(key, f"runner.{key} applies to workers, but {name} trains with {how} here (runner.backend "
                            f"{runner.backend!r}, runner.workers {runner.workers}); remove it")
    timeout = runner.worker_timeout
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise fail("worker_timeout", f"runner.worker_timeout must be a positive number of seconds, got {timeout!r} "
                                     f"(null: the default)")
    if runner.ray_address is not None and runner.backend != "ray":
        raise fail("ray_address", f"runner.ray_address applies to runner.backend 'ray', got backend "
                                  f"{runner.backend!r}; set runner.backend: ray or remove it")
    if not own:
        return
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    if runner.workers is not None and "n_workers" in fields:  # built with that many workers
        if "n_workers" in hyper and hyper["n_workers"] != runner.workers:
            raise fail("workers", f"runner.workers={runner.workers} contradicts hyperparameters.n_workers="
                                  f"{hyper['n_workers']}; set one")
        hyper["n_workers"] = runner.workers
    for key in ("backend", "max_worker_restarts", "worker_timeout", "ray_address"):  # the runner's, per run
        if values[key] is not None and key in hyper and hyper[key] != values[key]:
            raise fail(key, f"runner.{key}={values[key]!r} contradicts hyperparameters.{key}={hyper[key]!r}; set one")


def check_env_id(env_id: str, places: Optional[Places] = None) -> None:
    """Fail with close matches unless `env_id` is a registered id or 'package.module:Class' naming a
    gymnasium.Env subclass; the check is `tlrl.envs.resolve_env_id`, the same code that builds the env."""
    from tlrl.envs import EnvSpecError, resolve_env_id

    places = places or Places("<config>")
    try:
        resolve_env_id(env_id)
    except EnvSpecError as exc:
        raise places.error(("env", "id"), f"env.id: {exc}") from None


def dump_config(config: RunConfig, path: str) -> None:
    """Write the resolved config as YAML, atomically and durably (a run cannot resume without it)."""
    from tlrl.durable import write_text

    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
