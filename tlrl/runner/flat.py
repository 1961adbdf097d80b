"""One flat float32 vector for a list of weight (or gradient) arrays.

A compiled call's cost on small networks is mostly per argument (conversion and signature
matching), so weights and gradients cross the `tf.function` boundary as a single vector
and are split back into per-variable arrays (views, no copies) on either side.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import tensorflow as tf


class FlatLayout:
    """Shapes of a list of float32 variables and how they pack into one vector.

    >>> import numpy as np
    >>> layout = FlatLayout([(2, 2), (3,)])
    >>> flat = layout.pack([np.ones((2, 2), np.float32), np.zeros(3, np.float32)])
    >>> flat.shape, [a.shape for a in layout.unpack(flat)]
    ((7,), [(2, 2), (3,)])
    """

    def __init__(self, shapes: Sequence[Sequence[int]]):
        self.shapes = [tuple(int(d) for d in s) for s in shapes]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.size = int(sum(self.sizes))
        self._bounds = np.cumsum(self.sizes)[:-1].tolist()

    @classmethod
    def of(cls, variables: Sequence[tf.Variable]) -> "FlatLayout":
        for v in variables:
            if v.dtype != tf.float32:
                raise TypeError(f"FlatLayout packs float32 variables only; {v.name} is {v.dtype.name}")
        return cls([v.shape.as_list() for v in variables])

    def spec(self) -> tf.TensorSpec:
        return tf.TensorSpec([self.size], tf.float32)

    def pack(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        if len(arrays) != len(self.shapes):
            raise ValueError(f"expected {len(self.shapes)} arrays, got {len(arrays)}")
        return np.concatenate([np.asarray(a, np.float32).reshape(-1) for a in arrays])

    def unpack(self, flat: np.ndarray) -> List[np.ndarray]:
        return [part.reshape(shape) for part, shape in zip(np.split(flat, self._bounds), self.shapes)]

    def pack_tf(self, tensors: Sequence[tf.Tensor]) -> tf.Tensor:
        return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)

    def unpack_tf(self, flat: tf.Tensor) -> List[tf.Tensor]:
        return [tf.reshape(part, shape) for part, shape in zip(tf.split(flat, self.sizes), self.shapes)]
