"""The one compiled-call path: a `tf.function` with a fixed input signature, traced once, called cheaply.

A `tf.function` call on a small network spends most of its time binding and matching the arguments
against the signature; its concrete function (public TF API) skips that search but still binds the
arguments. `compile_fixed` traces once, at construction, so a call never retraces, and returns:

- for `jit_compile=False`: a `FixedCall`, which checks the argument shapes itself (tuple compares) and
  runs the traced graph with the public op `tf.raw_ops.StatefulPartitionedCall`: about 2.5x cheaper
  per call than the concrete function on a 64-64 MLP, +27% env steps/s for 1-worker A3C
  (`scripts/bench_compiled_call.py` measures it);
- for `jit_compile=True`: the concrete function itself (the raw op would not honour XLA compilation).

>>> import numpy as np, tensorflow as tf
>>> add = compile_fixed(lambda x, y: x + y, [tf.TensorSpec([2]), tf.TensorSpec([2])])
>>> add(np.ones(2, np.float32), np.ones(2, np.float32)).numpy().tolist()
[2.0, 2.0]
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf


class FixedCall:
    """Call the graph of `concrete` (traced for a fixed signature) through `StatefulPartitionedCall`.

    Attributes:
        concrete: the concrete function (its graph, inputs and outputs).
    """

    def __init__(self, concrete, input_signature: Sequence):
        self.concrete = concrete
        self._specs = tf.nest.flatten(list(input_signature))
        self._shapes = [tuple(s.shape.as_list()) for s in self._specs]
        self._dtypes = [s.dtype for s in self._specs]
        self._captured = list(concrete.captured_inputs)
        self._tout = [t.dtype for t in concrete.outputs]
        self._structure = concrete.structured_outputs

    def __call__(self, *args):
        flat = tf.nest.flatten(list(args))
        if len(flat) != len(self._specs):
            raise ValueError(f"expected {len(self._specs)} arrays, got {len(flat)}")
        tensors = []
        for x, shape, dtype in zip(flat, self._shapes, self._dtypes):
            given = tuple(x.shape) if isinstance(x, tf.Tensor) else np.shape(x)
            if len(given) != len(shape) or any(d is not None and d != g for d, g in zip(shape, given)):
                raise ValueError(f"an argument has shape {given}, expected {shape}")
            tensors.append(x if isinstance(x, tf.Tensor) and x.dtype == dtype else tf.constant(x, dtype))
        out = tf.raw_ops.StatefulPartitionedCall(args=tensors + self._captured, Tout=self._tout, f=self.concrete)
        return tf.nest.pack_sequence_as(self._structure, out)


def compile_fixed(fn: Callable, input_signature: Sequence, *, jit_compile: bool = False,
                  autograph: bool = False) -> Callable:
    """`fn` traced once for exactly `input_signature` (a list of `tf.TensorSpec` nests), as a cheap callable."""
    function = tf.function(fn, input_signature=list(input_signature), jit_compile=jit_compile, autograph=autograph)
    concrete = function.get_concrete_function()
    return concrete if jit_compile else FixedCall(concrete, input_signature)
