"""Target networks: the slow copy of a network's variables used for bootstrapped targets (DDPG, TD3, SAC).

>>> import tensorflow as tf
>>> target, source = tf.Variable([0.0, 4.0]), tf.Variable([1.0, 0.0])
>>> polyak_update([target], [source], 0.25)
>>> target.numpy().tolist()
[0.25, 3.0]
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def polyak_update(targets: Sequence[tf.Variable], sources: Sequence[tf.Variable], tau: float) -> None:
    """theta' <- (1 - tau) theta' + tau theta, for each pair of variables (eager or inside a tf.function)."""
    for t, s in zip(targets, sources):
        t.assign(t + tau * (s - t))
