"""Use Keras 3 layers and models where tlrl expects a module.

Keras 3 keeps its weights in `keras.Variable`s, which `tf.Module` tracking does not
see (they are not `tf.Variable`s), so a Keras model stored in a tlrl module would
be silently left out of `trainable_variables` and of checkpoints. `KerasModule`
wraps one and exposes the `tf.Variable`s behind its weights (TensorFlow backend).

Checkpoints hold the wrapped model's weights as a flat list, in the order of
`model.weights`, under `<attribute>/_tf_variables/<i>`; restoring into a fresh,
not yet called `KerasModule` is deferred until its first call, like tlrl layers.
Models with a `build` method (Keras layers, `keras.Sequential`, functional models)
are built before that first call runs, so it already reads the restored weights.
A subclassed `keras.Model` without `build` creates its weights inside its call:
there the restored values arrive just after the first eager call (inside
`tf.function` they arrive in time); build or call it once before restoring if that
first eager output matters.

>>> import keras, tensorflow as tf
>>> net = as_module(keras.layers.Dense(2))
>>> net(tf.ones([1, 3])).shape
TensorShape([1, 2])
>>> [type(v).__name__ for v in net.trainable_variables]
['ResourceVariable', 'ResourceVariable']
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf


class KerasModule(tf.Module):
    """Adapt a Keras layer or model so that tlrl sees its weights as `trainable_variables`.

    Keras 3 variables are not `tf.Variable`s; their underlying `tf.Variable`s are
    collected once the model is built (at the latest on its first call), so
    optimizers, `tf.GradientTape`, `tf.train.Checkpoint` and a containing
    `tf.Module`'s `trainable_variables` see them like any tlrl module's.
    """

    def __init__(self, model, name: Optional[str] = None):
        super().__init__(name=name or "keras_module")
        # Not tracked as a checkpoint dependency: the weights are saved once, through `_tf_variables`
        # (Keras' own object graph of an unbuilt model differs from a built one's, so restoring through it fails).
        object.__setattr__(self, "model", model)
        self._tf_variables: list = []
        if getattr(model, "built", False) and model.weights:
            self._collect()

    def __call__(self, *args, **kwargs):
        if (not getattr(self.model, "built", True) and args and hasattr(args[0], "shape")
                and not getattr(type(self.model).build, "_is_default", False)):
            self._build_from(args[0].shape)
        y = self.model(*args, **kwargs)
        if len(self._tf_variables) != len(self.model.weights):
            self._collect()
        return y

    def _build_from(self, shape) -> None:
        """Create the Keras weights before the first call, so a checkpoint restore deferred to them is applied
        before that call reads them (otherwise the first output would use the initial values)."""
        try:
            with tf.init_scope():
                self.model.build(tuple(tf.TensorShape(shape).as_list()))
        except Exception:  # noqa: BLE001 - models that cannot build from a shape are built by their call
            return
        self._collect()

    def _collect(self):
        current = [_as_tf_variable(v) for v in self.model.weights]
        have = list(self._tf_variables)
        if len(current) >= len(have) and all(a is b for a, b in zip(have, current)):
            # Append to the tracked list: each append applies a checkpoint restore deferred to that index
            # (a new list object would not receive the restore the old one was given).
            for v in current[len(have):]:
                self._tf_variables.append(v)
        else:
            self._tf_variables = current

    def _check_built(self):
        if not getattr(self.model, "built", True):
            raise RuntimeError(
                f"The Keras {type(self.model).__name__} '{getattr(self.model, 'name', '?')}' wrapped by "
                f"'{self.name}' has no weights yet: Keras creates them on the first call. Call it once on an input "
                f"(or build the Keras model) before reading its variables.")

    @property
    def trainable_variables(self):
        self._check_built()
        return tuple(_as_tf_variable(v) for v in self.model.trainable_weights)

    @property
    def variables(self):
        self._check_built()
        return tuple(_as_tf_variable(v) for v in self.model.weights)


def _as_tf_variable(v):
    if isinstance(v, tf.Variable):
        return v
    inner = getattr(v, "value", None)
    if isinstance(inner, tf.Variable):
        return inner
    inner = getattr(v, "_value", None)
    if isinstance(inner, tf.Variable):
        return inner
    raise TypeError(f"Cannot find the tf.Variable behind {type(v).__name__}; use the TensorFlow backend of Keras")


def _is_keras(obj) -> bool:
    """True for Keras 3 objects (`keras.*`); tf_keras (Keras 2) objects are `tf.Module`s already."""
    return any(c.__module__.startswith("keras") for c in type(obj).__mro__)


def as_module(torso):
    """Return `torso` as something whose variables tf.Module tracking finds (wraps Keras 3 objects).

    Raises:
        TypeError: if `torso` is not callable.
    """
    if not callable(torso):
        raise TypeError(f"A torso must be callable (a tlrl module, tf.Module or Keras model), got {type(torso).__name__}")
    if isinstance(torso, KerasModule) or not _is_keras(torso):
        return torso
    return KerasModule(torso)
