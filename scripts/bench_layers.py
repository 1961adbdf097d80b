"""Zero-cost abstraction check: tlrl layers vs hand-written raw TF vs Keras 3.

Times one training step (forward + backward + Adam update) under `tf.function`
for three networks, each built three ways:

* **tlrl**: `tlrl.layers.Sequential` of `Dense` / `Conv2D` / `Flatten`;
* **raw**: the same network as `tf.Variable`s and `tf.matmul` / `tf.nn.conv2d` /
  `tf.nn.bias_add` / `tf.nn.relu` in a `tf.Module` (the best one writes by hand);
* **raw +b**: the same, with the bias added as `x @ w + b` (the usual hand-written
  form; its gradient needs a broadcast-reduction and Grappler cannot fuse it
  into the matmul/conv, so it is shown for reference);
* **keras**: `keras.Sequential` (Keras 3, TensorFlow backend), called with
  `training=True` inside the same kind of `tf.function` step;
* **raw copy**: a second, identical raw build, timed like the others: the A/A
  control whose ratio to raw shows how much of a ratio is noise.

All three use `keras.optimizers.Adam` (Keras 3) with the same settings; the
step is `tf.GradientTape` -> mean squared error -> `apply_gradients`.
The builds run round-robin (each round runs every build once, in rotating
order) after a warmup, so drift in machine load hits all of them alike; the
table gives the median ms/step and the medians of the per-round ratios
tlrl/raw and tlrl/keras.
It also compares the op types in the traced step graphs of tlrl and raw: a
zero-cost abstraction traces to the same ops.

Usage:
    python scripts/bench_layers.py            # full run, prints a markdown table
    python scripts/bench_layers.py --quick    # a short smoke run
    python scripts/bench_layers.py --write    # full run, then update BENCHMARKS.md (our section only)
"""
from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import tlrl  # noqa: E402
from tlrl import layers as tl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH_FILE = ROOT / "BENCHMARKS.md"
START, END = "<!-- bench_layers:start -->", "<!-- bench_layers:end -->"


# ---------------------------------------------------------------- networks
# A spec is a list of ("dense", units, act) / ("conv", filters, kernel, stride, act) / ("flatten",).

def mlp_spec(hidden: int, out: int = 4):
    return [("dense", hidden, "relu"), ("dense", hidden, "relu"), ("dense", out, None)]


NATURE_SPEC = [("conv", 32, 8, 4, "relu"), ("conv", 64, 4, 2, "relu"), ("conv", 64, 3, 1, "relu"), ("flatten",),
               ("dense", 512, "relu"), ("dense", 6, None)]

KINDS = ("tlrl", "raw", "raw +b", "keras", "raw copy")  # "raw copy": a second raw build, the A/A noise control

NETWORKS = {  # name -> (spec, input shape without batch, batch size)
    "MLP 64-64": (mlp_spec(64), (8,), 256),
    "MLP 256-256": (mlp_spec(256), (8,), 256),
    "Nature CNN": (NATURE_SPEC, (84, 84, 4), 32),
}


def build_tlrl(spec):
    items = []
    for i, s in enumerate(spec):
        if s[0] == "dense":
            items.append(tl.Dense(s[1], s[2], name=f"dense_{i}"))
        elif s[0] == "conv":
            items.append(tl.Conv2D(s[1], s[2], s[3], activation=s[4], name=f"conv_{i}"))
        else:
            items.append(tl.Flatten(name=f"flatten_{i}"))
    return tl.Sequential(items, name="net")


class RawNet(tf.Module):
    """The network written by hand: variables plus plain TF ops, no abstraction."""

    def __init__(self, spec, input_shape, bias_add=True):
        super().__init__(name="raw")
        self.add_bias = tf.nn.bias_add if bias_add else (lambda x, b: x + b)
        glorot = tf.keras.initializers.GlorotUniform()
        self.spec, self.ws, self.bs = spec, [], []
        shape = list(input_shape)
        for s in spec:
            if s[0] == "dense":
                self.ws.append(tf.Variable(glorot([shape[-1], s[1]])))
                self.bs.append(tf.Variable(tf.zeros([s[1]])))
                shape = [s[1]]
            elif s[0] == "conv":
                self.ws.append(tf.Variable(glorot([s[2], s[2], shape[-1], s[1]])))
                self.bs.append(tf.Variable(tf.zeros([s[1]])))
                size = [(d - s[2]) // s[3] + 1 for d in shape[:2]]
                shape = [*size, s[1]]
            else:
                self.ws.append(None)
                self.bs.append(None)
                shape = [int(np.prod(shape))]

    def __call__(self, x):
        for s, w, b in zip(self.spec, self.ws, self.bs):
            if s[0] == "dense":
                x = self.add_bias(tf.matmul(x, w), b)
            elif s[0] == "conv":
                x = self.add_bias(tf.nn.conv2d(x, w, strides=s[3], padding="VALID"), b)
            else:
                x = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
            if len(s) > 2 and s[-1] == "relu":
                x = tf.nn.relu(x)
        return x


def build_keras(spec, input_shape):
    items = [keras.Input(input_shape)]
    for s in spec:
        if s[0] == "dense":
            items.append(keras.layers.Dense(s[1], activation=s[2]))
        elif s[0] == "conv":
            items.append(keras.layers.Conv2D(s[1], s[2], s[3], activation=s[4]))
        else:
            items.append(keras.layers.Flatten())
    return keras.Sequential(items)


# ---------------------------------------------------------------- steps

def make_step(kind, spec, input_shape, batch):
    """A compiled train step for one build; returns (step, get_graph_op_types)."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal([batch, *input_shape]).astype(np.float32))
    out = spec[-1][1]
    y = tf.constant(rng.standard_normal([batch, out]).astype(np.float32))
    if kind == "tlrl":
        net = build_tlrl(spec)
        net.build([None, *input_shape])
        call = net
        variables = net.trainable_variables
    elif kind in ("raw", "raw +b"):
        net = RawNet(spec, input_shape, bias_add=kind == "raw")
        call = net
        variables = net.trainable_variables
    else:
        net = build_keras(spec, input_shape)

        def call(inp):
            return net(inp, training=True)

        variables = net.trainable_variables
    opt = keras.optimizers.Adam(1e-4)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(call(x) - y))
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return loss

    step()  # trace, create the optimizer slots

    def op_types():
        graph = step.get_concrete_function().graph
        return collections.Counter(op.type for op in graph.get_operations())

    return step, op_types


def time_steps(step, n):
    """(wall-clock ms, process CPU ms) per step over `n` steps."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        loss = step()
    loss.numpy()  # wait for the last step
    return (time.perf_counter() - t0) / n * 1e3, (time.process_time() - c0) / n * 1e3


def _paired_ratio(times, a, b):
    """Median over rounds of time[a] / time[b] within the same round (cancels slow drifts in machine load)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


PAIRS = {"tlrl/raw": ("tlrl", "raw"), "tlrl/keras": ("tlrl", "keras"), "raw copy/raw": ("raw copy", "raw")}


def bench_network(name, reps, scale, log=print):
    spec, input_shape, batch = NETWORKS[name]
    kinds = KINDS
    steps, graphs = {}, {}
    for kind in kinds:
        steps[kind], graphs[kind] = make_step(kind.replace(" copy", ""), spec, input_shape, batch)
    # calibrate: about `scale` seconds per timed block
    for kind in kinds:
        time_steps(steps[kind], 3)
    per = min(time_steps(steps["raw"], 5)[0] for _ in range(3))
    n = max(3, int(scale * 1e3 / per))
    for kind in kinds:  # warmup
        time_steps(steps[kind], n)
    wall, cpu = {k: [] for k in kinds}, {k: [] for k in kinds}
    for r in range(reps):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]  # rotate who goes first
        for kind in order:
            w, c = time_steps(steps[kind], n)
            wall[kind].append(w)
            cpu[kind].append(c)
    res = dict(name=name, batch=batch, n=n, reps=reps)
    for clock, times in (("wall", wall), ("cpu", cpu)):
        res[clock] = {k: statistics.median(v) for k, v in times.items()}
        res[clock + "_ratio"] = {k: _paired_ratio(times, a, b) for k, (a, b) in PAIRS.items()}
    ops_t, ops_r, ops_k = graphs["tlrl"](), graphs["raw"](), graphs["keras"]()
    res["same_ops"] = _compute_ops(ops_t) == _compute_ops(ops_r)
    res["same_as_keras"] = _compute_ops(ops_t) == _compute_ops(ops_k)
    for clock in ("wall", "cpu"):
        log(f"{name} [{clock}]: {n} steps x {reps} rounds; "
            + ", ".join(f"{k} {v:.3f} ms" for k, v in res[clock].items()) + "; "
            + ", ".join(f"{k} {v:.3f}" for k, v in res[clock + "_ratio"].items()))
    log(f"{name}: same compute ops as raw: {res['same_ops']}, as keras: {res['same_as_keras']}")
    if not res["same_ops"]:
        log(f"  tlrl ops {sorted(_compute_ops(ops_t).items())}\n  raw ops  {sorted(_compute_ops(ops_r).items())}")
    if not res["same_as_keras"]:
        log(f"  tlrl ops  {sorted(_compute_ops(ops_t).items())}\n  keras ops {sorted(_compute_ops(ops_k).items())}")
    return res


_BOOKKEEPING = {"Const", "Identity", "NoOp", "Placeholder", "ReadVariableOp", "AssignVariableOp", "StopGradient",
                "IdentityN"}


def _compute_ops(counter):
    """Op counts that do arithmetic (variable reads and constants differ only in bookkeeping)."""
    return {k: v for k, v in counter.items() if k not in _BOOKKEEPING}


# ---------------------------------------------------------------- report

def machine_line():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    return f"{cpu}, {cores} cores, {platform.system()} {platform.release()}"


def table(results, reps_note):
    lines = [
        "## Layers: tlrl vs raw TF vs Keras 3 (`scripts/bench_layers.py`)",
        "",
        "One training step (forward + backward + `keras.optimizers.Adam` update) under `tf.function`, in ms per "
        "step (median over rounds; lower is better). Each round runs every build once, in rotating order; ratios are "
        "medians of the per-round ratios. Targets: tlrl/raw <= 1.02, tlrl/keras <= 1.0. "
        "*A/A* times a second, identical raw build against the first: its distance from 1.000 is the noise of the "
        "measurement. *Same ops*: the traced tlrl step has exactly the arithmetic ops (type and count) of the raw / "
        "Keras one. `raw +b` writes the bias as `x @ w + b` instead of `tf.nn.bias_add` (what tlrl layers did "
        "before: its gradient is a broadcast reduction, Sum + Reshape, instead of one BiasAddGrad). "
        "Wall-clock time is what a user waits; process CPU time (all threads) is far less disturbed by other "
        "processes on a shared machine.",
        "",
        f"- Machine: {machine_line()}",
        f"- Versions: Python {platform.python_version()}, tensorflow {tf.__version__}, keras {keras.__version__}, "
        f"numpy {np.__version__}, tlrl {tlrl.__version__}",
        f"- Date: {datetime.date.today().isoformat()}; {reps_note}",
        "",
        "| network | batch | clock | tlrl ms | raw ms | raw `+b` ms | Keras 3 ms | **tlrl/raw** | **tlrl/keras** "
        "| A/A raw/raw | same ops as raw / Keras |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    verdicts = []
    for key, target in (("tlrl/raw", 1.02), ("tlrl/keras", 1.0)):
        parts = [f"{r['name']} " + "/".join("yes" if r[c + "_ratio"][key] <= target else "no" for c in ("wall", "cpu"))
                 for r in results]
        verdicts.append(f"{key} <= {target:g}: " + ", ".join(parts))
    noise = {c: max(abs(r[c + "_ratio"]["raw copy/raw"] - 1.0) for r in results) for c in ("wall", "cpu")}
    lines[-3:-3] = [f"- Targets met (wall/cpu): {'; '.join(verdicts)}. Largest A/A deviation from 1: "
                    f"{noise['wall']:.1%} (wall), {noise['cpu']:.1%} (cpu)."]
    for r in results:
        for clock in ("wall", "cpu"):
            ms, q = r[clock], r[clock + "_ratio"]
            same = f"{'yes' if r['same_ops'] else 'no'} / {'yes' if r['same_as_keras'] else 'no'}"
            lines.append(
                f"| {r['name']} | {r['batch']} | {clock} | {ms['tlrl']:.3f} | {ms['raw']:.3f} | {ms['raw +b']:.3f} "
                f"| {ms['keras']:.3f} | {q['tlrl/raw']:.3f} | {q['tlrl/keras']:.3f} | {q['raw copy/raw']:.3f} "
                f"| {same} |")
    return "\n".join(lines)


def write_section(text, path=BENCH_FILE):
    """Replace only the text between our markers (re-reading the file right before writing)."""
    block = f"{START}\n{text}\n{END}"
    current = path.read_text() if path.exists() else "# tlrl benchmarks\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if pattern.search(current):
        new = pattern.sub(lambda _: block, current, count=1)
    else:
        new = current.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short run: 3 reps of ~0.05 s blocks")
    p.add_argument("--reps", type=int, default=None, help="repetitions per build (default 21, quick 3)")
    p.add_argument("--write", action="store_true", help=f"update our section of {BENCH_FILE.name}")
    p.add_argument("--only", nargs="*", choices=list(NETWORKS), help="run a subset of the networks")
    p.add_argument("--threads", type=int, default=0, help="TF intra-op threads (default 0: TF's choice)")
    args = p.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    reps = args.reps or (3 if args.quick else 21)
    scale = 0.05 if args.quick else 0.15
    load0 = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    results = [bench_network(name, reps, scale) for name in (args.only or NETWORKS)]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    threads = args.threads or "default"
    text = table(results, f"{reps} rounds of ~{scale:g} s per build; intra-op threads: {threads}; "
                          f"load average before: {load0}, after: {load}")
    print()
    print(text)
    if args.write:
        if args.quick:
            print("not writing a --quick run", file=sys.stderr)
        else:
            write_section(text)
            print(f"\nupdated {BENCH_FILE}")
    return results


if __name__ == "__main__":
    main()
