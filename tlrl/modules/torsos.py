"""Torsos: networks that turn an observation into a feature vector.

`make_torso(space)` picks one from the observation space: flat Box -> MLP,
image Box (H, W, C) -> Nature CNN, Discrete -> one-hot + MLP,
Dict -> one torso per key, concatenated. Users may pass their own torso: any
tlrl module, `tf.Module` or Keras model (wrapped by `as_module`).
"""
from __future__ import annotations

import math
import re
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.layers import Conv2D, Dense, Flatten, Lambda, Sequential
from tlrl.layers import initializers as init
from tlrl.layers.keras_interop import KerasModule, as_module  # noqa: F401 (re-exported)


def mlp(hidden: Sequence[int] = (64, 64), activation="tanh", *, w_init=None, layer_norm: bool = False,
        name: Optional[str] = None) -> Sequential:
    """A multi-layer perceptron `Flatten -> Dense(h, activation) ...`.

    Orthogonal init with gain sqrt(2) by default, as in PPO and CleanRL.

    >>> import tensorflow as tf
    >>> mlp([32, 32])(tf.zeros([3, 4])).shape
    TensorShape([3, 32])
    """
    from tlrl.layers import LayerNorm

    w_init = w_init if w_init is not None else init.orthogonal(math.sqrt(2.0))
    layers: list = [Flatten()]
    for i, units in enumerate(hidden):
        layers.append(Dense(units, None if layer_norm else activation, w_init=w_init, name=f"dense_{i}"))
        if layer_norm:
            layers += [LayerNorm(name=f"norm_{i}"), Lambda(_act_fn(activation))]
    return Sequential(layers, name=name or "mlp")


def _act_fn(activation):
    from tlrl.layers import activations

    fn = activations.get(activation)
    return fn if fn is not None else (lambda x: x)


def nature_cnn(features: int = 512, *, scale: float = 1.0 / 255.0, name: Optional[str] = None) -> Sequential:
    """The Nature-DQN convolutional torso (Mnih et al., 2015) for NHWC images.

    Pixels are scaled by `scale` (1/255 for uint8 frames) inside the network.
    """
    gain = init.orthogonal(math.sqrt(2.0))
    return Sequential([
        Lambda(lambda x: tf.cast(x, tf.float32) * scale, name="scale"),
        Conv2D(32, 8, 4, activation="relu", w_init=gain, name="conv_0"),
        Conv2D(64, 4, 2, activation="relu", w_init=gain, name="conv_1"),
        Conv2D(64, 3, 1, activation="relu", w_init=gain, name="conv_2"),
        Flatten(),
        Dense(features, "relu", w_init=gain, name="dense"),
    ], name=name or "nature_cnn")


def small_cnn(features: int = 256, *, scale: float = 1.0, name: Optional[str] = None) -> Sequential:
    """A light CNN for small images (about 10x10 to 40x40), e.g. tlrl/Catch."""
    gain = init.orthogonal(math.sqrt(2.0))
    return Sequential([
        Lambda(lambda x: tf.cast(x, tf.float32) * scale, name="scale"),
        Conv2D(16, 3, 1, activation="relu", w_init=gain, name="conv_0"),
        Conv2D(32, 3, 2, padding="SAME", activation="relu", w_init=gain, name="conv_1"),
        Flatten(),
        Dense(features, "relu", w_init=gain, name="dense"),
    ], name=name or "small_cnn")


class OneHot(tf.Module):
    """Encode Discrete observations (integers) as one-hot float vectors."""

    def __init__(self, n: int, name: Optional[str] = None):
        super().__init__(name=name)
        self.n = int(n)

    def __call__(self, x):
        return tf.one_hot(tf.cast(tf.reshape(x, [-1]), tf.int32), self.n)


class _Shift:
    """`x + offset` (a plain callable, so `tlrl.numpy_policy` falls back to TF rather than ignore it)."""

    def __init__(self, offset: int):
        self.offset = offset

    def __call__(self, x):
        return x + tf.cast(self.offset, x.dtype)


class DictTorso(tf.Module):
    """One torso per key of a Dict observation; features concatenated in sorted key order.

    Each key's torso is built under a name scope of its key, so variable names stay distinct
    and readable (e.g. `dict_torso/position/mlp/dense_0/w:0`).

    >>> import tensorflow as tf
    >>> torso = DictTorso({"b": mlp([3]), "a": mlp([2])})
    >>> torso({"a": tf.zeros([4, 5]), "b": tf.zeros([4, 6])}).shape
    TensorShape([4, 5])
    """

    def __init__(self, torsos: Mapping[str, Callable], name: Optional[str] = None):
        super().__init__(name=name or "dict_torso")
        if not torsos:
            raise ValueError("DictTorso needs at least one key")
        self.keys = sorted(torsos)
        self.torsos = {k: as_module(torsos[k]) for k in self.keys}
        self._scopes = {k: _scope_name(k) for k in self.keys}

    def __call__(self, obs: Mapping[str, tf.Tensor]):
        missing = [k for k in self.keys if k not in obs]
        if missing:
            raise KeyError(f"DictTorso: observation lacks keys {missing}; it has {sorted(obs)}")
        features = []
        with tf.name_scope(self.name):
            for k in self.keys:
                with tf.name_scope(self._scopes[k]):
                    features.append(self.torsos[k](obs[k]))
        return tf.concat(features, axis=-1)


def _scope_name(key) -> str:
    """A valid TF name scope made from a Dict key."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(key))
    return name if re.match(r"[A-Za-z0-9.]", name) else "k" + name


def make_torso(space: gym.Space, *, hidden: Sequence[int] = (64, 64), activation="tanh",
               cnn: Optional[Callable[[], Callable]] = None) -> Callable:
    """Build the default torso for an observation space.

    Args:
        space: the env's observation space.
        hidden: MLP layer sizes for flat inputs.
        activation: MLP activation.
        cnn: factory for image torsos; Nature CNN for images of 36 pixels or more a side, `small_cnn` below.
    """
    if isinstance(space, gym.spaces.Dict):
        return DictTorso({k: make_torso(s, hidden=hidden, activation=activation, cnn=cnn) for k, s in space.spaces.items()})
    if isinstance(space, gym.spaces.Discrete):
        layers = [Lambda(OneHot(int(space.n))), mlp(hidden, activation)]
        if int(space.start) != 0:  # observations are start .. start + n - 1
            layers.insert(0, Lambda(_Shift(-int(space.start)), name="shift"))
        return Sequential(layers, name="discrete_torso")
    if isinstance(space, (gym.spaces.MultiBinary, gym.spaces.MultiDiscrete)):
        return mlp(hidden, activation)
    if isinstance(space, gym.spaces.Box):
        if is_image_space(space):
            if cnn is not None:
                return cnn()
            scale = 1.0 / 255.0 if space.dtype == np.uint8 else 1.0
            return nature_cnn(scale=scale) if min(space.shape[:2]) >= 36 else small_cnn(scale=scale)
        return mlp(hidden, activation)
    raise TypeError(
        f"No default torso for observation space {space}. Supported: Box, Discrete, MultiBinary, MultiDiscrete, Dict; "
        f"pass your own torso for others."
    )


def is_image_space(space: gym.Space) -> bool:
    """A Box of shape (H, W, C) with C in 1..4 and H, W >= 8 is treated as an image."""
    return (isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.shape[-1] in (1, 2, 3, 4)
            and min(space.shape[:2]) >= 8)
