"""tlrl: a thin, fast reinforcement-learning toolkit for TensorFlow 2.

Layers (`tlrl.layers`), modules (`tlrl.modules`: torsos and heads), buffers
(`tlrl.buffers`), environments (`tlrl.envs`) and algorithms (`tlrl.algorithms`).
"""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from tlrl import layers, modules  # noqa: E402
from tlrl.core import Agent, Batch, Transition  # noqa: E402

__all__ = ["layers", "modules", "Agent", "Batch", "Transition", "__version__"]
