"""What a run config holds: its sections as dataclasses (one docstring line per field, used by
`schema_doc` for `--help`), and `ConfigError`, whose messages name where a key was set.

Loading, overrides and validation are in `tlrl.config`.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Literal, Optional, Sequence, Tuple

from tlrl.step_limits import MAX_STEPS, MAX_STEPS_WORDS

Path = Tuple[str, ...]


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the key, its place and the fix."""


class Places:
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
    """`tlrl.runner.Runner.from_config` builds the runner of a run from this section; `tlrl.config` checks it
    against what the algorithm can run."""

    backend: Optional[Literal["sync", "thread", "process", "ray"]] = _f(
        None, doc="Where workers run: 'sync' (in turn, in this process), 'thread', 'process' or 'ray'; null: the "
                  "algorithm's own loop (A3C: its hyperparameter backend). dqn/ddpg/td3 with 'thread', 'process', "
                  "'ray' or runner.workers > 1 train with Ape-X actors.")
    workers: Optional[int] = _f(None, doc="Number of workers: A3C's gradient workers (its n_workers), or Ape-X actors "
                                          "for dqn/ddpg/td3 (null: 1).", min=1)
    async_envs: bool = _f(False, doc="The algorithm's own loop (no workers) with each of its n_envs envs stepped in "
                                     "a subprocess.")
    block_steps: Optional[int] = _f(None, doc="Ape-X: vector steps an actor collects per block it sends to the "
                                              "learner (null: 32).", min=1)
    pull_every: Optional[int] = _f(None, doc="Ape-X: env steps an actor runs between two pulls of the learner's "
                                             "weights (null: 400).", min=0)
    exploration: Optional[Literal["apex", "agent"]] = _f(
        None, doc="Ape-X: 'apex' (a constant epsilon per actor, 0.4 ** (1 + 7 i / (N - 1)), for dqn) or 'agent' "
                  "(the algorithm's own exploration schedule in every actor); null: 'apex'.")
    max_worker_restarts: Optional[int] = _f(None, doc="Worker restarts allowed per run before a failure stops "
                                                      "training (null: 3, or A3C's hyperparameter).", min=0)
    worker_timeout: Optional[float] = _f(None, doc="Seconds a worker may take for one call before it is stopped and "
                                                   "restarted (null: 60, or A3C's hyperparameter).")
    ray_address: Optional[str] = _f(None, doc="backend 'ray': the address of a running cluster ('auto', "
                                              "'host:6379'); null: a local Ray.")


@dataclass
class LogConfig:
    interval: int = _f(1000, doc="Write a metrics row every this many env steps.", min=1)
    tensorboard: bool = _f(True, doc="Also write TensorBoard event files (tf.summary) under tb/.")
    progress: bool = _f(True, doc="Show a progress bar (tqdm) on stderr.")


@dataclass
class RunConfig:
    algo: str = _f(doc="Algorithm name, one of tlrl.algorithms.REGISTRY (ppo, dqn, ddpg, td3, a3c), or "
                          "'package.module:Class' naming your own agent class (a tlrl.agent.BaseAgent subclass).")
    env: EnvConfig = _f(doc="The environment: id and kwargs.")
    total_steps: int = _f(doc="Environment steps to train for.", min=1, max=MAX_STEPS,
                          max_words=MAX_STEPS_WORDS)
    hyperparameters: Dict[str, Any] = _f({}, doc="The algorithm's constructor arguments (see its Config).")
    seed: Optional[int] = _f(0, doc="Seed of numpy, TF and the envs (null: not seeded, not reproducible).", min=0)
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"doc": "Evaluation settings."})
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"doc": "Checkpoint settings."})
    runner: RunnerConfig = field(default_factory=RunnerConfig, metadata={"doc": "Runner settings (validated against what the algorithm supports)."})
    log: LogConfig = field(default_factory=LogConfig, metadata={"doc": "Logging settings."})
    #: where each key was set (file line or --set), for error messages; not part of the config's data.
    #: (a class default, set on each loaded config: not a config key).
    places: ClassVar[Optional[Places]] = None

    def to_dict(self) -> Dict[str, Any]:
        """The config as plain YAML-able data (what `config.yaml` of a run holds)."""
        return plain(dataclasses.asdict(self))

    def error(self, path: Sequence[str], message: str) -> "ConfigError":
        """A ConfigError for key `path` that names where the key was set (file line or --set)."""
        places = self.places or Places("<config>")
        return places.error(tuple(path), message)


SECTIONS = {"env": EnvConfig, "eval": EvalConfig, "checkpoint": CheckpointConfig, "runner": RunnerConfig,
             "log": LogConfig}


def plain(value):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def schema_doc() -> List[str]:
    """One line per key of the run config: its path, default and meaning (for `--help` and docs)."""
    lines = []
    for f in dataclasses.fields(RunConfig):
        if f.name in SECTIONS:
            lines.append(f"{f.name}: {f.metadata['doc']}")
            for g in dataclasses.fields(SECTIONS[f.name]):
                default = "required" if g.default is dataclasses.MISSING and g.default_factory is dataclasses.MISSING \
                    else repr(g.default if g.default is not dataclasses.MISSING else g.default_factory())
                lines.append(f"  {f.name}.{g.name} ({default}): {g.metadata['doc']}")
        else:
            default = "required" if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING \
                else repr(f.default if f.default is not dataclasses.MISSING else f.default_factory())
            lines.append(f"{f.name} ({default}): {f.metadata['doc']}")
    return lines
