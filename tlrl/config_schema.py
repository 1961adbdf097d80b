"""What a run config holds: its sections as dataclasses (one docstring line per field, used by
`schema_doc` for `--help`), and `ConfigError`, whose messages name where a key was set.

Loading, overrides and validation are in `tlrl.config`.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tlrl.step_limits import MAX_STEPS, MAX_STEPS_WORDS

Path = Tuple[str, ...]


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the key, its place and the fix."""


class _Places:
    """Maps key paths to 'FILE, line N' (or '--set' for overridden keys)."""

    def __init__(self, source: str):
        self.source = source
        self.lines: Dict[Path, int] = {}
        self.overridden: set = set()

    def where(self, path: Path) -> str:
        for n in range(len(path), 0, -1):
            if path[:n] in self.overridden:
                return f"--set {'.'.join(path[:n])}"
            if path[:n] in self.lines:
                return f"{self.source}, line {self.lines[path[:n]]}"
        return self.source

    def error(self, path: Path, message: str) -> ConfigError:
        return ConfigError(f"{self.where(path)}: {message}")


# ----- the schema: dataclasses, one docstring line (metadata "doc") per field ------------------------------
def _f(default: Any = dataclasses.MISSING, doc: str = "", **kw) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata={"doc": doc, **kw})
    return field(default=default, metadata={"doc": doc, **kw})


@dataclass
class EnvConfig:
    id: str = _f(doc="A registered Gymnasium id (tlrl's are 'tlrl/...') or 'package.module:Class'.")
    kwargs: Dict[str, Any] = _f({}, doc="Keyword arguments for the env constructor.")


@dataclass
class EvalConfig:
    episodes: int = _f(20, doc="Episodes of the final evaluation (and of periodic ones).", min=1)
    deterministic: bool = _f(True, doc="Evaluate the deterministic policy (mode / greedy action).")
    eval_freq: int = _f(0, doc="Evaluate every this many env steps during training (0: only at the end).", min=0)


@dataclass
class CheckpointConfig:
    every_steps: Optional[int] = _f(None, doc="Checkpoint every this many env steps (null: a tenth of total_steps); "
                                              "rounded up to a multiple of the algorithm's update granularity.", min=1)
    keep: int = _f(3, doc="How many checkpoints to keep (the newest).", min=1)


@dataclass
class RunnerConfig:
    backend: Optional[str] = _f(None, doc="How envs are driven: null (the algorithm's default) or 'sync'; "
                                          "A3C: 'thread' (or 'sync' with 1 worker).")
    workers: Optional[int] = _f(None, doc="Number of workers, for algorithms that have them (A3C's n_workers).", min=1)


@dataclass
class LogConfig:
    interval: int = _f(1000, doc="Write a metrics row every this many env steps.", min=1)
    tensorboard: bool = _f(True, doc="Also write TensorBoard event files (tf.summary) under tb/.")
    progress: bool = _f(True, doc="Show a progress bar (tqdm) on stderr.")


@dataclass
class RunConfig:
    algo: str = _f(doc="Algorithm name, one of tlrl.algorithms.REGISTRY (ppo, dqn, ddpg, td3, a3c).")
    env: EnvConfig = _f(doc="The environment: id and kwargs.")
    total_steps: int = _f(doc="Environment steps to train for.", min=1, max=MAX_STEPS,
                          max_words=MAX_STEPS_WORDS)
    hyperparameters: Dict[str, Any] = _f({}, doc="The algorithm's constructor arguments (see its Config).")
    seed: Optional[int] = _f(0, doc="Seed of numpy, TF and the envs (null: not seeded, not reproducible).", min=0)
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"doc": "Evaluation settings."})
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"doc": "Checkpoint settings."})
    runner: RunnerConfig = field(default_factory=RunnerConfig, metadata={"doc": "Runner settings (validated against what the algorithm supports)."})
    log: LogConfig = field(default_factory=LogConfig, metadata={"doc": "Logging settings."})

    def to_dict(self) -> Dict[str, Any]:
        """The config as plain YAML-able data (what `config.yaml` of a run holds)."""
        return _plain(dataclasses.asdict(self))

    def error(self, path: Sequence[str], message: str) -> "ConfigError":
        """A ConfigError for key `path` that names where the key was set (file line or --set)."""
        places = getattr(self, "_places", None) or _Places("<config>")
        return places.error(tuple(path), message)


_SECTIONS = {"env": EnvConfig, "eval": EvalConfig, "checkpoint": CheckpointConfig, "runner": RunnerConfig,
             "log": LogConfig}


def _plain(value):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def schema_doc() -> List[str]:
    """One line per key of the run config: its path, default and meaning (for `--help` and docs)."""
    lines = []
    for f in dataclasses.fields(RunConfig):
        if f.name in _SECTIONS:
            lines.append(f"{f.name}: {f.metadata['doc']}")
            for g in dataclasses.fields(_SECTIONS[f.name]):
                default = "required" if g.default is dataclasses.MISSING and g.default_factory is dataclasses.MISSING \
                    else repr(g.default if g.default is not dataclasses.MISSING else g.default_factory())
                lines.append(f"  {f.name}.{g.name} ({default}): {g.metadata['doc']}")
        else:
            default = "required" if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING \
                else repr(f.default if f.default is not dataclasses.MISSING else f.default_factory())
            lines.append(f"{f.name} ({default}): {f.metadata['doc']}")
    return lines
