"""Reference-result benchmark: tlrl vs Stable-Baselines3 on the same tasks, same settings.

Each task lives in `scripts/benchmarks/<task>.py` and defines
`TITLE`, `TARGET` (text), `run_tlrl(seed) -> dict` and optionally `run_sb3(seed) -> dict`,
each dict holding `eval_mean`, `eval_std`, `steps`, `wall` (seconds of training, not evaluation).
Every run happens in a fresh subprocess, tlrl and SB3 alternating per seed, so neither
warms the other's caches. The table goes to stdout and, with --write, to BENCHMARKS.md.

    python scripts/benchmark.py ppo_cartpole --seeds 3 --write
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def available_tasks():
    return sorted(f[:-3] for f in os.listdir(os.path.join(HERE, "benchmarks")) if f.endswith(".py") and not f.startswith("_"))


def run_child(task: str, framework: str, seed: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", task, framework, str(seed)], capture_output=True,
                         text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{framework} {task} seed {seed} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for mod in ("tensorflow", "tensorflow_probability", "gymnasium", "numpy", "torch", "stable_baselines3"):
        try:
            parts.append(f"{mod} {importlib.import_module(mod).__version__}")
        except Exception:  # noqa: BLE001 - a missing peer is reported as such
            parts.append(f"{mod} n/a")
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


def table(task: str, mod, results: dict) -> str:
    lines = [f"### {mod.TITLE}", "", f"Target: {mod.TARGET}", "",
             "| framework | seed | eval mean ± std (20 ep) | env steps | wall s | steps/s |", "|---|---|---|---|---|---|"]
    for fw, rows in results.items():
        for r in rows:
            lines.append(f"| {fw} | {r['seed']} | {r['eval_mean']:.3g} ± {r['eval_std']:.3g} | {r['steps']} | "
                         f"{r['wall']:.1f} | {r['steps'] / r['wall']:.0f} |")
    summary = []
    for fw, rows in results.items():
        summary.append(f"{fw}: median wall {statistics.median(r['wall'] for r in rows):.1f} s, evals [{fmt(rows)}]")
    if "sb3" in results and "tlrl" in results:
        ratio = statistics.median(r["wall"] for r in results["tlrl"]) / statistics.median(r["wall"] for r in results["sb3"])
        summary.append(f"**wall ratio tlrl / SB3 (medians): {ratio:.2f}**")
    lines += ["", "; ".join(summary), "",
              f"Measured {datetime.date.today()} on {machine()}; {versions()}.",
              f"Reproduce: `python scripts/benchmark.py {task} --seeds {len(next(iter(results.values())))}`", ""]
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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        task, framework, seed = sys.argv[2], sys.argv[3], int(sys.argv[4])
        mod = importlib.import_module(f"benchmarks.{task}")
        result = getattr(mod, f"run_{framework}")(seed)
        print("RESULT " + json.dumps(result), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", help=f"tasks (default: all): {', '.join(available_tasks())}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-sb3", action="store_true", help="skip the Stable-Baselines3 runs")
    parser.add_argument("--write", action="store_true", help="write the tables into BENCHMARKS.md")
    args = parser.parse_args()
    for task in args.tasks or available_tasks():
        mod = importlib.import_module(f"benchmarks.{task}")
        frameworks = ["tlrl"] + ([] if args.no_sb3 or not hasattr(mod, "run_sb3") else ["sb3"])
        results = {fw: [] for fw in frameworks}
        for seed in range(args.seeds):
            for fw in frameworks:
                r = run_child(task, fw, seed)
                r["seed"] = seed
                results[fw].append(r)
                print(f"{task} {fw} seed {seed}: eval {r['eval_mean']:.1f} ± {r['eval_std']:.1f}, "
                      f"{r['steps']} steps, {r['wall']:.1f} s", flush=True)
        text = table(task, mod, results)
        print(text)
        if args.write:
            write_section(task, text)


if __name__ == "__main__":
    main()
