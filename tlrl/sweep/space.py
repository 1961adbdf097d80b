"""The search space of a sweep: one distribution per swept config key, checked before anything runs.

`search_space` in a sweep file maps a config key (a dotted path, as `tlrl train --set` takes it: a
bare name that is not a top-level key means `hyperparameters.NAME`) to a distribution:

.. code-block:: yaml

    learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-3}
    gae_lambda: {type: uniform, low: 0.8, high: 0.99}           # step: optional spacing
    n_epochs: {type: int, low: 4, high: 20}                     # step (1), log (false)
    net_arch: {type: categorical, choices: [[64, 64], [256, 256]]}

`suggest` asks an Optuna trial for a value (the sampler chooses it); `set_items` turns the values
into the `--set` items a trial's config is loaded with (`tlrl.config.parse_set` reads them back).

>>> from tlrl.config_schema import Places
>>> space = parse_space({"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}, Places("sweep.yaml"))
>>> probe_values(space["lr"])
[0.0001, 0.001]
>>> set_items({"lr": 0.0003, "net_arch": [64, 64]})
['lr=0.0003', 'net_arch=[64, 64]']
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from tlrl.config import build_section
from tlrl.config_schema import ConfigError, Places, RunConfig


def _doc(default: Any = dataclasses.MISSING, doc: str = "", **meta) -> Any:
    return field(default=default, metadata={"doc": doc, **meta})


@dataclass
class LogUniform:
    """A float drawn on a log scale (learning rates)."""
    low: float = _doc(doc="Smallest value (> 0).")
    high: float = _doc(doc="Largest value.")


@dataclass
class Uniform:
    """A float drawn uniformly."""
    low: float = _doc(doc="Smallest value.")
    high: float = _doc(doc="Largest value.")
    step: Optional[float] = _doc(None, doc="Spacing of the values (null: any float in [low, high]).")


@dataclass
class IntRange:
    """An integer in [low, high]."""
    low: int = _doc(doc="Smallest value.")
    high: int = _doc(doc="Largest value.")
    step: int = _doc(1, doc="Spacing of the values.", min=1)
    log: bool = _doc(False, doc="Draw on a log scale (low >= 1).")


@dataclass
class Categorical:
    """One of a list of values (any YAML data: numbers, strings, lists such as a net_arch)."""
    choices: List[Any] = _doc(doc="The values to choose from.")

    def encoded(self) -> List[Any]:
        """The choices as Optuna stores them: scalars as they are; if any choice is a list or a mapping,
        every choice as its JSON text (Optuna's categorical values are scalars)."""
        return [json.dumps(c) for c in self.choices] if self.structured() else list(self.choices)

    def structured(self) -> bool:
        return any(isinstance(c, (list, dict)) for c in self.choices)

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.structured() else value


Param = Union[LogUniform, Uniform, IntRange, Categorical]
KINDS = {"loguniform": LogUniform, "uniform": Uniform, "int": IntRange, "categorical": Categorical}


def full_key(key: str) -> str:
    """The dotted config path a search-space key sets (`tlrl train --set`'s rule for bare names)."""
    top = {f.name for f in dataclasses.fields(RunConfig)}
    return key if key.split(".")[0] in top else f"hyperparameters.{key}"


def parse_space(data: Any, places: Places, section: str = "search_space") -> Dict[str, Param]:
    """Each entry of the `search_space` mapping `data` as a checked distribution (ConfigError naming the key,
    its line and the fix otherwise)."""
    if not isinstance(data, dict) or not data:
        raise places.error((section,), f"{section} must be a non-empty mapping of config keys to distributions, "
                                       f"e.g. {section}: {{learning_rate: {{type: loguniform, low: 1.0e-5, "
                                       f"high: 1.0e-3}}}}")
    space: Dict[str, Param] = {}
    seen: Dict[str, str] = {}
    for key, spec in data.items():
        path = (section, str(key))
        name = f"{section}.{key}"
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise places.error(path, f"{name}: a key must be a config key such as learning_rate or env.kwargs.size")
        if full_key(key) == "seed":
            raise places.error(path, f"{name}: seeds are not sampled; list them under `seeds:` (each trial runs "
                                     f"every seed)")
        if full_key(key) in seen:
            raise places.error(path, f"{name} sets {full_key(key)}, as {section}.{seen[full_key(key)]} does; "
                                     f"keep one")
        seen[full_key(key)] = key
        if not isinstance(spec, dict) or "type" not in spec:
            raise places.error(path, f"{name} must be a mapping with a type ({', '.join(KINDS)}), e.g. "
                                     f"{{type: uniform, low: 0.8, high: 0.99}}; got {spec!r}")
        kind = spec["type"]
        if kind not in KINDS:
            close = difflib.get_close_matches(str(kind), KINDS, n=2)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise places.error(path + ("type",), f"{name}.type {kind!r} is not a distribution.{hint} "
                                                 f"Valid: {', '.join(KINDS)}")
        rest = {k: v for k, v in spec.items() if k != "type"}
        param = build_section(KINDS[kind], rest, path, places)
        _check(param, name, path, places)
        space[key] = param
    return space


def _check(param: Param, name: str, path, places: Places) -> None:
    """Bounds that make sense: finite, low < high, a positive low on a log scale, a step that fits."""
    def fail(message: str) -> ConfigError:
        return places.error(path, f"{name}: {message}")

    if isinstance(param, Categorical):
        if not isinstance(param.choices, list) or not param.choices:
            raise fail("choices is empty; list at least one value, e.g. choices: [64, 128]")
        texts = [json.dumps(c, sort_keys=True) for c in param.choices]
        twice = sorted({t for t in texts if texts.count(t) > 1})
        if twice:
            raise fail(f"choices lists {', '.join(twice)} more than once; list each value once")
        if any(isinstance(c, float) and not math.isfinite(c) for c in param.choices):
            raise fail("choices must be finite numbers (NaN and infinity are never valid)")
        return
    low, high = param.low, param.high
    if not (math.isfinite(low) and math.isfinite(high)):
        raise fail(f"low and high must be finite numbers, got low {low!r}, high {high!r}")
    if low >= high:
        raise fail(f"low ({low!r}) must be below high ({high!r}); swap them, or set one value under overrides "
                   f"instead of sweeping it")
    if isinstance(param, LogUniform) and low <= 0:
        raise fail(f"a log scale needs low > 0, got {low!r}; use type: uniform for a range that includes 0")
    if isinstance(param, IntRange):
        if param.log and low < 1:
            raise fail(f"log: true needs low >= 1, got {low!r}")
        if param.log and param.step != 1:
            raise fail("log: true takes no step (Optuna draws every integer on a log scale); remove step")
        if (high - low) % param.step:
            raise fail(f"high - low ({high - low}) is not a multiple of step ({param.step}); make high "
                       f"{low + (high - low) // param.step * param.step}")
    if isinstance(param, Uniform) and param.step is not None:
        count = (high - low) / param.step
        if not (math.isfinite(param.step) and param.step > 0):
            raise fail(f"step must be a positive number, got {param.step!r}")
        if abs(count - round(count)) > 1e-9 * max(1.0, count):
            raise fail(f"high - low ({high - low!r}) is not a multiple of step ({param.step!r}); make high "
                       f"{low + math.floor(count) * param.step!r}")


def probe_values(param: Param) -> List[Any]:
    """The values that must each fit the base config: both ends of a range, every choice."""
    if isinstance(param, Categorical):
        return list(param.choices)
    if isinstance(param, IntRange):
        return [param.low, param.high]
    return [float(param.low), float(param.high)]  # a float range gives floats, also when written as 1 and 3


def grid_values(param: Param) -> Optional[List[Any]]:
    """The values of `param` for the grid sampler (as Optuna stores them), or None for a continuous range."""
    if isinstance(param, Categorical):
        return param.encoded()
    if isinstance(param, IntRange) and not param.log:
        return list(range(param.low, param.high + 1, param.step))
    if isinstance(param, Uniform) and param.step is not None:
        count = int(round((param.high - param.low) / param.step))
        return [param.low + i * param.step for i in range(count + 1)]
    return None


def suggest(trial, name: str, param: Param) -> Any:
    """The value of `name` for Optuna `trial` (sampled, or the one it already has: a retried trial)."""
    if isinstance(param, LogUniform):
        return trial.suggest_float(name, param.low, param.high, log=True)
    if isinstance(param, Uniform):
        return trial.suggest_float(name, param.low, param.high, step=param.step)
    if isinstance(param, IntRange):
        return trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
    return param.decode(trial.suggest_categorical(name, param.encoded()))


def decoded(space: Dict[str, Param], params: Dict[str, Any]) -> Dict[str, Any]:
    """A trial's stored params as config values (structured choices back from their JSON text)."""
    return {k: space[k].decode(v) if isinstance(space.get(k), Categorical) else v for k, v in params.items()}


def set_items(values: Dict[str, Any]) -> List[str]:
    """`--set` items for `values` (JSON text is YAML, so `tlrl.config.parse_set` reads each value back)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def to_dict(param: Param) -> Dict[str, Any]:
    """The distribution as sweep-file data (`type` first), for the sweep directory's sweep.yaml."""
    kind = next(k for k, cls in KINDS.items() if isinstance(param, cls))
    return {"type": kind, **dataclasses.asdict(param)}
