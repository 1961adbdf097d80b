"""`FixedFunction`: a `tf.function` with a fixed input signature, called at the lowest cost.

A `tf.function` call with an `input_signature` spends most of its time on a small network
binding and checking the arguments against the signature (measured here, TF 2.21 on this
2-core CPU under load: about 1 ms per call with four array arguments, against 0.15 ms
through the concrete function's flat entry point). The signature is fixed, so this wrapper
traces once, checks shapes and dtypes itself (cheap tuple compares), and calls the concrete
function's flat entry; where that private entry is missing (another TF version) it falls back
to the ordinary call. It never retraces: arguments of another shape raise a ValueError.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf


class FixedFunction:
    """Compile `fn` for exactly `input_signature` (a list of `tf.TensorSpec` nests) and call it cheaply.

    >>> import numpy as np, tensorflow as tf
    >>> add = FixedFunction(lambda x, y: x + y, [tf.TensorSpec([2]), tf.TensorSpec([2])])
    >>> add(np.ones(2, np.float32), np.ones(2, np.float32)).numpy().tolist()
    [2.0, 2.0]
    """

    def __init__(self, fn: Callable, input_signature: Sequence, *, jit_compile: bool = False):
        self.function = tf.function(fn, input_signature=list(input_signature), jit_compile=jit_compile)
        self.concrete = self.function.get_concrete_function()
        self._specs = tf.nest.flatten(list(input_signature))
        self._shapes = [tuple(s.shape.as_list()) for s in self._specs]
        self._dtypes = [s.dtype.as_numpy_dtype for s in self._specs]
        self._call_flat = getattr(self.concrete, "_call_flat", None)
        self._captured = self.concrete.captured_inputs if self._call_flat is not None else None

    @property
    def tracing_count(self) -> int:
        return self.function.experimental_get_tracing_count()

    def __call__(self, *args):
        flat = tf.nest.flatten(list(args))
        if len(flat) != len(self._specs):
            raise ValueError(f"expected {len(self._specs)} arrays, got {len(flat)}")
        tensors = []
        for x, shape, dtype, spec in zip(flat, self._shapes, self._dtypes, self._specs):
            if tuple(np.shape(x)) != shape:
                raise ValueError(f"argument {spec.name!r} has shape {tuple(np.shape(x))}, expected {shape}")
            tensors.append(x if isinstance(x, tf.Tensor) and x.dtype == spec.dtype else tf.constant(x, dtype))
        if self._call_flat is None:
            return self.function(*tf.nest.pack_sequence_as(list(args), tensors))
        return self._call_flat(tensors, self._captured)
