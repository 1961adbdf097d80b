"""`HostAdam`: the Adam step of `tlrl.optim.Adam`, on flat numpy vectors, for the asynchronous learner.

The learner applies one small gradient at a time while workers wait for the new weights. On
networks of a few thousand parameters a compiled TF Adam step is mostly call overhead
(measured on this 2-core CPU, 9k parameters: 0.84 ms of CPU per step in TF against 0.06 ms
here), and that time is spent while every worker is idle. The arithmetic is the same as
`tlrl.optim.Adam.apply` (clipping by global norm, bias-corrected step size, `eps` outside the
square root), in float32, so the two agree to float rounding; the state is read from and
written back to that optimizer's variables (`tlrl.runner.learner.Learner` keeps them in step).
"""
from __future__ import annotations

import numpy as np

from tlrl.finite import CAUSES, NonFiniteError


class HostAdam:
    """Adam over one flat float32 parameter vector; `m`, `v` and `step` are its state.

    >>> import numpy as np
    >>> adam = HostAdam(size=2, beta1=0.9, beta2=0.999, eps=1e-8, max_grad_norm=None)
    >>> w = np.array([1.0, -1.0], np.float32)
    >>> norm = adam.apply(np.array([1.0, -1.0], np.float32), w, learning_rate=0.1)
    >>> [round(float(x), 3) for x in w], adam.step
    ([0.9, -0.9], 1)
    """

    def __init__(self, size: int, *, beta1: float, beta2: float, eps: float, max_grad_norm: float | None):
        self.beta1, self.beta2, self.eps, self.max_grad_norm = float(beta1), float(beta2), float(eps), max_grad_norm
        self.m = np.zeros(size, np.float32)
        self.v = np.zeros(size, np.float32)
        self.step = 0
        self._tmp = np.empty(size, np.float32)

    @classmethod
    def like(cls, optimizer, size: int) -> "HostAdam":
        """An empty state with `optimizer`'s (a `tlrl.optim.Adam`) hyperparameters."""
        return cls(size, beta1=optimizer.beta1, beta2=optimizer.beta2, eps=optimizer.eps,
                   max_grad_norm=optimizer.max_grad_norm)

    def apply(self, grads: np.ndarray, weights: np.ndarray, learning_rate: float) -> float:
        """One Adam step on `weights` (updated in place); returns the global gradient norm before clipping.

        A gradient with a NaN or infinite norm, or such a learning rate, raises
        `tlrl.finite.NonFiniteError` before anything (weights, `m`, `v`, `step`) changes.
        """
        f32 = np.float32
        norm = f32(np.sqrt(np.dot(grads, grads)))
        if not (np.isfinite(norm) and np.isfinite(learning_rate)):
            raise NonFiniteError(f"The learner got a gradient of global norm {norm} (learning rate {learning_rate}) "
                                 f"at optimizer step {self.step + 1} and did not apply it. {CAUSES}")
        if self.max_grad_norm is not None:  # as tf.clip_by_global_norm: scaled always, by 1 below the bound
            clip = f32(self.max_grad_norm)
            inverse = f32(1.0) / norm if norm > 0 else f32(np.inf)
            grads = grads * (clip * min(inverse, f32(1.0) / clip))
        self.step += 1
        t = f32(self.step)
        lr = f32(learning_rate) * np.sqrt(f32(1.0) - f32(self.beta2) ** t) / (f32(1.0) - f32(self.beta1) ** t)
        m, v, tmp = self.m, self.v, self._tmp
        m *= f32(self.beta1)
        m += f32(1.0 - self.beta1) * grads
        v *= f32(self.beta2)
        np.square(grads, out=tmp)
        tmp *= f32(1.0 - self.beta2)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += f32(self.eps)
        weights -= np.divide(lr * m, tmp, out=tmp)
        return float(norm)
