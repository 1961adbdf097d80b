"""Which compiled-call path to keep: a plain `tf.function`, its concrete function, or `_call_flat`.

On a PPO-sized network (two 64-64 tanh MLPs, policy and value, CartPole shapes) it times, in one
process, these ways to call the same function with a fixed input signature:

* **tf.function**: `tf.function(fn, input_signature=...)` called with numpy arrays (it binds and
  matches the arguments against the signature on every call);
* **concrete**: the concrete function (public TF API), called with the same numpy arrays;
* **raw op**: `tlrl.compiled.compile_fixed(fn, signature)` for `jit_compile=False`, a `FixedCall`:
  shape checks in Python, then the public `tf.raw_ops.StatefulPartitionedCall` on the traced graph;
* **_call_flat**: the path the old `tlrl/workers/compiled.py` (`FixedFunction`) took: check the
  shapes in Python, `tf.constant` each array, then the private `ConcreteFunction._call_flat(tensors,
  captured_inputs)`;
* **concrete(tensors)**: public API only, `tf.constant` each array first, then the concrete function:
  what `tlrl.compiled.compile_fixed` returns for `jit_compile=True` (an `XlaCall`), where the raw op
  would not compile with XLA;
* **concrete A/A**: a second concrete function of the same function, timed like the others: the control
  whose ratio to concrete shows how much of a ratio is noise.

Two functions: **act** (sample actions, log-probs and V(s) for 8 envs: one call per vector step)
and **update** (one clipped-PPO Adam step on a minibatch of 64). Each call is timed on its own
(`perf_counter_ns`); the paths take turns call by call (rotating order) after a warmup, so
drift in machine load hits them alike. The table gives the median microseconds per call and the
ratios to the concrete function (> 1: slower than concrete).
It decides whether tlrl keeps any wrapper beside the plain concrete function (issue 14).

Usage:
    python scripts/bench_compiled_call.py            # 3000 calls per path and function
    python scripts/bench_compiled_call.py --calls 300
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable, Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tlrl.compiled import compile_fixed  # noqa: E402
from tlrl.layers import Dense, Sequential  # noqa: E402
from tlrl.optim import Adam  # noqa: E402

N_ENVS, OBS, ACTIONS, MINIBATCH = 8, 4, 2, 64


def networks():
    """Policy logits and value nets, 64-64 tanh (PPO's default MlpPolicy), built eagerly with Adam slots."""
    pi = Sequential([Dense(64, "tanh"), Dense(64, "tanh"), Dense(ACTIONS)])
    vf = Sequential([Dense(64, "tanh"), Dense(64, "tanh"), Dense(1)])
    pi(tf.zeros([1, OBS]))
    vf(tf.zeros([1, OBS]))
    opt = Adam(3e-4, max_grad_norm=0.5)
    opt.build(pi.trainable_variables + vf.trainable_variables)
    return pi, vf, opt


def make_functions(pi, vf, opt):
    """(fn, input_signature, example numpy arguments) for the act and update functions."""
    def act(obs, seed):
        logits = pi(obs)
        action = tf.random.stateless_categorical(logits, 1, seed)[:, 0]
        log_prob = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=action, logits=logits)
        return action, log_prob, vf(obs)[:, 0]

    def update(obs, action, old_log_prob, advantage, returns):
        variables = pi.trainable_variables + vf.trainable_variables
        with tf.GradientTape() as tape:
            log_prob = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=action, logits=pi(obs))
            ratio = tf.exp(log_prob - old_log_prob)
            policy_loss = -tf.reduce_mean(tf.minimum(ratio * advantage,
                                                     tf.clip_by_value(ratio, 0.8, 1.2) * advantage))
            value_loss = tf.reduce_mean(tf.square(returns - vf(obs)[:, 0]))
            loss = policy_loss + 0.5 * value_loss
        grad_norm = opt.apply(tape.gradient(loss, variables), variables)
        return loss, grad_norm

    rng = np.random.default_rng(0)
    act_sig = [tf.TensorSpec([N_ENVS, OBS], tf.float32), tf.TensorSpec([2], tf.int32)]
    act_args = [rng.standard_normal((N_ENVS, OBS)).astype(np.float32), np.array([1, 2], np.int32)]
    upd_sig = [tf.TensorSpec([MINIBATCH, OBS], tf.float32), tf.TensorSpec([MINIBATCH], tf.int32)] + \
        [tf.TensorSpec([MINIBATCH], tf.float32)] * 3
    upd_args = [rng.standard_normal((MINIBATCH, OBS)).astype(np.float32),
                rng.integers(0, ACTIONS, MINIBATCH).astype(np.int32)] + \
        [(0.1 * rng.standard_normal(MINIBATCH) - 0.7).astype(np.float32),
         rng.standard_normal(MINIBATCH).astype(np.float32), rng.standard_normal(MINIBATCH).astype(np.float32)]
    return {"act": (act, act_sig, act_args), "update": (update, upd_sig, upd_args)}


def call_flat_path(fn: Callable, signature: List[tf.TensorSpec]) -> Callable:
    """The old FixedFunction call: Python shape checks, tf.constant per array, private `_call_flat`."""
    concrete = tf.function(fn, input_signature=signature).get_concrete_function()
    call_flat, captured = concrete._call_flat, concrete.captured_inputs
    shapes = [tuple(s.shape.as_list()) for s in signature]
    dtypes = [s.dtype.as_numpy_dtype for s in signature]

    def call(*args):
        tensors = []
        for x, shape, dtype in zip(args, shapes, dtypes):
            if tuple(np.shape(x)) != shape:
                raise ValueError(f"shape {np.shape(x)} != {shape}")
            tensors.append(tf.constant(x, dtype))
        return call_flat(tensors, captured)

    return call


def concrete_tensors_path(fn: Callable, signature: List[tf.TensorSpec]) -> Callable:
    """Public API only: `tf.constant` each array first, then call the concrete function with tensors."""
    concrete = _concrete(fn, signature)
    dtypes = [s.dtype for s in signature]
    return lambda *args: concrete(*[tf.constant(x, d) for x, d in zip(args, dtypes)])


def _concrete(fn: Callable, signature: List[tf.TensorSpec]):
    return tf.function(fn, input_signature=signature).get_concrete_function()


def paths(fn: Callable, signature: List[tf.TensorSpec]) -> Dict[str, Callable]:
    return {"tf.function": tf.function(fn, input_signature=signature),
            "concrete": _concrete(fn, signature),
            "_call_flat": call_flat_path(fn, signature),
            "concrete(tensors)": concrete_tensors_path(fn, signature),
            "raw op": compile_fixed(fn, signature),
            "concrete A/A": _concrete(fn, signature)}


def time_paths(calls: Dict[str, Callable], args, n: int, warmup: int = 50) -> Dict[str, float]:
    """Median microseconds per call of each path; the paths take turns call by call, in rotating order."""
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name](*args)
    times = {name: [] for name in names}
    clock = time.perf_counter_ns
    for i in range(n):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            call = calls[name]
            t0 = clock()
            out = call(*args)
            times[name].append(clock() - t0)
            del out
    return {name: statistics.median(ts) / 1e3 for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per path and function")
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    functions = make_functions(*networks())
    print(f"TF {tf.__version__}, Python {platform.python_version()}, {platform.processor() or platform.machine()}, "
          f"1 TF thread, {args.calls} calls per path (median)\n")
    print("| function | tf.function (us) | concrete (us) | concrete(tensors) (us) | _call_flat (us) | raw op (us) | "
          "tf.function / concrete | concrete(tensors) / concrete | _call_flat / concrete | raw op / concrete | "
          "A/A copy / concrete |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (fn, signature, example) in functions.items():
        r = time_paths(paths(fn, signature), example, args.calls)
        c = r["concrete"]
        print(f"| {name} | {r['tf.function']:.1f} | {c:.1f} | {r['concrete(tensors)']:.1f} | {r['_call_flat']:.1f} | "
              f"{r['raw op']:.1f} | {r['tf.function'] / c:.2f} | {r['concrete(tensors)'] / c:.2f} | "
              f"{r['_call_flat'] / c:.2f} | {r['raw op'] / c:.2f} | {r['concrete A/A'] / c:.2f} |")


if __name__ == "__main__":
    main()
