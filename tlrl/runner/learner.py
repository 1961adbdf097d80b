"""`Learner`: the shared parameters of asynchronous training, updated as gradients arrive.

Gradients come in and weights go out as lists of numpy arrays (any backend can carry them).
Each `apply` steps the optimizer under a lock: a checkpoint taken under the same lock
(`with learner.lock:`) never sees a half-applied update, and every published weight list is
one consistent version.

With a `tlrl.optim.Adam` (A3C's optimizer) the step runs on a numpy copy of the weights and
of Adam's state (`HostAdam`), because a compiled TF call costs more than the arithmetic on
small networks and workers wait for it. The TF variables (network and optimizer) are then
behind, and are brought up to date whenever someone takes `learner.lock` (saving,
acting, evaluating) and when a run of `tlrl.runner.gradient.run_gradient_workers` ends; whoever holds
the lock may also change them (restoring a checkpoint), so the numpy copy is read again
from them at the next update. Code that reads the variables during training must hold the lock.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tlrl.compiled import compile_fixed
from tlrl.runner.flat import FlatLayout
from tlrl.runner.host_adam import HostAdam

Weights = List[np.ndarray]


class Learner:
    """Applies gradients to shared `variables` with `optimizer` and publishes fresh weights.

    Args:
        variables: the shared (global) trainable variables.
        optimizer: a `tlrl.optim` optimizer (`build(vars)`, `apply(grads, vars) -> grad norm`,
            `learning_rate` a `tf.Variable`); it is built here, eagerly.
        jit_compile: compile the update with XLA.

    >>> import numpy as np, tensorflow as tf
    >>> from tlrl.optim import Adam
    >>> v = tf.Variable([1.0, -1.0])
    >>> learner = Learner([v], Adam(0.1))
    >>> weights, info = learner.apply([np.array([1.0, -1.0], np.float32)], learning_rate=0.1)
    >>> [round(float(x), 3) for x in weights[0]], info["version"]
    ([0.9, -0.9], 1)
    """

    def __init__(self, variables: Sequence[tf.Variable], optimizer, *, jit_compile: bool = False):
        self.variables = list(variables)
        self.optimizer = optimizer
        optimizer.build(self.variables)
        self._lock = threading.RLock()
        #: held while an update is applied; hold it to read, save or change a consistent set of weights.
        self.lock = _SyncingLock(self._lock, self.sync)
        #: number of updates applied since this learner was made.
        self.version = 0
        self.layout = FlatLayout.of(self.variables)
        self._jit_compile = jit_compile
        self._fused: Dict[int, Any] = {}
        self._apply_fn = compile_fixed(self._apply, [self.layout.spec(), tf.TensorSpec([], tf.float32)],
                                       jit_compile=jit_compile)
        # The numpy path (Adam only): weights and optimizer state as flat vectors, `None` while
        # the TF variables are the current ones; `_ahead`: the TF variables are behind them.
        from tlrl.optim import Adam

        self._host_ok = type(optimizer) is Adam
        self._host: Optional[Tuple[np.ndarray, HostAdam]] = None
        self._ahead = False
        self._last_lr = None
        if self._host_ok:
            slots = [self.layout.spec()] * 3 + [tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.float32)]
            self._write_fn = compile_fixed(self._write, slots)

    def _apply(self, flat_grads, learning_rate):
        self.optimizer.learning_rate.assign(learning_rate)
        norm = self.optimizer.apply(self.layout.unpack_tf(flat_grads), self.variables)
        # The new values, read inside the same call: one consistent version.
        return self.layout.pack_tf([v.read_value() for v in self.variables]), norm

    def apply(self, grads: Sequence[np.ndarray], learning_rate: float) -> Tuple[Weights, Dict[str, float]]:
        """Apply one gradient; return the new weights and `{"grad_norm", "weight_norm", "version"}`."""
        if len(grads) != len(self.variables):
            raise ValueError(f"Learner holds {len(self.variables)} variables, got {len(grads)} gradients")
        flat, info = self.apply_flat(self.layout.pack(grads), learning_rate)
        return self.layout.unpack(flat), info

    def apply_flat(self, flat_grads: np.ndarray, learning_rate: float) -> Tuple[np.ndarray, Dict[str, float]]:
        """`apply` for gradients packed as one vector (`self.layout`), as workers send them; returns
        the new weights packed the same way (what goes back to the worker), without re-packing."""
        if np.shape(flat_grads) != (self.layout.size,):
            raise ValueError(f"Learner expects a flat gradient of shape ({self.layout.size},), "
                             f"got {np.shape(flat_grads)}")
        with self._lock:
            if self._host_ok:
                if self._host is None:
                    self._host = self._read_host()
                weights, adam = self._host
                norm = adam.apply(np.asarray(flat_grads, np.float32), weights, learning_rate)
                self._ahead, self._last_lr = True, float(learning_rate)
                weights = weights.copy()
            else:
                weights, norm = self._apply_fn(flat_grads, np.float32(learning_rate))
                weights = weights.numpy()
            self.version += 1
            version = self.version
        return weights, {"grad_norm": float(norm), "weight_norm": _norm(weights), "version": version}

    # ----- the numpy copy and the TF variables --------------------------------------------
    def _read_host(self) -> Tuple[np.ndarray, HostAdam]:
        adam = HostAdam.like(self.optimizer, self.layout.size)
        adam.m[:] = self.layout.pack([m.numpy() for m in self.optimizer.m])
        adam.v[:] = self.layout.pack([v.numpy() for v in self.optimizer.v])
        adam.step = int(self.optimizer.step.numpy())
        return self.layout.pack([v.numpy() for v in self.variables]), adam

    def _write(self, weights, m, v, step, learning_rate):
        opt = self.optimizer
        for targets, flat in ((self.variables, weights), (opt.m, m), (opt.v, v)):
            for var, part in zip(targets, self.layout.unpack_tf(flat)):
                var.assign(part)
        opt.step.assign(step)
        opt.learning_rate.assign(learning_rate)
        return tf.constant(True)

    def sync(self) -> None:
        """Bring the TF variables (network and optimizer) up to the latest update and make the
        next update start from them (a no-op when they are current). Taking or leaving `lock`
        does this, and `run_gradient_workers` does it when a run ends."""
        with self._lock:
            if self._ahead:
                weights, adam = self._host
                self._write_fn(weights, adam.m, adam.v, np.int64(adam.step), np.float32(self._last_lr))
                self._ahead = False
            self._host = None  # whoever holds the lock may change the variables: read them again

    def get_flat_weights(self) -> np.ndarray:
        """The current weights as one flat float32 vector (one consistent version)."""
        with self._lock:
            if self._host is not None:
                return self._host[0].copy()
            return self.layout.pack([v.numpy() for v in self.variables])

    # ----- a worker in this process that shares the variables: one call per rollout ------
    def attach(self, worker) -> None:
        """Fuse gradient and update for a `GradientWorker` whose model *is* the shared model
        (same variables, same process): `train(worker, lr)` then costs one compiled call per
        rollout instead of two, with the same arithmetic as `apply(worker.compute_gradients())`."""
        if [id(v) for v in worker.variables] != [id(v) for v in self.variables]:
            raise ValueError("Learner.attach needs a worker whose model variables are the learner's own")

        def fused(obs_pair, actions, signals, learning_rate):
            grads, metrics, returns = worker.loss_gradients(obs_pair, actions, signals)
            self.optimizer.learning_rate.assign(learning_rate)
            norm = self.optimizer.apply(grads, self.variables)
            return self.layout.pack_tf([v.read_value() for v in self.variables]), norm, metrics, returns

        worker.shares_variables = True
        self._fused[id(worker)] = compile_fixed(fused, worker.batch_signature() + [tf.TensorSpec([], tf.float32)],
                                                jit_compile=self._jit_compile)

    def is_attached(self, worker) -> bool:
        return id(worker) in self._fused

    def train(self, worker, learning_rate: float) -> Dict[str, Any]:
        """One rollout of an attached worker, its gradient applied in the same compiled call;
        returns the worker's stats plus `grad_norm`, `weight_norm` and `version`."""
        episodes = worker.collect()
        with self.lock:  # brings the variables up to date first, as the fused call updates them
            weights, norm, metrics, returns = self._fused[id(worker)](*worker.batch(), np.float32(learning_rate))
            self.version += 1
            version = self.version
        weights = weights.numpy()
        worker.set_weights(self.layout.unpack(weights))
        stats = worker.summarize(episodes, metrics, returns)
        stats.update(grad_norm=float(norm), weight_norm=_norm(weights), version=version)
        return stats

    def get_weights(self) -> Weights:
        """The current weights (one consistent version)."""
        with self.lock:
            return [v.numpy() for v in self.variables]


def _norm(flat: np.ndarray) -> float:
    """Global norm of the weights just published (NaN or inf once one is: `tlrl.finite` stops training on it)."""
    with np.errstate(over="ignore"):
        return float(np.sqrt(np.dot(flat, flat)))


class _SyncingLock:
    """`Learner.lock`: the learner's re-entrant lock; entering and leaving it bring the TF variables
    up to date and make the next update read them again (`Learner.sync`)."""

    def __init__(self, lock: threading.RLock, sync):
        self._lock, self._sync = lock, sync

    def __enter__(self) -> "_SyncingLock":
        self._lock.acquire()
        try:
            self._sync()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._sync()
        finally:
            self._lock.release()
