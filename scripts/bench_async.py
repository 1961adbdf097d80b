"""Scaling of tlrl's asynchronous runner: A3C and Ape-X style DQN on CartPole-v1, 1 and 2 workers per backend.

For each task, backend ("sync", "thread", "process", "ray") and number of workers, one training
run in a fresh subprocess measures:

- startup: seconds until the first applied update (worker processes import TF and trace their
  functions; a Ray instance is started before the clock, as a cluster would be running
  already). Process and Ray workers (A3C) and actors (Ape-X) are started and made ready
  first (`keep_workers=True`, `start_workers()`), as in a long run: otherwise the second one,
  ready a few tenths of a second after the first, would leave one worker training alone at
  the start of the "after startup" clock;
- env steps/s and the learner's gradient steps/s from the first to the last applied update
  (training time only: the periodic evaluations, the startup and the shutdown are not counted);
- steps and seconds until a 10-episode deterministic evaluation reaches 475 (checked every
  1k env steps for A3C, 5k for Ape-X; "-" if never within the budget): training time with
  the startup, and from the first applied update (all workers running).

`--channel ROUNDS` measures the Ray pool's transport, its socket (`tlrl.runner.ray_channel`), against
plain Ray actor calls to the same actor class in the same run: wall and learner CPU per call.

`--kept ROUNDS` measures what kept workers save: A3C trained in 10 `learn` calls (as `tlrl
train` does between checkpoints) with `keep_workers` False and True, on "process" and "ray".

Tasks (the hyperparameters of `scripts/benchmarks/a3c_cartpole.py` and `dqn_cartpole.py`):

- `a3c`: A3C, per worker 8 envs x 5 steps, Adam with learning rate 1e-3 decaying linearly over
  the 200k-step budget. With 1 worker on "sync"/"thread" the worker trains the shared network
  in the caller's thread (one fused call per rollout); on "process"/"ray" it is remote.
- `apex`: DQN with the zoo settings (train_freq 256, gradient_steps 128, 256-256 net) fed by
  actors (`tlrl.runner.ApeX`), paced like `DQN.learn` (one 128-step phase per 256 env steps,
  actors at most 2 phases ahead): the same gradient steps per env step as synchronous DQN.
  Actors follow the agent's epsilon schedule (`exploration="agent"`), so 1 worker on "sync"
  is plain DQN.
- `apex-free`: the same with `max_update_lag=None`: actors never wait and the learner trains
  continuously on what has arrived (Ape-X proper), skipping phases it cannot keep up with.

    python scripts/bench_async.py                    # everything, 1 seed, prints the table
    python scripts/bench_async.py --tasks a3c --backends process,ray --write

`--write` replaces the `bench_async` section of BENCHMARKS.md (re-read just before writing).
The load average of the machine is printed with the table: on a shared machine the numbers
move with it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_child  # noqa: E402 - scripts/ is on the path now
import bench_sections  # noqa: E402
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TASKS = ("a3c", "apex", "apex-free")
BACKENDS = ("sync", "thread", "process", "ray")
THRESHOLD = 475.0
BUDGET = {"a3c": 200_000, "apex": 100_000, "apex-free": 100_000}
EVAL_EVERY = {"a3c": 1_000, "apex": 5_000, "apex-free": 5_000}
START, END = "<!-- bench_async:start -->", "<!-- bench_async:end -->"


def load_average() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "n/a"


def cpu_times() -> tuple:
    """(total, idle) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def busy_cores(first: tuple, last: tuple) -> float:
    """Cores in use on the whole machine (ours and anything else) between two `cpu_times`."""
    total, idle = last[0] - first[0], last[1] - first[1]
    return (os.cpu_count() or 1) * (1.0 - idle / total) if total > 0 else float("nan")


# ----- one run (in a child process) -----------------------------------------------------------
def make_learner(task: str, backend: str, workers: int, seed: int, keep: bool = False):
    """`(agent, learn, start)` of one configuration: `learn(steps, callback)` trains; `start()` starts
    the kept process or Ray workers ahead of training (`keep`), returning the seconds it took."""
    if task == "a3c":
        from benchmarks.a3c_cartpole import SETTINGS

        from tlrl.algorithms import A3C

        agent = A3C("CartPole-v1", seed=seed, n_workers=workers, backend=backend, learning_rate="lin_1e-3",
                    net_arch=(64, 64), activation="tanh", keep_workers=keep, **SETTINGS)
        return agent, agent.learn, agent.start_workers
    from benchmarks.dqn_cartpole import NET_ARCH, SETTINGS

    from tlrl.algorithms import DQN
    from tlrl.runner import ApeX

    agent = DQN("CartPole-v1", seed=seed, net_arch=tuple(NET_ARCH), **SETTINGS)
    apex = ApeX(agent, workers=workers, backend=backend, exploration="agent", block_steps=32, pull_every=256,
                max_update_lag=None if task == "apex-free" else 2, keep_workers=keep)
    return agent, apex.learn, apex.start_workers


def run_child(task: str, backend: str, workers: int, seed: int, budget: int, eval_every: int) -> dict:
    """One run; `eval_every=0`: no evaluation (throughput only)."""
    if backend == "ray":
        from tlrl.runner import init_ray

        init_ray(num_cpus=os.cpu_count())  # a running cluster: not on the clock
    keep = backend in ("process", "ray")  # remote workers: started ahead of training, all ready at once
    agent, learn, start = make_learner(task, backend, workers, seed, keep)
    from tlrl.off_policy import gradient_steps

    per_update = 1 if task == "a3c" else gradient_steps(agent.config, agent.n_envs)  # gradient steps per update
    ready = start() if keep else 0.0
    clock = {"paused": 0.0, "first": None, "updates": 0, "reached": None, "evals": []}
    next_eval = [eval_every]
    t0 = time.perf_counter()

    def callback(agent_, info):
        now = time.perf_counter()
        clock["updates"] += 1
        if clock["first"] is None:
            clock["first"], clock["first_steps"] = now - t0, info["num_timesteps"]
            clock["cpu_first"] = clock["cpu_last"] = cpu_times()
            clock["cpu_at"] = now
        elif not eval_every and now - clock["cpu_at"] >= 0.2:  # throughput runs: how busy the machine was
            clock["cpu_last"], clock["cpu_at"] = cpu_times(), now
        clock["last"], clock["last_steps"] = now - t0 - clock["paused"], info["num_timesteps"]
        if eval_every and info["num_timesteps"] >= next_eval[0]:
            next_eval[0] += eval_every
            trained = ready + now - t0 - clock["paused"]
            mean, _ = agent_.evaluate(10, deterministic=True)
            clock["paused"] += time.perf_counter() - now
            clock["evals"].append((info["num_timesteps"], mean))
            if mean >= THRESHOLD:
                clock["reached"] = (info["num_timesteps"], trained)
                return False
        return None

    learn(budget, callback=callback)
    train = ready + time.perf_counter() - t0 - clock["paused"]
    # first to last applied update: the workers' startup and shutdown are not throughput
    steady = max(clock["last"] - clock["first"], 1e-9)
    steps_after = clock["last_steps"] - clock["first_steps"]
    final = agent.evaluate(20, deterministic=True)[0] if eval_every else float("nan")
    if keep:
        learn.__self__.close()  # the kept workers (the agent's or ApeX's)
    return {"task": task, "backend": backend, "workers": workers, "seed": seed, "startup": ready + clock["first"],
            "steps_per_second": steps_after / steady, "updates_per_second": (clock["updates"] - 1) * per_update / steady,
            "steps": agent.num_timesteps, "train_seconds": train,
            "reached_steps": clock["reached"][0] if clock["reached"] else None,
            "reached_seconds": clock["reached"][1] if clock["reached"] else None,
            "final_eval": final, "evals": clock["evals"],
            "busy_cores": busy_cores(clock["cpu_first"], clock["cpu_last"]) if not eval_every else None}


def run_kept_child(backend: str, keep: bool, seed: int, calls: int, steps: int) -> dict:
    """A3C with 2 workers trained in `calls` learn calls of `steps` env steps; wall seconds of it all."""
    if backend == "ray":
        from tlrl.runner import init_ray

        init_ray(num_cpus=os.cpu_count())
    agent, learn, _ = make_learner("a3c", backend, 2, seed, keep)
    t0 = time.perf_counter()
    for _ in range(calls):
        learn(steps)
    agent.close()
    return {"backend": backend, "keep": keep, "wall": time.perf_counter() - t0, "steps": agent.num_timesteps}


def kept(backends, rounds: int, calls: int = 10, steps: int = 5_000) -> str:
    """Paired: the same A3C training in `calls` learn calls with and without kept workers."""
    lines = ["", f"Kept workers (A3C, 2 workers, {calls} `learn` calls of {steps // 1000}k steps each, as `tlrl train` "
             f"between checkpoints; wall seconds, median of {rounds} paired rounds):", "",
             "| backend | keep_workers=False s | keep_workers=True s | saved per call s | load at start |",
             "|---|---|---|---|---|"]
    for backend in backends:
        res = {False: [], True: []}
        load = load_average()
        for r in range(rounds):
            for keep in ((False, True) if r % 2 == 0 else (True, False)):
                out = spawn(None, backend, 2, r, 0, 0, kept=(keep, calls, steps))
                res[keep].append(out.get("wall"))
                print(f"kept {backend} keep={keep} round {r}: {out.get('wall', out.get('error'))}", flush=True)
        pairs = [(a, b) for a, b in zip(res[False], res[True]) if a and b]
        if not pairs:
            lines.append(f"| {backend} | failed ||| {load} |")
            continue
        off, on = statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)
        lines.append(f"| {backend} | {off:.1f} | {on:.1f} | {(off - on) / (calls - 1):.1f} | {load} |")
    return "\n".join(lines)


def spawn(task, backend, workers, seed, budget, eval_every, kept=None) -> dict:
    if kept is None:
        args = [sys.executable, __file__, "--child", json.dumps([task, backend, workers, seed, budget, eval_every])]
    else:
        args = [sys.executable, __file__, "--child-kept", json.dumps([backend, kept[0], seed, kept[1], kept[2]])]
    try:
        return bench_child.run(args, f"{backend} {task} seed {seed}")
    except bench_child.ChildFailed as exc:
        return {"task": task, "backend": backend, "workers": workers, "seed": seed, "error": exc.last_line[:300]}


# ----- the table ----------------------------------------------------------------------------------
def fmt(x, spec=".0f"):
    return "-" if x is None else format(x, spec)


def table(rows, loads) -> str:
    lines = ["## Asynchronous runner scaling (`scripts/bench_async.py`)", "",
             "CartPole-v1; per configuration one fresh process per seed, medians over seeds. Speed-up: env steps/s "
             "over the same backend's 1-worker run. Startup: seconds to the first applied update (process and Ray "
             "workers and actors are all started and ready first, `start_workers()`, counted here). Time to 475: training seconds "
             "(startup included, evaluations excluded) until a 10-episode deterministic evaluation, run every "
             f"{EVAL_EVERY['a3c'] / 1000:g}k (A3C) or {EVAL_EVERY['apex'] // 1000}k (Ape-X) env steps, reached 475; "
             "after startup: the same, counted from the first applied update.", "",
             "| task | backend | workers | startup s | env steps/s | speed-up | gradient steps/s | steps to 475 | "
             "time to 475 s | after startup s | final eval (20 ep) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["task"], r["backend"], r["workers"]), []).append(r)
    base = {}
    for (task, backend, workers), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        if workers == 1 and ok:
            base[(task, backend)] = statistics.median(r["steps_per_second"] for r in ok)
    for (task, backend, workers), rs in sorted(groups.items(), key=lambda kv: (TASKS.index(kv[0][0]),
                                                                               BACKENDS.index(kv[0][1]), kv[0][2])):
        ok = [r for r in rs if "error" not in r]
        if not ok:
            lines.append(f"| {task} | {backend} | {workers} | failed: {rs[0]['error']} ||||||||")
            continue
        med = lambda key: statistics.median(r[key] for r in ok)  # noqa: E731
        reached = [r for r in ok if r["reached_seconds"] is not None]
        sps = med("steps_per_second")
        speedup = sps / base[(task, backend)] if (task, backend) in base else None
        rs_steps = statistics.median(r["reached_steps"] for r in reached) if len(reached) == len(ok) else None
        rs_secs = statistics.median(r["reached_seconds"] for r in reached) if len(reached) == len(ok) else None
        rs_after = statistics.median(r["reached_seconds"] - r["startup"] for r in reached) \
            if len(reached) == len(ok) else None
        note = "" if len(reached) == len(ok) else f" ({len(reached)}/{len(ok)} seeds reached 475)"
        lines.append(f"| {task} | {backend} | {workers} | {med('startup'):.1f} | {sps:.0f} | "
                     f"{fmt(speedup, '.2f')}x | {med('updates_per_second'):.1f} | {fmt(rs_steps)} | "
                     f"{fmt(rs_secs, '.1f')}{note} | {fmt(rs_after, '.1f')} | {statistics.median(r['final_eval'] for r in ok):.0f} |")
    lines += paired_time_to_475(rows)
    per_task = {t: sorted({r["seed"] for r in rows if r["task"] == t}) for t in TASKS}
    seeds = "; ".join(f"{t} {s}" for t, s in per_task.items() if s)
    lines += ["", f"Seeds: {seeds}. Load average (1, 5, 15 min) at start: {loads[0]}; at end: {loads[1]} "
              f"(a 2-core VM: its load average stays near 1 while top shows the CPUs idle, so the cores busy "
              f"column of the paired scaling below is the measure of load). Measured {datetime.date.today()}.", ""]
    return "\n".join(lines)


PAIRS = {"sync": ("sync", "thread"), "process": ("process", "process"), "ray": ("ray", "ray")}  # 1 worker, 2 workers


def paired_time_to_475(rows) -> list:
    """Per seed, 2 workers' time to 475 over 1 worker's (the same seed, so the same first worker):
    after startup, and with it. The 1-worker reference of "thread" is "sync" (one thread worker
    runs in the caller's thread)."""
    out = []
    for task in TASKS:
        for one, two in PAIRS.values():
            by = {w: {r["seed"]: r for r in rows if r["task"] == task and r["backend"] == b and r["workers"] == w
                      and "error" not in r and r["reached_seconds"] is not None} for w, b in ((1, one), (2, two))}
            seeds = sorted(set(by[1]) & set(by[2]))
            if not seeds:
                continue
            after = [(by[2][s]["reached_seconds"] - by[2][s]["startup"]) / (by[1][s]["reached_seconds"] - by[1][s]["startup"])
                     for s in seeds]
            total = [by[2][s]["reached_seconds"] / by[1][s]["reached_seconds"] for s in seeds]
            out.append(f"| {task} | {two} x2 / {one} x1 | {statistics.median(after):.2f} "
                       f"({sum(x < 1 for x in after)}/{len(seeds)}) | {statistics.median(total):.2f} "
                       f"({sum(x < 1 for x in total)}/{len(seeds)}) | {', '.join(f'{x:.2f}' for x in after)} |")
    if not out:
        return []
    return ["", "Time to 475, 2 workers over 1, paired by seed (median of the per-seed ratios; in brackets: seeds "
            "where 2 workers were faster, of the seeds both reached 475):", "",
            "| task | pair | after startup | with startup | per seed, after startup |", "|---|---|---|---|---|",
            *out]


def scaling(backends, tasks, rounds: int, budget: int) -> str:
    """Paired throughput: 1 and 2 workers alternated round by round (so load drift hits both),
    no evaluation; the ratio of each round's 2-worker to 1-worker steady env steps/s."""
    lines = ["", "Paired scaling (no evaluation, steady env steps/s after startup; 1 and 2 workers alternated in each "
             f"round, {rounds} rounds of {budget // 1000}k steps; speed-up = median of the per-round ratios):", "",
             "| task | backend | 1 worker steps/s | 2 workers steps/s | speed-up (rounds) | cores busy, 1 / 2 workers |",
             "|---|---|---|---|---|---|"]
    for task in tasks:
        for backend in backends:
            res, busy = {1: [], 2: []}, {1: [], 2: []}
            for r in range(rounds):
                for w in ((1, 2) if r % 2 == 0 else (2, 1)):
                    out = spawn(task, backend, w, r, budget, 0)
                    res[w].append(out.get("steps_per_second"))
                    busy[w].append(out.get("busy_cores"))
                    print(f"scaling {task} {backend} x{w} round {r}: {out.get('steps_per_second', out.get('error'))}",
                          flush=True)
            pairs = [(a, b) for a, b in zip(res[1], res[2]) if a and b]
            ratios = [b / a for a, b in pairs]
            if not ratios:
                lines.append(f"| {task} | {backend} | failed |||||")
                continue
            lines.append(f"| {task} | {backend} | {statistics.median(a for a, _ in pairs):.0f} | "
                         f"{statistics.median(b for _, b in pairs):.0f} | {statistics.median(ratios):.2f}x "
                         f"({', '.join(f'{x:.2f}' for x in ratios)}) | {_median_of(busy[1])} / {_median_of(busy[2])} |")
    lines += ["", "Cores busy: the whole machine's CPU use (/proc/stat, all processes) from the first to the last "
              "update, median over rounds; 2.0 is all of this 2-core machine."]
    return "\n".join(lines)


def _median_of(values) -> str:
    ok = [v for v in values if v is not None and math.isfinite(v)]
    return f"{statistics.median(ok):.2f}" if ok else "-"


def write_section(text: str, append: bool = False) -> None:
    bench_sections.write_section(START, END, text, append)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--workers", default="1,2")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for every task")
    p.add_argument("--task-seeds", default="", help="per-task override, e.g. a3c=3,apex=2")
    p.add_argument("--budget", type=int, default=None, help="env steps per run (default: per task)")
    p.add_argument("--scaling", type=int, default=0, metavar="ROUNDS",
                   help="only the paired 1-vs-2-worker throughput measurement, this many rounds")
    p.add_argument("--kept", type=int, default=0, metavar="ROUNDS",
                   help="only the kept-workers measurement (A3C, process and Ray), this many paired rounds")
    p.add_argument("--channel", type=int, default=0, metavar="ROUNDS",
                   help="only the Ray transport measurement: the pool's socket against plain Ray actor calls")
    p.add_argument("--append", action="store_true", help="append to the bench_async section instead of replacing it")
    p.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-kept", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.channel:
        from bench_ray_transport import channel

        text = channel(args.channel, load_average)
        print(text)
        if args.write:
            write_section(text, append=True)
        return
    if args.child or args.child_kept:
        out = run_child(*json.loads(args.child)) if args.child else run_kept_child(*json.loads(args.child_kept))
        bench_child.report(out)
        return
    tasks, backends = args.tasks.split(","), args.backends.split(",")
    if args.kept:
        text = kept([b for b in backends if b in ("process", "ray")], args.kept)
        print(text)
        if args.write:
            write_section(text, append=args.append)
        return
    workers = [int(w) for w in args.workers.split(",")]
    if args.scaling:
        text = scaling([b for b in backends if b != "sync"], tasks, args.scaling, args.budget or 60_000)
        print(text)
        if args.write:
            write_section(text, append=args.append)
        return
    loads = [load_average()]
    rows = []
    task_seeds = {t: args.seeds for t in tasks}
    task_seeds.update({k: int(v) for k, v in (kv.split("=") for kv in args.task_seeds.split(",") if kv)})
    for seed in range(max(task_seeds.values())):
        for task in tasks:
            if seed >= task_seeds[task]:
                continue
            for backend in backends:
                for w in workers:
                    if backend == "sync" and (w > 1 or task == "apex-free"):
                        continue  # sync runs actors in turn: not a speed configuration
                    if backend == "thread" and w == 1 and task == "a3c":
                        continue  # one thread worker runs in the caller's thread: the sync run
                    budget = args.budget or BUDGET[task]
                    t = time.perf_counter()
                    r = spawn(task, backend, w, seed, budget, EVAL_EVERY[task])
                    rows.append(r)
                    print(f"{task} {backend} x{w} seed {seed}: "
                          + (r["error"] if "error" in r else
                             f"{r['steps_per_second']:.0f} steps/s, startup {r['startup']:.1f}s, "
                             f"475 at {r['reached_steps']} steps / {fmt(r['reached_seconds'], '.1f')}s "
                             f"({fmt(r['reached_seconds'] and r['reached_seconds'] - r['startup'], '.2f')}s after startup), "
                             f"final {r['final_eval']:.0f}")
                          + f" [{time.perf_counter() - t:.0f}s, load {load_average()}]", flush=True)
    loads.append(load_average())
    text = table(rows, loads)
    print(text)
    if args.write:
        write_section(text, append=args.append)


if __name__ == "__main__":
    main()
