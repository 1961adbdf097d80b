"""Reference-result benchmark: tlrl vs Stable-Baselines3 (torch) and SBX (JAX) on the same tasks, same settings.

Each task lives in `scripts/benchmarks/<task>.py` and defines `TITLE`, `TARGET` (text),
`run_tlrl(seed) -> dict` and optionally the peers `run_sb3(seed) -> dict` and `run_sbx(seed) -> dict`,
each dict holding `eval_mean`, `eval_std`, `steps`, `wall` (seconds of training, not evaluation).
Every run happens in a fresh subprocess, tlrl and the peers alternating per seed, so none warms
another's caches. The table (per-seed rows, median wall ratios tlrl / each peer) goes to stdout and,
with --write, to the task's section of BENCHMARKS.md, which it replaces: one section is one run.

    python scripts/benchmark.py ppo_cartpole --seeds 3 --write
    python scripts/benchmark.py dqn_cartpole --seeds 1 --peers sbx      # skip the slow SB3 side
    python scripts/benchmark.py dqn_cartpole --seeds 1 --steps-scale 0.05  # smoke run, never written

`--steps-scale` shrinks the budgets of tasks that build them with `benchmarks._common.scaled`
(the step count and learning_starts) via the TLRL_BENCH_SCALE environment variable of the children.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
from importlib import metadata
import os
import platform
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_child  # noqa: E402 - scripts/ is on the path now
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def available_tasks():
    return sorted(f[:-3] for f in os.listdir(os.path.join(HERE, "benchmarks")) if f.endswith(".py") and not f.startswith("_"))


#: Peer frameworks, by the suffix of their `run_<peer>` function, and how tables name them.
PEERS = {"sb3": "SB3", "sbx": "SBX"}
#: Distributions named in the version line: tlrl's stack, then the peers'.
PACKAGES = ("tensorflow", "tensorflow-probability", "gymnasium", "numpy", "torch", "stable-baselines3", "jax",
            "jaxlib", "flax", "optax", "sbx-rl")


def run_child(task: str, framework: str, seed: int) -> dict:
    return bench_child.run([sys.executable, __file__, "--child", task, framework, str(seed)],
                           f"{framework} {task} seed {seed}")


def versions() -> str:
    """Python and the installed version of each of `PACKAGES` (read from the metadata, nothing imported)."""
    parts = [f"python {platform.python_version()}"]
    for dist in PACKAGES:
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} n/a")
    return ", ".join(parts)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores"


def fmt(rows):
    return " ".join(f"{r['eval_mean']:.3g}" for r in rows)


def median_wall(rows) -> float:
    return statistics.median(r["wall"] for r in rows)


def table(task: str, mod, results: dict, reproduce: str) -> str:
    lines = [f"### {mod.TITLE}", "", f"Target: {mod.TARGET}", "",
             "| framework | seed | eval mean ± std (20 ep) | env steps | wall s | steps/s |", "|---|---|---|---|---|---|"]
    for fw, rows in results.items():
        for r in rows:
            lines.append(f"| {fw} | {r['seed']} | {r['eval_mean']:.3g} ± {r['eval_std']:.3g} | {r['steps']} | "
                         f"{r['wall']:.1f} | {r['steps'] / r['wall']:.0f} |")
    summary = [f"{fw}: median wall {median_wall(rows):.1f} s, evals [{fmt(rows)}]" for fw, rows in results.items()]
    for peer, name in PEERS.items():
        if peer in results and "tlrl" in results:
            ratio = median_wall(results["tlrl"]) / median_wall(results[peer])
            summary.append(f"**wall ratio tlrl / {name} (medians): {ratio:.2f}**")
    setup = ""
    if "sbx" in results:
        from benchmarks._common import sbx_xla_flags

        setup = f" SBX ran with XLA_FLAGS=\"{sbx_xla_flags()}\" (empty: XLA's defaults) and 1 torch thread."
    lines += ["", "; ".join(summary), "",
              f"Measured {datetime.date.today()} on {machine()}; {versions()}.{setup}",
              f"Reproduce: `{reproduce}`", ""]
    return "\n".join(lines)


def write_section(task: str, text: str) -> None:
    path = os.path.join(ROOT, "BENCHMARKS.md")
    start, end = f"<!-- benchmark:{task}:start -->", f"<!-- benchmark:{task}:end -->"
    body = open(path).read() if os.path.exists(path) else "# tlrl benchmarks\n\n"
    block = f"{start}\n{text}\n{end}"
    if start in body and end in body:
        body = body[: body.index(start)] + block + body[body.index(end) + len(end):]
    else:
        body = body.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as fh:
        fh.write(body)


def parse_args() -> argparse.Namespace:
    """The command line, checked before any run starts: known tasks and peers, a scale in (0, 1], no scaled --write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", help=f"tasks (default: all): {', '.join(available_tasks())}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated peers to run where a task defines them, or 'none' (default: "
                             f"{','.join(PEERS)})")
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="multiply each task's step budget and learning_starts by this (0, 1] for a smoke run")
    parser.add_argument("--write", action="store_true", help="write the tables into BENCHMARKS.md")
    args = parser.parse_args()
    unknown = sorted(set(args.tasks) - set(available_tasks()))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; choose from: {', '.join(available_tasks())}")
    args.peers = [] if args.peers.strip() in ("", "none") else [p.strip() for p in args.peers.split(",")]
    bad = [p for p in args.peers if p not in PEERS]
    if bad:
        parser.error(f"unknown peer(s) {', '.join(bad)}; --peers takes a comma-separated subset of "
                     f"{', '.join(PEERS)}, or 'none'")
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if not 0 < args.steps_scale <= 1:
        parser.error(f"--steps-scale must be in (0, 1], got {args.steps_scale}")
    if args.write and args.steps_scale != 1.0:
        parser.error("--write records reference results; drop --steps-scale (smoke runs are not written)")
    return args


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        task, framework, seed = sys.argv[2], sys.argv[3], int(sys.argv[4])
        mod = importlib.import_module(f"benchmarks.{task}")
        result = getattr(mod, f"run_{framework}")(seed)
        bench_child.report(result)
        return
    args = parse_args()
    if args.steps_scale != 1.0:
        os.environ["TLRL_BENCH_SCALE"] = repr(args.steps_scale)  # before the task modules compute their budgets
        print(f"steps scaled by {args.steps_scale}: a smoke run, not a benchmark", flush=True)
    for task in args.tasks or available_tasks():
        mod = importlib.import_module(f"benchmarks.{task}")
        frameworks = ["tlrl"] + [peer for peer in args.peers if hasattr(mod, f"run_{peer}")]
        results = {fw: [] for fw in frameworks}
        for seed in range(args.seeds):
            for fw in frameworks:
                r = run_child(task, fw, seed)
                r["seed"] = seed
                results[fw].append(r)
                print(f"{task} {fw} seed {seed}: eval {r['eval_mean']:.1f} ± {r['eval_std']:.1f}, "
                      f"{r['steps']} steps, {r['wall']:.1f} s", flush=True)
        peers = "" if args.peers == list(PEERS) else f" --peers {','.join(args.peers) or 'none'}"
        scale = "" if args.steps_scale == 1.0 else f" --steps-scale {args.steps_scale}"
        text = table(task, mod, results, f"python scripts/benchmark.py {task} --seeds {args.seeds}{peers}{scale}")
        print(text)
        if args.write:
            write_section(task, text)


if __name__ == "__main__":
    main()
