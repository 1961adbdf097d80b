"""tlrl: a thin, fast reinforcement-learning toolkit for TensorFlow 2.

Layers (`tlrl.layers`), modules (`tlrl.modules`: torsos and heads), buffers
(`tlrl.buffers`), environments (`tlrl.envs`) and algorithms (`tlrl.algorithms`).

`import tlrl` registers tlrl's environments with Gymnasium (numpy and gymnasium
only); the TensorFlow-based subpackages are imported on first use, so processes
that only need envs or buffers (e.g. env workers) do not pay for importing TF.
In a process started by the `tlrl` command (`TLRL_QUIET_TF=1`, see `tlrl.quiet_import`),
TensorFlow's start-up log stays off the terminal.
"""
import importlib as _importlib
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if _os.environ.get("TLRL_QUIET_TF") == "1":  # a worker of the `tlrl` command (it sets this unless --verbose)
    from tlrl.quiet_import import hide_tensorflow_startup_log as _hide

    _hide()

__version__ = "0.1.0"

from tlrl import envs  # noqa: E402,F401  (registers the tlrl/... env ids)
from tlrl.core import Agent, Batch, Transition  # noqa: E402

_LAZY = {"layers", "modules", "buffers", "algorithms", "runner"}

__all__ = ["layers", "modules", "buffers", "envs", "algorithms", "Agent", "Batch", "Transition", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return _importlib.import_module(f"tlrl.{name}")
    raise AttributeError(f"module 'tlrl' has no attribute {name!r}")
