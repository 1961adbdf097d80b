"""The one compiled-call path: a `tf.function` with a fixed input signature, called as its concrete function.

A `tf.function` call on a small network spends most of its time binding and matching the arguments
against the signature; the concrete function (public TF API) skips that search. `compile_fixed` traces
once, at construction, so a call never retraces: arguments of another shape or dtype raise. The
measurement that justifies it is `scripts/bench_compiled_call.py`.

>>> import numpy as np, tensorflow as tf
>>> add = compile_fixed(lambda x, y: x + y, [tf.TensorSpec([2]), tf.TensorSpec([2])])
>>> add(np.ones(2, np.float32), np.ones(2, np.float32)).numpy().tolist()
[2.0, 2.0]
"""
from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf


def compile_fixed(fn: Callable, input_signature: Sequence, *, jit_compile: bool = False,
                  autograph: bool = False) -> Callable:
    """`fn` compiled for exactly `input_signature` (a list of `tf.TensorSpec` nests): its concrete function."""
    function = tf.function(fn, input_signature=list(input_signature), jit_compile=jit_compile, autograph=autograph)
    return function.get_concrete_function()
