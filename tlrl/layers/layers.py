"""The thin layer set: each layer's call is a few plain TF ops, nothing more."""
from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tlrl.layers import activations as _act
from tlrl.layers import initializers as _init
from tlrl.layers.base import Layer
from tlrl.layers.keras_interop import as_module as _wrap_keras  # Keras 3 variables are invisible to tf.Module


def _positive_int(value, what: str) -> int:
    """`value` as a Python int if it is a positive integer (numpy integers included), else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class Dense(Layer):
    """Fully connected layer `y = activation(x @ w + b)`.

    Args:
        units: output size.
        activation: name (e.g. "relu", "tanh") or callable; None for linear.
        use_bias: add the bias `b`.
        w_init: kernel initializer (name or `(shape, dtype) -> tensor`); Glorot uniform by default.
        b_init: bias initializer; zeros by default.
        input_size: if given, the variables are created now instead of on the first call.

    >>> import tensorflow as tf
    >>> layer = Dense(3, activation="relu")
    >>> layer(tf.ones([2, 4])).shape
    TensorShape([2, 3])
    >>> [v.name for v in layer.trainable_variables]
    ['dense/b:0', 'dense/w:0']
    """

    def __init__(self, units: int, activation=None, *, use_bias: bool = True, w_init=None, b_init=None,
                 input_size: Optional[int] = None, name: Optional[str] = None):
        super().__init__(name=name)
        self.units = _positive_int(units, "Dense units")
        self.activation = _act.get(activation)
        self.use_bias = use_bias
        self.w_init = _init.get(w_init, "glorot_uniform")
        self.b_init = _init.get(b_init, "zeros")
        if input_size is not None:
            self.build([None, _positive_int(input_size, "Dense input_size")])

    def _build(self, input_shape):
        if input_shape.rank is None or input_shape.rank < 2:
            raise ValueError(f"Dense '{self.name}' expects inputs of shape [batch, ..., features], got {input_shape}")
        in_size = input_shape[-1]
        if in_size is None:
            raise ValueError(f"Dense '{self.name}' needs a known last input dimension, got shape {input_shape}")
        self.input_size = int(in_size)
        self.w = tf.Variable(self.w_init([self.input_size, self.units], tf.float32), name="w")
        if self.use_bias:
            self.b = tf.Variable(self.b_init([self.units], tf.float32), name="b")

    def _forward(self, x):
        if x.shape[-1] is not None and x.shape[-1] != self.input_size:
            raise ValueError(
                f"Dense '{self.name}' was built for inputs with last dimension {self.input_size}, got shape {x.shape}"
            )
        y = tf.matmul(x, self.w)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.b)
        return y if self.activation is None else self.activation(y)


class Conv2D(Layer):
    """2-D convolution over NHWC inputs, `activation(conv(x, w) + b)`.

    >>> import tensorflow as tf
    >>> Conv2D(8, 3, strides=2)(tf.ones([1, 9, 9, 4])).shape
    TensorShape([1, 4, 4, 8])
    """

    def __init__(self, filters: int, kernel_size: Union[int, Sequence[int]], strides: Union[int, Sequence[int]] = 1,
                 padding: str = "VALID", activation=None, *, use_bias: bool = True, w_init=None, b_init=None,
                 name: Optional[str] = None):
        super().__init__(name=name or "conv2d")
        self.filters = _positive_int(filters, "Conv2D filters")
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, numbers.Integral) else tuple(kernel_size)
        if len(ks) != 2 or (not isinstance(strides, numbers.Integral) and len(tuple(strides)) != 2):
            raise ValueError(f"Conv2D kernel_size and strides must be an int or a pair, got {kernel_size!r}, {strides!r}")
        self.kernel_size = tuple(_positive_int(k, "Conv2D kernel_size") for k in ks)
        st = (strides, strides) if isinstance(strides, numbers.Integral) else tuple(strides)
        self.strides = tuple(_positive_int(s, "Conv2D strides") for s in st)
        if not isinstance(padding, str) or padding.upper() not in ("VALID", "SAME"):
            raise ValueError(f"Conv2D padding must be 'VALID' or 'SAME', got {padding!r}")
        self.padding = padding.upper()
        self.activation = _act.get(activation)
        self.use_bias = use_bias
        self.w_init = _init.get(w_init, "glorot_uniform")
        self.b_init = _init.get(b_init, "zeros")

    def _build(self, input_shape):
        if input_shape.rank != 4 or input_shape[-1] is None:
            raise ValueError(f"Conv2D '{self.name}' expects NHWC inputs of rank 4 with known channels, got {input_shape}")
        self.in_channels = int(input_shape[-1])
        shape = [*self.kernel_size, self.in_channels, self.filters]
        self.w = tf.Variable(self.w_init(shape, tf.float32), name="w")
        if self.use_bias:
            self.b = tf.Variable(self.b_init([self.filters], tf.float32), name="b")

    def _forward(self, x):
        if x.shape.rank not in (None, 4) or (x.shape.rank == 4 and x.shape[-1] not in (None, self.in_channels)):
            raise ValueError(f"Conv2D '{self.name}' was built for NHWC inputs with {self.in_channels} channels, "
                             f"got shape {x.shape}")
        y = tf.nn.conv2d(x, self.w, strides=self.strides, padding=self.padding)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.b)
        return y if self.activation is None else self.activation(y)


class Flatten(Layer):
    """Flatten all but the batch dimension (keeps the static size when known)."""

    def _has_weights(self) -> bool:
        return False

    def _forward(self, x):
        tail = tf.TensorShape(x.shape)[1:]
        size = math.prod(tail) if tail.is_fully_defined() else -1
        return tf.reshape(x, [-1, size])


class LayerNorm(Layer):
    """Layer normalization over the last axis (Ba et al., 2016)."""

    def __init__(self, eps: float = 1e-5, *, scale: bool = True, center: bool = True, name: Optional[str] = None):
        super().__init__(name=name)
        self.eps, self.scale, self.center = float(eps), scale, center

    def _has_weights(self) -> bool:
        return self.scale or self.center

    def _build(self, input_shape):
        size = input_shape[-1]
        if size is None:
            raise ValueError(f"LayerNorm '{self.name}' needs a known last dimension, got {input_shape}")
        self.size = int(size)
        if self.scale:
            self.gamma = tf.Variable(tf.ones([size]), name="gamma")
        if self.center:
            self.beta = tf.Variable(tf.zeros([size]), name="beta")

    def _forward(self, x):
        if x.shape.rank is not None and x.shape[-1] is not None and x.shape[-1] != self.size:
            raise ValueError(f"LayerNorm '{self.name}' was built for last dimension {self.size}, got shape {x.shape}")
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        y = (x - mean) * tf.math.rsqrt(var + self.eps)
        if self.scale:
            y = y * self.gamma
        if self.center:
            y = y + self.beta
        return y


class Lambda(Layer):
    """Wrap a function of tensors as a layer (no weights): `Lambda(lambda x: x / 255.)`."""

    def __init__(self, fn: Callable, name: Optional[str] = None):
        if not callable(fn):
            raise TypeError(f"Lambda needs a callable, got {type(fn).__name__}")
        super().__init__(name=name)
        self.fn = fn

    def _has_weights(self) -> bool:
        return False

    def _forward(self, x):
        return self.fn(x)


class Sequential(Layer):
    """Apply layers (any callables, tlrl modules or Keras layers) in order.

    Keras 3 layers are wrapped (`tlrl.layers.KerasModule`) so that their weights appear in
    `trainable_variables` and in checkpoints like any tlrl layer's.

    >>> import tensorflow as tf
    >>> net = Sequential([Dense(64, "tanh"), Dense(64, "tanh"), Dense(2)])
    >>> net(tf.zeros([5, 4])).shape
    TensorShape([5, 2])
    >>> len(net.trainable_variables)
    6
    """

    def __init__(self, layers: Sequence[Callable], name: Optional[str] = None):
        super().__init__(name=name)
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"Sequential item {i} is a {type(layer).__name__}, not a callable layer")
        self.layers = [_wrap_keras(layer) for layer in layers]

    def _has_weights(self) -> bool:
        return any(not isinstance(layer, Layer) or layer._has_weights() for layer in self.layers)

    def build(self, input_shape) -> None:
        if not self._built:
            with tf.name_scope(self.name):
                x = tf.zeros([1 if d is None else d for d in tf.TensorShape(input_shape)])
                for layer in self.layers:
                    x = layer(x)
            self._built = True

    def __call__(self, x):
        if not self._built:
            with tf.name_scope(self.name):
                for layer in self.layers:
                    x = layer(x)
            self._built = True
            return x
        return self._forward(x)

    def _forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
