"""A sweep file: the config to tune, the search space over its keys, the seeds of each trial, the objective,
the budget, the sampler, the pruner and the failure handling, validated before anything runs.

.. code-block:: yaml

    name: ppo_cartpole                 # the study's name (default: the file name without .yaml)
    base: ppo_cartpole.yaml            # any tlrl config, relative to this file (or `config:` inline)
    overrides: {total_steps: 20000, eval.eval_freq: 5000}   # --set items of every trial
    search_space:                      # config keys (tlrl.sweep.space) -> distributions
      learning_rate: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
    seeds: [0, 1]                      # or a count (3: seeds 0, 1, 2); default: the config's seed
    objective: {metric: final, aggregate: mean}   # final | best periodic eval; mean | worst over seeds
    budget: {n_trials: 20, timeout: null}         # finished (complete or pruned) trials; seconds
    sampler: {type: tpe}               # tpe | random | grid; seed
    pruner: {type: median}             # median | threshold | none
    failures: {heartbeat_interval: 10, grace_period: 60, max_retry: 2}

The errors are those of `tlrl.config` (the file, the line, the key, the fix); each value of the search
space (both ends of a range, every choice) is loaded into the base config with `tlrl.config`'s own
checks, so an unknown key or a wrong type is named before any trial runs. Read with `yaml.safe_load`:
data, never code.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

import yaml

from tlrl.config import build_section, load_config_text, read_yaml
from tlrl.config_schema import ConfigError, Places, RunConfig
from tlrl.sweep.space import Param, full_key, grid_values, parse_space, probe_values, set_items, to_dict


class SweepError(ConfigError):
    """A sweep file, sweep directory or sweep command that cannot be used; the message names the fix."""


def _doc(default: Any = dataclasses.MISSING, doc: str = "", **meta) -> Any:
    return field(default=default, metadata={"doc": doc, **meta})


@dataclass
class Objective:
    metric: Literal["final", "best"] = _doc("final", doc="final: each run's final evaluation; best: its best "
                                                          "evaluation (periodic ones and the final one).")
    aggregate: Literal["mean", "worst"] = _doc("mean", doc="Over a trial's seeds: their mean, or the worst seed "
                                                           "(settings that learn on every seed).")


@dataclass
class Budget:
    n_trials: Optional[int] = _doc(None, doc="Stop when this many trials have finished (complete or pruned), "
                                             "counted over every process of the study.", min=1)
    timeout: Optional[float] = _doc(None, doc="Stop starting trials after this many seconds (per process).")
    max_failed: int = _doc(10, doc="Stop when this many trials have failed with an error.", min=1)


@dataclass
class Sampler:
    type: Literal["tpe", "random", "grid"] = _doc("tpe", doc="Optuna's TPE, random search, or every combination "
                                                             "of a finite space.")
    seed: Optional[int] = _doc(None, doc="Seed of the sampler (worker i of a process that starts on a study of k "
                                         "trials uses seed + i + 1000 k).", min=0)
    n_startup_trials: Optional[int] = _doc(None, doc="tpe: random trials before TPE models the results "
                                                     "(null: Optuna's 10).", min=0)


@dataclass
class Pruner:
    type: Literal["median", "threshold", "none"] = _doc("median", doc="Stop a trial whose evaluation is below "
                                                                      "the median of earlier trials at that "
                                                                      "step, or outside [lower, upper].")
    n_startup_trials: int = _doc(5, doc="median: trials that finish before any is pruned.", min=0)
    n_warmup_steps: int = _doc(0, doc="Evaluations before this step (env steps) never prune.", min=0)
    lower: Optional[float] = _doc(None, doc="threshold: prune an evaluation below this.")
    upper: Optional[float] = _doc(None, doc="threshold: prune an evaluation above this.")


@dataclass
class Failures:
    heartbeat_interval: int = _doc(10, doc="Seconds between a running trial's heartbeats in the storage.", min=1)
    grace_period: Optional[int] = _doc(None, doc="A trial without a heartbeat for this long (its worker died) is "
                                                 "marked failed and queued again (null: 6 heartbeats).", min=1)
    max_retry: int = _doc(2, doc="How many times a trial whose worker died runs again.", min=0)

    @property
    def grace(self) -> int:
        return self.grace_period or 6 * self.heartbeat_interval


SECTIONS = {"objective": Objective, "budget": Budget, "sampler": Sampler, "pruner": Pruner, "failures": Failures}
KEYS = ("name", "base", "config", "overrides", "search_space", "seeds", *SECTIONS)


@dataclass
class SweepSpec:
    """A validated sweep file (`load_sweep`)."""
    name: str
    source: str
    base_text: str  # the base config's text (the sweep directory keeps it as base.yaml)
    base_source: str
    overrides: Dict[str, Any]
    search_space: Dict[str, Param]
    seeds: List[int]
    objective: Objective
    budget: Budget
    sampler: Sampler
    pruner: Pruner
    failures: Failures
    base_config: RunConfig  # the base config with the overrides, validated

    def trial_sets(self, values: Dict[str, Any]) -> List[str]:
        """The --set items of a trial: the sweep's overrides, then the trial's values."""
        return set_items(self.overrides) + set_items(values)

    def grid(self) -> Optional[Dict[str, List[Any]]]:
        """The grid sampler's search space (every parameter finite), or None for another sampler."""
        if self.sampler.type != "grid":
            return None
        return {k: grid_values(p) for k, p in self.search_space.items()}

    def to_dict(self) -> Dict[str, Any]:
        """The sweep as data, its base config named base.yaml (the sweep directory's sweep.yaml)."""
        return {"name": self.name, "base": "base.yaml", "overrides": dict(self.overrides),
                "search_space": {k: to_dict(p) for k, p in self.search_space.items()}, "seeds": list(self.seeds),
                **{name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}}

    def fingerprint(self) -> str:
        """What processes joining one study must agree on: the sweep and the config it resolves to."""
        return json.dumps({"sweep": self.to_dict(), "config": self.base_config.to_dict()}, sort_keys=True)


def load_sweep(path: str) -> SweepSpec:
    """Read and validate the sweep file `path` (SweepError naming the key, its line and the fix)."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as exc:
        raise SweepError(f"cannot read sweep file {path}: {exc.strerror}") from None
    try:
        return _validated(text, path)
    except SweepError:
        raise
    except ConfigError as exc:  # from the checks shared with tlrl.config
        raise SweepError(str(exc)) from None


def _validated(text: str, path: str) -> SweepSpec:
    data, places = read_yaml(text, path)
    if not isinstance(data, dict) or not data:
        raise SweepError(f"{path}: a sweep file is a mapping with at least `base` (a tlrl config) and "
                         f"`search_space`; see docs/sweeps.md")
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise _error(places, (str(key),), f"unknown key {key!r}.{hint} Valid keys: {', '.join(KEYS)}")
    name = _name(data, path, places)
    base_text, base_source = _base(data, path, places)
    overrides = _overrides(data.get("overrides"), places)
    where = ("overrides",) if overrides else ("base" if "base" in data else "config",)
    base_config = _load(base_text, base_source, set_items(overrides), places, where,
                        "the base config with the overrides" if overrides else "the base config")
    sections = {k: build_section(cls, data.get(k), (k,), places) for k, cls in SECTIONS.items()}
    space = parse_space(data.get("search_space"), places)
    for key in space:
        if full_key(key) in {full_key(k) for k in overrides}:
            raise _error(places, ("search_space", key), f"search_space.{key} is also set under overrides; keep one")
    spec = SweepSpec(name, path, base_text, base_source, overrides, space, _seeds(data, base_config, places),
                     base_config=base_config, **sections)
    _check_sections(spec, places)
    for key, param in space.items():
        _probe(spec, key, param, places)
    return spec


def _error(places: Places, path: Tuple[str, ...], message: str) -> SweepError:
    return SweepError(places.error(path, message).args[0])


def _name(data: Dict[str, Any], path: str, places: Places) -> str:
    name = data.get("name", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise _error(places, ("name",), f"name must be letters, digits, '.', '_' or '-' (the study's name), "
                                        f"got {name!r}")
    return name


def _base(data: Dict[str, Any], path: str, places: Places) -> Tuple[str, str]:
    """(text, source name) of the config the sweep tunes: the file `base` names or the inline `config`."""
    if ("base" in data) == ("config" in data):
        raise _error(places, (), "a sweep needs exactly one of `base: CONFIG.yaml` (a tlrl config file, relative "
                                 "to the sweep file) and `config:` (the config written inline)")
    if "config" in data:
        if not isinstance(data["config"], dict):
            raise _error(places, ("config",), "config must be a mapping: a tlrl config written inline")
        return yaml.safe_dump(data["config"], sort_keys=False), f"{path} (its config section)"
    base = data["base"]
    if not isinstance(base, str) or not base:
        raise _error(places, ("base",), f"base must be the path of a tlrl config file, got {base!r}")
    full = os.path.join(os.path.dirname(os.path.abspath(path)), base)
    try:
        with open(full) as fh:
            return fh.read(), full
    except OSError as exc:
        raise _error(places, ("base",), f"cannot read the base config {full}: {exc.strerror} (base is relative "
                                        f"to the sweep file)") from None


def _overrides(value: Any, places: Places) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise _error(places, ("overrides",), "overrides must be a mapping of config keys to values, e.g. "
                                             "overrides: {total_steps: 20000, eval.eval_freq: 5000}")
    return dict(value)


def _load(text: str, source: str, items: Sequence[str], places: Places, path: Tuple[str, ...], what: str
          ) -> RunConfig:
    try:
        return load_config_text(text, source, items)
    except ConfigError as exc:
        raise _error(places, path, f"{what}: {exc}") from None


def _seeds(data: Dict[str, Any], base: RunConfig, places: Places) -> List[int]:
    seeds = data.get("seeds", [base.seed if base.seed is not None else 0])
    if type(seeds) is int and seeds >= 1:
        return list(range(seeds))
    ok = isinstance(seeds, list) and seeds and all(type(s) is int and s >= 0 for s in seeds)
    if not ok or len(set(seeds)) != len(seeds):
        raise _error(places, ("seeds",), f"seeds must be a count (3: seeds 0, 1, 2) or a list of distinct seeds "
                                         f">= 0 such as [0, 1, 2], got {seeds!r}")
    return list(seeds)


def _check_sections(spec: SweepSpec, places: Places) -> None:
    """What the sections must agree on with each other and with the base config."""
    budget, sampler, pruner, failures = spec.budget, spec.sampler, spec.pruner, spec.failures
    if budget.timeout is not None and not (math.isfinite(budget.timeout) and budget.timeout > 0):
        raise _error(places, ("budget", "timeout"), f"budget.timeout must be a positive number of seconds, got "
                                                    f"{budget.timeout!r}")
    grid = spec.grid()
    if grid is not None:
        for key, values in grid.items():
            if values is None:
                raise _error(places, ("search_space", key), f"sampler grid needs a finite set of values for every "
                                                            f"key: give search_space.{key} a step, or make it "
                                                            f"{{type: categorical, choices: [...]}}")
        if budget.n_trials is None:
            budget.n_trials = math.prod(len(v) for v in grid.values())
    if budget.n_trials is None and budget.timeout is None:
        raise _error(places, ("budget",), "budget needs n_trials or timeout (or both), e.g. budget: {n_trials: 20}")
    if sampler.n_startup_trials is not None and sampler.type != "tpe":
        raise _error(places, ("sampler", "n_startup_trials"), f"sampler.n_startup_trials applies to tpe, not "
                                                              f"{sampler.type}; remove it")
    if pruner.type == "threshold" and pruner.lower is None and pruner.upper is None:
        raise _error(places, ("pruner",), "pruner threshold needs lower or upper (or both), e.g. "
                                          "pruner: {type: threshold, lower: 100, n_warmup_steps: 20000}")
    if pruner.type != "threshold" and (pruner.lower is not None or pruner.upper is not None):
        raise _error(places, ("pruner",), f"pruner.lower and pruner.upper apply to type threshold, not "
                                          f"{pruner.type}; remove them")
    if spec.objective.metric == "best" and not spec.base_config.eval.eval_freq:
        raise _error(places, ("objective", "metric"), "objective.metric best takes the best periodic evaluation, "
                                                      "but the config has eval.eval_freq 0 (none); set it under "
                                                      "overrides (eval.eval_freq: 5000) or use metric: final")
    if failures.grace_period is not None and failures.grace_period <= failures.heartbeat_interval:
        raise _error(places, ("failures", "grace_period"), f"failures.grace_period ({failures.grace_period}) must "
                                                           f"exceed heartbeat_interval ({failures.heartbeat_interval}"
                                                           f"): a live trial beats once per interval")


def _probe(spec: SweepSpec, key: str, param: Param, places: Places) -> None:
    """Load every value of `param` into the base config with tlrl.config's checks. A value that fails alone is
    tried again with each other swept key at each of its values (a limit such as PPO's batch_size <= n_steps *
    n_envs involves two keys); it is refused only if no such pair fits."""
    others = [(k, v) for k, p in spec.search_space.items() if k != key for v in probe_values(p)]
    for value in probe_values(param):
        problem = _fits(spec, {key: value})
        if problem is None or any(_fits(spec, {key: value, k: v}) is None for k, v in others):
            continue
        problem = re.sub(r"^--set [^:]+: ", "", problem)
        if "must be an integer" in problem and isinstance(value, float):
            problem += " (an integer key takes {type: int, low: ..., high: ...})"
        raise _error(places, ("search_space", key), f"search_space.{key}: the value {value!r} does not fit the "
                                                    f"config {spec.base_source}: {problem}")


def _fits(spec: SweepSpec, values: Dict[str, Any]) -> Optional[str]:
    """None if the base config with the overrides and `values` is valid, else the problem."""
    try:
        load_config_text(spec.base_text, spec.base_source, spec.trial_sets(values))
    except ConfigError as exc:
        return str(exc)
    return None
