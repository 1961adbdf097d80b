"""tlrl's algorithms, found by name through one registry (used by the CLI and the contract tests).

>>> from tlrl.algorithms import REGISTRY
>>> sorted(REGISTRY)
['a3c', 'ddpg', 'dqn', 'ppo', 'td3']
"""
from __future__ import annotations

import difflib
import importlib
from typing import Dict, Type

#: name -> "module:Class" (imported lazily, so `import tlrl.algorithms` stays cheap).
REGISTRY: Dict[str, str] = {
    "ppo": "tlrl.algorithms.ppo:PPO",
    "dqn": "tlrl.algorithms.dqn:DQN",
    "ddpg": "tlrl.algorithms.ddpg:DDPG",
    "td3": "tlrl.algorithms.td3:TD3",
    "a3c": "tlrl.algorithms.a3c:A3C",
}


def get_algorithm(name: str) -> Type:
    """The agent class registered under `name` (case-insensitive)."""
    key = name.lower()
    if key not in REGISTRY:
        close = difflib.get_close_matches(key, REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown algorithm {name!r}.{hint} Available: {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[key].split(":")
    return getattr(importlib.import_module(module), cls)


def __getattr__(name: str):
    for key, target in REGISTRY.items():
        if target.endswith(":" + name):
            return get_algorithm(key)
    raise AttributeError(f"module 'tlrl.algorithms' has no attribute {name!r}")
