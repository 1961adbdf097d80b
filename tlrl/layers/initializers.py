"""Weight initializers: callables `(shape, dtype) -> tf.Tensor`.

They draw from TF's global random state, so `tf.random.set_seed` makes them
reproducible.
"""
from __future__ import annotations

import difflib
import math
from typing import Callable, Sequence, Union

import tensorflow as tf

Initializer = Callable[[Sequence[int], tf.DType], tf.Tensor]


def _fans(shape: Sequence[int]) -> tuple[int, int]:
    """Fan-in and fan-out of a dense ([in, out]) or conv ([h, w, in, out]) kernel."""
    shape = [int(s) for s in shape]
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def zeros() -> Initializer:
    """All zeros (the usual bias initializer)."""
    return lambda shape, dtype=tf.float32: tf.zeros(shape, dtype)


def constant(value: float) -> Initializer:
    """Every entry equal to `value`."""
    return lambda shape, dtype=tf.float32: tf.fill(shape, tf.cast(value, dtype))


def glorot_uniform() -> Initializer:
    """Uniform in +-sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""

    def init(shape, dtype=tf.float32):
        fan_in, fan_out = _fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return tf.random.uniform(shape, -limit, limit, dtype)

    return init


def he_uniform() -> Initializer:
    """Uniform in +-sqrt(6 / fan_in) (He et al., 2015), for ReLU networks."""

    def init(shape, dtype=tf.float32):
        fan_in, _ = _fans(shape)
        limit = math.sqrt(6.0 / fan_in)
        return tf.random.uniform(shape, -limit, limit, dtype)

    return init


def orthogonal(gain: float = 1.0) -> Initializer:
    """(Semi-)orthogonal matrix times `gain` (Saxe et al., 2014), as in PPO.

    Conv kernels are treated as a matrix of shape [h*w*in, out].
    """

    def init(shape, dtype=tf.float32):
        shape = [int(s) for s in shape]
        if len(shape) < 2:
            raise ValueError(f"orthogonal init needs a kernel of rank >= 2, got shape {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = tf.random.normal([max(rows, cols), min(rows, cols)], dtype=tf.float32)
        q, r = tf.linalg.qr(a)
        q = q * tf.sign(tf.linalg.diag_part(r))  # make the decomposition unique
        if rows < cols:
            q = tf.transpose(q)
        return tf.cast(gain * tf.reshape(q, shape), dtype)

    return init


_BY_NAME = {
    "zeros": zeros,
    "glorot_uniform": glorot_uniform,
    "he_uniform": he_uniform,
    "orthogonal": orthogonal,
}


def get(spec: Union[str, Initializer, None], default: Union[str, Initializer] = "glorot_uniform") -> Initializer:
    """Resolve an initializer from a name, a callable or None (the default)."""
    if spec is None:
        spec = default
    if callable(spec):
        return spec
    if isinstance(spec, str) and spec in _BY_NAME:
        return _BY_NAME[spec]()
    close = difflib.get_close_matches(str(spec), _BY_NAME, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown initializer {spec!r}. Use one of {sorted(_BY_NAME)} or a callable (shape, dtype) -> tensor.{hint}"
    )
