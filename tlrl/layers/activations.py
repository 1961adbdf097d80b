"""Activations by name or callable."""
from __future__ import annotations

import difflib
from typing import Callable, Optional, Union

import tensorflow as tf

Activation = Callable[[tf.Tensor], tf.Tensor]

ACTIVATIONS = {
    "linear": None,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "elu": tf.nn.elu,
    "gelu": tf.nn.gelu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "softplus": tf.nn.softplus,
    "leaky_relu": tf.nn.leaky_relu,
}


def get(spec: Union[str, Activation, None]) -> Optional[Activation]:
    """Resolve an activation; None or "linear" means identity (returns None)."""
    if spec is None:
        return None
    if callable(spec):
        return spec
    if isinstance(spec, str) and spec in ACTIVATIONS:
        return ACTIVATIONS[spec]
    close = difflib.get_close_matches(str(spec), ACTIVATIONS, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown activation {spec!r}. Use one of {sorted(ACTIVATIONS)} or a callable.{hint}")


def name_of(fn: Optional[Activation]) -> Optional[str]:
    """The registered name of an activation function, or None if it has none."""
    if fn is None:
        return "linear"
    for name, f in ACTIVATIONS.items():
        if f is fn:
            return name
    return None
