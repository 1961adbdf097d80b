"""A thin Adam optimizer as a `tf.Module`: slots are plain `tf.Variable`s.

Why not a Keras optimizer: this one has no hidden cost under `tf.function`
and XLA, checkpoints with `tf.train.Checkpoint` like any module, takes its
learning rate from a variable (schedules assign it without retracing) and
clips by global norm in the same call.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf


class Adam(tf.Module):
    """Adam (Kingma & Ba, 2015) with optional gradient clipping by global norm.

    Call `build(variables)` once eagerly (the agent does this when it builds its
    networks) so no variable is created inside a compiled function.

    >>> import tensorflow as tf
    >>> v = tf.Variable([1.0, -1.0])
    >>> opt = Adam(0.1)
    >>> opt.build([v])
    >>> _ = opt.apply([tf.constant([1.0, -1.0])], [v])
    >>> [round(float(x), 3) for x in v.numpy()]
    [0.9, -0.9]
    """

    def __init__(self, learning_rate: float = 3e-4, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 max_grad_norm: Optional[float] = None, name: Optional[str] = None):
        super().__init__(name=name or "adam")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
        self.learning_rate = tf.Variable(float(learning_rate), trainable=False, name="learning_rate")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.max_grad_norm = max_grad_norm
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.m: list = []
        self.v: list = []

    @property
    def built(self) -> bool:
        return bool(self.m)

    def build(self, variables: Sequence[tf.Variable]) -> None:
        """Create the first- and second-moment slots for `variables`."""
        if self.m:
            return
        with tf.name_scope(self.name):
            self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
            self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]

    def apply(self, grads: Sequence[tf.Tensor], variables: Sequence[tf.Variable]) -> tf.Tensor:
        """One Adam step; returns the global gradient norm (before clipping)."""
        if not self.m:
            self.build(variables)
        if len(grads) != len(self.m):
            raise ValueError(f"Adam was built for {len(self.m)} variables, got {len(grads)} gradients")
        norm = tf.linalg.global_norm(grads)
        if self.max_grad_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.max_grad_norm, use_norm=norm)
        step = self.step.assign_add(1)
        t = tf.cast(step, tf.float32)
        lr = self.learning_rate * tf.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        for g, var, m, v in zip(grads, variables, self.m, self.v):
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            var.assign_sub(lr * m / (tf.sqrt(v) + self.eps))
        return norm
