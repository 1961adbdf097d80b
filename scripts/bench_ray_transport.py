"""The Ray pool's transport, its socket (`tlrl.runner.ray_channel`), against plain Ray actor calls to the same actor
class, in one Ray instance: wall and learner CPU per call. Run through `python scripts/bench_async.py --channel ROUNDS`
(which writes the table into its BENCHMARKS.md section), or alone: `python scripts/bench_ray_transport.py ROUNDS`."""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import bench_child  # scripts/ is on the path: run from there or imported by bench_async

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_channel_child(calls: int, floats: int, order: list) -> dict:
    """Round trips to one Ray actor (`RayHost`, the same class both ways) that adds the sent array to its own
    (`floats` float32 each way, an A3C update's weights and gradients): over the pool's socket (`RayPool`) and
    as plain Ray actor calls (`actor.call.remote(...)`, `ray.get`). Wall and this process's CPU (all its
    threads, Ray's included) per call, after 100 warm-up calls."""
    import functools

    import numpy as np

    from tlrl.runner import init_ray
    from tlrl.runner.host import pack_factory
    from tlrl.runner.ray_host import RayHost, actor_options
    from tlrl.runner.ray_pool import RayPool

    ray = init_ray(num_cpus=os.cpu_count())
    factory = functools.partial(np.zeros, floats, np.float32)  # the worker: an array; "__add__" is its method
    weights = np.random.default_rng(0).standard_normal(floats).astype(np.float32)
    out = {}
    for transport in order:
        if transport == "socket":
            pool = RayPool(lambda i, attempt: factory, 1)
            pool.start()

            def call():
                pool.submit(0, "__add__", weights)
                (ev,) = pool.poll()
                return ev.value
        else:
            actor = ray.remote(RayHost).options(**actor_options()).remote(pack_factory(factory, "ray"), 1)

            def call():
                return ray.get(actor.call.remote("__add__", (weights,)))[1]
        for _ in range(100):
            assert np.array_equal(call(), weights)
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            call()
        out[transport] = {"wall_us": (time.perf_counter() - w0) / calls * 1e6,
                          "cpu_us": (time.process_time() - c0) / calls * 1e6}
        if transport == "socket":
            pool.close()
        else:
            ray.kill(actor)
    return out


def channel(rounds: int, load_average, calls: int = 3000, floats: int = 10_000) -> str:
    """The Ray pool's socket against plain Ray actor calls, alternated in one Ray instance per round."""
    res = {"socket": [], "ray": []}
    load = load_average()
    for r in range(rounds):
        order = ["socket", "ray"] if r % 2 == 0 else ["ray", "socket"]
        args = [sys.executable, __file__, "--child", json.dumps([calls, floats, order])]
        got = bench_child.run(args, f"channel round {r}")
        for t in res:
            res[t].append(got[t])
        print(f"channel round {r}: {got}", flush=True)
    med = {t: {k: statistics.median(x[k] for x in v) for k in ("wall_us", "cpu_us")} for t, v in res.items()}
    return "\n".join([
        "", f"Ray transport: one call = {floats} float32 to the actor and back ({floats * 4 // 1000} kB each way), "
        f"{calls} calls per transport per round, {rounds} rounds alternating the order, medians; CPU is the "
        f"learner process's (all its threads). Load at start {load}, at end {load_average()}.", "",
        "| transport | wall per call (µs) | learner CPU per call (µs) |", "|---|---|---|",
        f"| socket (`RayPool`) | {med['socket']['wall_us']:.0f} | {med['socket']['cpu_us']:.0f} |",
        f"| plain Ray actor calls | {med['ray']['wall_us']:.0f} | {med['ray']['cpu_us']:.0f} |",
        f"| plain / socket | {med['ray']['wall_us'] / med['socket']['wall_us']:.2f}x | "
        f"{med['ray']['cpu_us'] / med['socket']['cpu_us']:.2f}x |"])


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        bench_child.report(run_channel_child(*json.loads(sys.argv[2])))
    else:
        from bench_async import load_average

        print(channel(int(sys.argv[1]), load_average))
