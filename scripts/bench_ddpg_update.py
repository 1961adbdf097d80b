"""How cheap can one DDPG update be? Variants of the same update, same run, medians.

The update (critic step, actor step, Polyak averaging of both target nets) on a batch of 256
with [400, 300] relu networks, Pendulum-v1 shapes, is timed in fresh subprocesses (threading
and oneDNN settings are per process), variants interleaved over `--rounds` rounds so that
load from other processes hits all of them alike. Reported per gradient step: wall milliseconds
(median over rounds of the median over calls) and this process's CPU milliseconds (all its
threads): on a shared, loaded machine the CPU time is the steadier measure of the work done.

Variants:
  tf.function            plain graph, TF's oneDNN kernels, default threads
  xla                    `jit_compile=True` (what tlrl uses), default threads
  xla, 1 thread          intra/inter-op threads 1
  tf.function, 1 thread  intra/inter-op threads 1
  tf.function, Eigen     TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels instead of oneDNN)
  xla, k=8 fused         8 gradient steps per call (tf.while_loop inside one XLA call)
  bf16 matmuls           every Dense matmul in bfloat16 (fp32 weights, activations cast), with and without XLA
  op determinism         `tf.config.experimental.enable_op_determinism()`
  td3, xla               TD3's update (twin critics, target smoothing, actor every 2nd step), for reference

Acting, per env step at train_freq=1 (the update changes the weights before every action):
  a separate TF policy call, a numpy forward pass (refresh the weights + forward), and the
  fused path tlrl uses (mu(s) computed inside the update call: no extra call).

bf16 accuracy: from the same seed and the same replayed batches, the actor's actions and
the critic's Q-values after `--acc-updates` updates are compared with the fp32 XLA run; the
difference between fp32 XLA and fp32 tf.function (rounding only) is the yardstick.

    python scripts/bench_ddpg_update.py --rounds 3 --write
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_child  # noqa: E402 - scripts/ is on the path now
START, END = "<!-- bench_ddpg_update:start -->", "<!-- bench_ddpg_update:end -->"

# name -> (env vars, agent kwargs, options)
VARIANTS = {
    "tf.function": ({}, dict(jit_compile=False), {}),
    "xla": ({}, dict(jit_compile=True), {}),
    "xla, 1 thread": ({}, dict(jit_compile=True), {"threads": 1}),
    "tf.function, 1 thread": ({}, dict(jit_compile=False), {"threads": 1}),
    "tf.function, Eigen (no oneDNN)": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, dict(jit_compile=False), {}),
    "xla, k=8 fused": ({}, dict(jit_compile=True, gradient_steps=8), {}),
    "tf.function, bf16 matmuls": ({}, dict(jit_compile=False), {"bf16": True}),
    "xla, bf16 matmuls": ({}, dict(jit_compile=True), {"bf16": True}),
    "xla, op determinism": ({}, dict(jit_compile=True), {"determinism": True}),
    "tf.function, op determinism": ({}, dict(jit_compile=False), {"determinism": True}),
    "td3, xla": ({}, dict(jit_compile=True), {"algo": "TD3"}),
}
ACC_VARIANTS = ["xla", "tf.function", "xla, bf16 matmuls", "tf.function, bf16 matmuls"]


# ----- child process ------------------------------------------------------------------------------------------------
def _patch_bf16() -> None:
    """Make every tlrl Dense layer multiply in bfloat16 (weights stay fp32; this is a measurement, not an option)."""
    import tensorflow as tf

    from tlrl.layers import Dense

    def forward(self, x):
        y = tf.cast(tf.matmul(tf.cast(x, tf.bfloat16), tf.cast(self.w, tf.bfloat16)), tf.float32)
        if self.use_bias:
            y = y + self.b
        return y if self.activation is None else self.activation(y)

    Dense._forward = forward


def _make_agent(name: str, seed: int = 0):
    import numpy as np
    import tensorflow as tf

    _, kwargs, opts = VARIANTS[name]
    if opts.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(opts["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(opts["threads"])
    if opts.get("determinism"):
        tf.config.experimental.enable_op_determinism()
    if opts.get("bf16"):
        _patch_bf16()
    import tlrl.algorithms
    from tlrl.core import Transition

    agent = getattr(tlrl.algorithms, opts.get("algo", "DDPG"))(
        "Pendulum-v1", seed=seed, batch_size=256, net_arch=[400, 300], gamma=0.98, learning_rate=1e-3,
        buffer_size=20_000, learning_starts=0, **kwargs)
    rng = np.random.default_rng(seed)  # a replay buffer of plausible Pendulum transitions
    for _ in range(5000):
        obs = rng.uniform(-1, 1, (1, 3)).astype(np.float32)
        agent.store.add(Transition(obs, rng.uniform(-2, 2, (1, 1)).astype(np.float32), -rng.uniform(0, 16, 1),
                                   obs + 0.05 * rng.standard_normal((1, 3)).astype(np.float32), np.zeros(1, bool),
                                   np.zeros(1, bool)), {})
    agent.collector.start()
    return agent


def _update(agent) -> dict:
    """One `update` (gradient_steps gradient steps and mu(s) of the envs' observations, one compiled call)."""
    return agent.update(agent.collector.obs)


def child_speed(name: str, calls: int) -> dict:
    import numpy as np

    from tlrl.off_policy import gradient_steps

    agent = _make_agent(name)
    k = gradient_steps(agent.config, agent.n_envs)
    calls = max(calls // k, 20)
    for _ in range(5):
        _update(agent)
    times, cpu = [], []
    for _ in range(calls):
        t, c = time.perf_counter(), time.process_time()
        _update(agent)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    out = {"ms_per_step": 1e3 * float(np.median(times)) / k, "cpu_ms_per_step": 1e3 * float(np.median(cpu)) / k}
    if name == "xla":
        out.update(_acting(agent, calls))
    return out


def _acting(agent, calls: int) -> dict:
    """Cost per env step of getting mu(s) when the weights change between steps."""
    import numpy as np

    obs = agent.collector.obs
    times = []
    for _ in range(calls):
        t = time.process_time()
        agent.act_batch(obs, deterministic=True)
        times.append(time.process_time() - t)
    from tlrl.layers import Dense

    dense = [m for m in agent.actor.torso.layers if isinstance(m, Dense)] + [agent.actor.head.layer]
    low, high = agent.action_space.low, agent.action_space.high

    def numpy_mu(x):
        weights = [(d.w.numpy(), d.b.numpy()) for d in dense]  # refresh: the weights changed since the last step
        for w, b in weights[:-1]:
            x = np.maximum(x @ w + b, 0.0)
        return low + (np.tanh(x @ weights[-1][0] + weights[-1][1]) + 1.0) * 0.5 * (high - low)

    np.testing.assert_allclose(numpy_mu(obs), agent.act_batch(obs, deterministic=True), atol=1e-4)
    np_times = []
    for _ in range(calls):
        t = time.process_time()
        numpy_mu(obs)
        np_times.append(time.process_time() - t)
    # the whole loop at train_freq 1 (env step, buffer add, sample, update, noise), fused vs a separate policy call;
    # CPU time of this process, blocks interleaved (wall time is at the mercy of other processes on a shared machine)
    loop = {True: [], False: []}
    for _ in range(12):  # paired blocks of 50 env steps
        for fused in (True, False):
            agent.fused_acting = fused
            c = time.process_time()
            agent.learn(50)
            loop[fused].append((time.process_time() - c) / 50)
    agent.fused_acting = True
    saved = np.array(loop[False]) - np.array(loop[True])
    return {"policy_call_ms": 1e3 * float(np.median(times)), "numpy_refresh_forward_ms": 1e3 * float(np.median(np_times)),
            "loop_step_fused_cpu_ms": 1e3 * float(np.median(loop[True])),
            "loop_step_separate_cpu_ms": 1e3 * float(np.median(loop[False])),
            "loop_fused_saves_cpu_ms": 1e3 * float(np.median(saved))}


def child_accuracy(name: str, updates: int, out_path: str) -> dict:
    import numpy as np

    agent = _make_agent(name, seed=1)  # gradient_steps=1
    for _ in range(updates):
        metrics = _update(agent)
    rng = np.random.default_rng(7)
    obs = rng.uniform(-1, 1, (512, 3)).astype(np.float32)
    actions = agent.act_batch(obs, deterministic=True)
    low, high = agent.action_space.low, agent.action_space.high
    q = agent.critic(obs, (actions - (high + low) / 2) / ((high - low) / 2))[0].numpy()  # critics see [-1, 1]
    np.savez(out_path, actions=actions, q=q)
    return {"critic_loss": metrics["critic_loss"]}


# ----- parent ---------------------------------------------------------------------------------------------------------
def run_child(args) -> dict:
    name = args[1]
    return bench_child.run([sys.executable, __file__, "--child", *args], f"variant {name}", VARIANTS[name][0])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, ROOT)
        mode, name = sys.argv[2], sys.argv[3]
        result = child_speed(name, int(sys.argv[4])) if mode == "speed" else \
            child_accuracy(name, int(sys.argv[4]), sys.argv[5])
        bench_child.report(result)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200, help="timed gradient steps per variant and round")
    parser.add_argument("--acc-updates", type=int, default=300)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()

    speed = {name: [] for name in args.variants}
    for r in range(args.rounds):
        for name in args.variants:
            res = run_child(["speed", name, str(args.calls)])
            speed[name].append(res)
            print(f"round {r} {name}: {res}", flush=True)
    acc = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ACC_VARIANTS:
            path = os.path.join(tmp, name.replace(" ", "_").replace(",", "") + ".npz")
            acc[name] = run_child(["accuracy", name, str(args.acc_updates), path])
            import numpy as np

            with np.load(path) as data:
                acc[name].update(actions=data["actions"], q=data["q"])
    text = report(speed, acc, args)
    print(text)
    if args.write:
        write_section(text)


def report(speed, acc, args) -> str:
    import numpy as np

    med = {n: statistics.median(r["ms_per_step"] for r in rows) for n, rows in speed.items()}
    cpu = {n: statistics.median(r["cpu_ms_per_step"] for r in rows) for n, rows in speed.items()}
    base = med.get("xla", next(iter(med.values())))
    lines = ["### One DDPG update (critic + actor + Polyak), batch 256, nets [400, 300], Pendulum shapes", "",
             "| variant | wall ms per gradient step (median of rounds) | rounds | vs xla | CPU ms (all threads) |",
             "|---|---|---|---|---|"]
    for n, rows in speed.items():
        each = ", ".join(f"{r['ms_per_step']:.2f}" for r in rows)
        lines.append(f"| {n} | {med[n]:.2f} | {each} | {med[n] / base:.2f} | {cpu[n]:.2f} |")
    lines += ["", "The update is one `tlrl.compiled.compile_fixed` concrete function per k: traced once, never retraced."]
    if "xla" in speed and "policy_call_ms" in speed["xla"][0]:
        rows = speed["xla"]
        m = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
        lines += ["", "Acting at train_freq 1 (weights change before every action), CPU ms per env step:", "",
                  "| path | CPU ms |", "|---|---|",
                  f"| separate TF policy call | {m('policy_call_ms'):.3f} |",
                  f"| numpy forward pass (refresh weights + forward) | {m('numpy_refresh_forward_ms'):.3f} |",
                  f"| whole loop step (CPU ms), mu(s) fused into the update call (tlrl) | {m('loop_step_fused_cpu_ms'):.2f} |",
                  f"| whole loop step (CPU ms), separate policy call | {m('loop_step_separate_cpu_ms'):.2f} |",
                  f"| saved by fusing (median of 12 paired blocks of 50 steps) | {m('loop_fused_saves_cpu_ms'):.2f} |"]
    if acc:
        ref = acc["xla"]
        scale = max(float(np.abs(ref["q"]).mean()), 1e-6)
        lines += ["", f"bf16 accuracy after {args.acc_updates} updates from the same seed and batches, against fp32 XLA "
                      f"(actions in [-2, 2]; Q relative to mean |Q| = {scale:.2f}):", "",
                  "| run | max abs action diff | mean abs action diff | mean rel Q diff | critic loss |",
                  "|---|---|---|---|---|"]
        for n, r in acc.items():
            da = np.abs(r["actions"] - ref["actions"])
            dq = float(np.abs(r["q"] - ref["q"]).mean()) / scale
            lines.append(f"| {n} | {da.max():.4f} | {da.mean():.4f} | {dq:.4f} | {r['critic_loss']:.4f} |")
    lines += ["", f"Measured {datetime.date.today()}, {args.rounds} rounds x {args.calls} gradient steps per variant, "
                  f"each variant a fresh process; {_machine()}. Other processes shared the CPU: compare within a column.",
              "Reproduce: `python scripts/bench_ddpg_update.py --rounds 3`", ""]
    return "\n".join(lines)


def _machine() -> str:
    sys.path.insert(0, HERE)
    from benchmark import machine, versions

    return f"{machine()}; {versions()}"


def write_section(text: str) -> None:
    path = os.path.join(ROOT, "BENCHMARKS.md")
    body = open(path).read() if os.path.exists(path) else "# tlrl benchmarks\n\n"
    block = f"{START}\n{text}\n{END}"
    if START in body and END in body:
        body = body[: body.index(START)] + block + body[body.index(END) + len(END):]
    else:
        body = body.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as fh:
        fh.write(body)


if __name__ == "__main__":
    main()
