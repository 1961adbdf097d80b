"""The one compiled-call path: a `tf.function` with a fixed input signature, traced once, called cheaply.

A `tf.function` call on a small network spends most of its time binding and matching the arguments
against the signature; its concrete function (public TF API) skips that search but still binds the
arguments. `compile_fixed` traces once, at construction, so a call never retraces, and returns:

- for `jit_compile=False`: a `FixedCall`, which checks the argument shapes itself (tuple compares) and
  runs the traced graph with the public op `tf.raw_ops.StatefulPartitionedCall`: 0.73x the time of a
  concrete-function call for a PPO-sized acting function (356 vs 490 us, `scripts/bench_compiled_call.py`),
  +27% env steps/s for 1-worker A3C;
- for `jit_compile=True`: an `XlaCall`, which converts numpy arguments with `tf.constant` and calls the
  concrete function (the raw op would not honour XLA compilation);
- for a non-XLA function whose outputs are not all tensors: the concrete function itself.

A `FixedCall` binds the graph's captured inputs (the variables it reads) once, at construction: fine for
`tf.Variable`s, which keep their handle; it does not support composite tensors (ragged, sparse) as arguments.

>>> import numpy as np, tensorflow as tf
>>> add = compile_fixed(lambda x, y: x + y, [tf.TensorSpec([2]), tf.TensorSpec([2])])
>>> add(np.ones(2, np.float32), np.ones(2, np.float32)).numpy().tolist()
[2.0, 2.0]
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import tensorflow as tf


class CompiledCall:
    """What `compile_fixed` returns (but for a non-XLA function with non-tensor outputs): `fn` traced once.

    Attributes:
        concrete: the concrete function (its graph, inputs and outputs).
    """

    def __init__(self, concrete, input_signature: Sequence):
        self.concrete = concrete
        self._specs = tf.nest.flatten(list(input_signature))
        self._dtypes = [s.dtype for s in self._specs]

    def _tensors(self, args, shapes: Optional[Sequence[tuple]] = None) -> List[tf.Tensor]:
        """The flat arguments as tensors of the signature's dtypes (numpy arrays converted with `tf.constant`),
        their shapes checked against `shapes` if given."""
        flat = tf.nest.flatten(list(args))
        if len(flat) != len(self._specs):
            raise ValueError(f"expected {len(self._specs)} arrays, got {len(flat)}")
        tensors = []
        for i, (x, dtype) in enumerate(zip(flat, self._dtypes)):
            if shapes is not None:
                given, shape = (tuple(x.shape) if isinstance(x, tf.Tensor) else np.shape(x)), shapes[i]
                if len(given) != len(shape) or any(d is not None and d != g for d, g in zip(shape, given)):
                    raise ValueError(f"an argument has shape {given}, expected {shape}")
            tensors.append(x if isinstance(x, tf.Tensor) and x.dtype == dtype else tf.constant(x, dtype))
        return tensors


class FixedCall(CompiledCall):
    """Call the graph of `concrete` (traced for a fixed signature) through `StatefulPartitionedCall`."""

    def __init__(self, concrete, input_signature: Sequence):
        super().__init__(concrete, input_signature)
        self._shapes = [tuple(s.shape.as_list()) for s in self._specs]
        self._captured = list(concrete.captured_inputs)
        self._tout = [t.dtype for t in concrete.outputs]
        self._structure = concrete.structured_outputs

    def __call__(self, *args):
        tensors = self._tensors(args, self._shapes)
        out = tf.raw_ops.StatefulPartitionedCall(args=tensors + self._captured, Tout=self._tout, f=self.concrete)
        return tf.nest.pack_sequence_as(self._structure, out)


class XlaCall(CompiledCall):
    """Call an XLA-compiled concrete function, its numpy arguments converted with `tf.constant` first (the concrete
    function's own conversion is slower: a SAC update at [8, 8] nets, 7 arrays, 1099 -> 935 us per call); the
    concrete function binds them and checks their shapes."""

    def __init__(self, concrete, input_signature: Sequence):
        super().__init__(concrete, input_signature)
        self._structure = list(input_signature)

    def __call__(self, *args):
        return self.concrete(*tf.nest.pack_sequence_as(self._structure, self._tensors(args)))


def compile_fixed(fn: Callable, input_signature: Sequence, *, jit_compile: bool = False,
                  autograph: bool = False) -> Callable:
    """`fn` traced once for exactly `input_signature` (a list of `tf.TensorSpec` nests), as a cheap callable."""
    function = tf.function(fn, input_signature=list(input_signature), jit_compile=jit_compile, autograph=autograph)
    concrete = function.get_concrete_function()
    outputs = tf.nest.flatten(concrete.structured_outputs)
    plain_tensors = bool(concrete.outputs) and len(outputs) == len(concrete.outputs) and \
        all(isinstance(o, tf.Tensor) for o in outputs)
    if jit_compile:
        return XlaCall(concrete, input_signature)
    return FixedCall(concrete, input_signature) if plain_tensors else concrete
