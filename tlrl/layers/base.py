"""`Layer`: a `tf.Module` with a lazy build, Sonnet-style.

Settings go in `__init__`; variables are created once, on the first call,
from the input shape (`_build`); `__call__` then is plain TF ops (`_forward`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf


class Layer(tf.Module):
    """Base class of tlrl layers. Subclasses implement `_build` and `_forward`."""

    def __init__(self, name: Optional[str] = None):
        super().__init__(name=name)
        self._built = False

    @property
    def built(self) -> bool:
        return self._built

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """Create the variables for inputs of `input_shape` (batch dim included)."""
        if not self._built:
            with tf.name_scope(self.name):  # a fresh scope, so names nest: "mlp/dense_0/w"
                self._build(tf.TensorShape(input_shape))
            self._built = True

    def __call__(self, x):
        if not self._built:
            self.build(x.shape)
        return self._forward(x)

    def _build(self, input_shape: tf.TensorShape) -> None:
        """Create variables; layers without weights keep this no-op."""
        return None  # a body besides the docstring, so AutoGraph can convert overrides-free subclasses

    def _forward(self, x):
        raise NotImplementedError

    def _check_built(self) -> None:
        if not self._built and self._has_weights():
            raise RuntimeError(
                f"{type(self).__name__} '{self.name}' has no variables yet: they are created on the first call. "
                f"Call it once on an input (or pass input_size=... / call .build(shape)) before reading its variables."
            )

    def _has_weights(self) -> bool:
        return True

    @property
    def trainable_variables(self):
        self._check_built()
        return super().trainable_variables

    @property
    def variables(self):
        self._check_built()
        return super().variables
