"""One seed derives the numpy, TensorFlow and environment seeds."""
from __future__ import annotations

import random
from typing import Optional

import numpy as np
import tensorflow as tf


def seed_everything(seed: Optional[int], *, deterministic_ops: bool = False) -> np.random.Generator:
    """Seed Python, numpy and TF from `seed`; return a numpy Generator derived from it.

    With `deterministic_ops`, TF op determinism is enabled too (needed for bit-identical
    runs with some ops; costs a little speed).
    """
    if seed is None:
        return np.random.default_rng()
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    tf.random.set_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    return np.random.default_rng(seed)


def derive_seed(rng: np.random.Generator) -> int:
    """Draw a fresh 31-bit seed (e.g. for an env) from a Generator."""
    return int(rng.integers(0, 2**31 - 1))
