"""Where off-policy update time goes on this CPU: TF's compilers against JAX's (SBX), per kernel and per update.

Issue #17 asks why tlrl's off-policy updates do not beat SBX by more, and what floor this CPU sets.
Every measurement runs in a fresh subprocess (XLA flags and thread counts are per process), the
variants interleaved over `--rounds` rounds so that load from other processes hits all alike;
tables give medians over rounds.

Kernels: a chain of 6 dependent `relu(x @ W)` at tlrl's layer sizes (batch x width: DQN 64 x 256,
SAC 256 x 256, DDPG 256 x 400), one compiled call per chain so call overhead is amortized, GFLOP/s:

  tf xla                TF 2.x `jit_compile=True` (what tlrl's updates use), XLA's defaults
  tf xla, ynn dot       XLA_FLAGS --xla_cpu_experimental_ynn_fusion_type=+dot,+eltwise (YNNPACK dots)
  tf xla, bf16          the matmuls in bfloat16 (fp32 in between), XLA
  tf graph (oneDNN)     `tf.function` without XLA: TF's oneDNN kernels
  tf graph, bf16        the same in bfloat16 (oneDNN bf16 kernels; avx512_bf16 where the CPU has it)
  jax                   `jax.jit`, the compiler SBX runs on, XLA's defaults
  jax, bf16             the same in bfloat16
  ..., 1 core           pinned to one core (`os.sched_setaffinity`): the kernels without threading

Updates: one SAC gradient step at the Pendulum zoo settings (batch 256, [256, 256] nets), ms:

  tlrl update()         `agent.update(obs)`: sample, one XLA call (gradient step + pi(obs)), metrics
  tlrl update(), ynn    the same with the YNNPACK flags above
  tlrl update(), graph  `jit_compile=False` (oneDNN kernels, TF's graph executor)
  tlrl update(), [8, 8] tiny nets: what one update costs beyond its matmuls (call, sampling, XLA thunks)
  sbx train(1)          SBX's `SAC.train(gradient_steps=1, batch_size=256)`: sample + one jitted step
  sbx train(1), [8, 8]  the same with tiny nets

    python scripts/bench_xla_study.py --rounds 3 --write
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_child  # noqa: E402 - scripts/ is on the path now
START, END = "<!-- bench_xla_study:start -->", "<!-- bench_xla_study:end -->"
YNN = "--xla_cpu_experimental_ynn_fusion_type=+dot,+eltwise"
SIZES = {"DQN 64x256": (64, 256), "SAC 256x256": (256, 256), "DDPG 256x400": (256, 400)}
DEPTH, CALLS = 6, 300

# kernel variant -> (framework, XLA flags, options)
KERNELS = {
    "tf xla": ("tf", "", {"jit": True}),
    "tf xla, ynn dot": ("tf", YNN, {"jit": True}),
    "tf xla, bf16": ("tf", "", {"jit": True, "bf16": True}),
    "tf graph (oneDNN)": ("tf", "", {"jit": False}),
    "tf graph, bf16": ("tf", "", {"jit": False, "bf16": True}),
    "jax": ("jax", "", {}),
    "jax, bf16": ("jax", "", {"bf16": True}),
    "tf xla, 1 core": ("tf", "", {"jit": True, "one_core": True}),
    "jax, 1 core": ("jax", "", {"one_core": True}),
}
# update variant -> (framework, XLA flags, options)
UPDATES = {
    "tlrl update()": ("tlrl", "", {}),
    "tlrl update(), ynn dot": ("tlrl", YNN, {}),
    "tlrl update(), graph (oneDNN)": ("tlrl", "", {"jit": False}),
    "tlrl update(), [8, 8] nets": ("tlrl", "", {"width": 8}),
    "sbx train(1)": ("sbx", "", {}),
    "sbx train(1), [8, 8] nets": ("sbx", "", {"width": 8}),
}


# ----- children -------------------------------------------------------------------------------------------------------
def _timed(fn, calls: int) -> float:
    """Median seconds per call over 5 blocks of `calls // 5` (after 10 warm-up calls)."""
    for _ in range(10):
        fn()
    blocks = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(max(calls // 5, 1)):
            fn()
        blocks.append((time.perf_counter() - t) / max(calls // 5, 1))
    return statistics.median(blocks)


def _tf_chain(ws, dt):
    import tensorflow as tf

    def chain(x):
        for w in ws:
            x = tf.nn.relu(tf.cast(tf.matmul(tf.cast(x, dt), tf.cast(w, dt)), tf.float32))
        return tf.reduce_sum(x)
    return chain


def _jax_chain(dt):
    import jax
    import jax.numpy as jnp

    def chain(x, ws):
        for w in ws:
            x = jax.nn.relu(jnp.matmul(x.astype(dt), w.astype(dt)).astype(jnp.float32))
        return jnp.sum(x)
    return chain


def child_kernel(name: str) -> dict:
    framework, _, opts = KERNELS[name]
    if opts.get("one_core"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for label, (batch, width) in SIZES.items():
        x0 = rng.standard_normal((batch, width)).astype(np.float32)
        ws0 = [(rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32) for _ in range(DEPTH)]
        if framework == "tf":
            import tensorflow as tf

            ws = [tf.Variable(w) for w in ws0]
            dt = tf.bfloat16 if opts.get("bf16") else tf.float32

            fn = tf.function(_tf_chain(ws, dt), jit_compile=opts["jit"]).get_concrete_function(tf.TensorSpec(x0.shape))
            x = tf.constant(x0)
            sec = _timed(lambda: fn(x).numpy(), CALLS)
        else:
            import jax
            import jax.numpy as jnp

            dt = jnp.bfloat16 if opts.get("bf16") else jnp.float32

            chain = jax.jit(_jax_chain(dt))
            x, ws = jnp.asarray(x0), [jnp.asarray(w) for w in ws0]
            sec = _timed(lambda: chain(x, ws).block_until_ready(), CALLS)
        out[label] = 2.0 * batch * width * width * DEPTH / sec / 1e9
    return out


def child_update(name: str) -> dict:
    framework, _, opts = UPDATES[name]

    width = opts.get("width", 256)
    if framework == "tlrl":
        sys.path.insert(0, ROOT)
        import tlrl.algorithms

        agent = tlrl.algorithms.SAC("Pendulum-v1", seed=0, learning_rate=1e-3, net_arch=[width, width],
                                    jit_compile=opts.get("jit", True))
        agent.learn(1000)  # 900 updates after learning_starts=100; the buffer has 1000 transitions
        obs = agent.collector.obs
        sec = _timed(lambda: agent.update(obs), CALLS)
    else:
        sys.path.insert(0, HERE)
        from benchmarks._common import import_sbx

        sbx = import_sbx()
        model = sbx.SAC("MlpPolicy", "Pendulum-v1", seed=0, learning_rate=1e-3, verbose=0,
                        policy_kwargs=dict(net_arch=[width, width]))
        model.learn(1000)
        sec = _timed(lambda: model.train(gradient_steps=1, batch_size=256), CALLS)
    return {"ms": 1e3 * sec}


# ----- parent ---------------------------------------------------------------------------------------------------------
def run_child(kind: str, name: str) -> dict:
    flags = (KERNELS if kind == "kernel" else UPDATES)[name][1]
    env = {"XLA_FLAGS": flags}
    if kind == "update" and UPDATES[name][0] == "sbx":
        env["SBX_XLA_FLAGS"] = flags  # import_sbx sets XLA_FLAGS from it
    return bench_child.run([sys.executable, __file__, "--child", kind, name], f"{kind} {name}", env)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, name = sys.argv[2], sys.argv[3]
        bench_child.report(child_kernel(name) if kind == "kernel" else child_update(name))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write the tables into BENCHMARKS.md")
    args = parser.parse_args()
    kernels = {name: [] for name in KERNELS}
    updates = {name: [] for name in UPDATES}
    for r in range(args.rounds):
        for name in KERNELS:
            kernels[name].append(run_child("kernel", name))
            print(f"round {r} kernel {name}: {kernels[name][-1]}", flush=True)
        for name in UPDATES:
            updates[name].append(run_child("update", name))
            print(f"round {r} update {name}: {updates[name][-1]}", flush=True)
    text = report(kernels, updates, args.rounds)
    print(text)
    if args.write:
        sys.path.insert(0, HERE)
        import bench_sections

        bench_sections.write_section(START, END, text)


def report(kernels, updates, rounds: int) -> str:
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    lines = ["### Where off-policy update time goes: TF's compilers against JAX's (`scripts/bench_xla_study.py`)", "",
             f"Kernels: {DEPTH} dependent relu(x @ W) in one compiled call, GFLOP/s (median of {rounds} rounds; "
             "higher is better):", "",
             "| variant | " + " | ".join(SIZES) + " |", "|---|" + "---|" * len(SIZES)]
    for name, rows in kernels.items():
        lines.append(f"| {name} | " + " | ".join(f"{med(rows, s):.0f}" for s in SIZES) + " |")
    lines += ["", "One SAC gradient step, Pendulum zoo settings (batch 256), ms per update call "
                  f"(median of {rounds} rounds):", "", "| variant | ms | rounds |", "|---|---|---|"]
    for name, rows in updates.items():
        lines.append(f"| {name} | {med(rows, 'ms'):.2f} | " + ", ".join(f"{r['ms']:.2f}" for r in rows) + " |")
    sys.path.insert(0, HERE)
    from benchmark import machine, versions

    lines += ["", f"Measured {datetime.date.today()} on {machine()}; {versions()}. Each variant a fresh process, "
                  "variants interleaved per round.",
              "Reproduce: `python scripts/bench_xla_study.py --rounds 3 --write`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
