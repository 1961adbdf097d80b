"""Replay-buffer speed: tlrl vs Stable-Baselines3, measured in the same run.

A 1,000,000-transition buffer, CartPole-like transitions (4 float32 observations, a Discrete
action), 8 envs per insert, batches of 256. Times:

* insert: one `add` of an 8-env vector step (tlrl uniform and prioritized, SB3);
* sample: one batch of 256 (tlrl uniform with n_step 1 and 3, tlrl prioritized, SB3);
* update_priorities of 256 slots (tlrl prioritized; SB3 has no prioritized buffer).

Every buffer is filled to capacity through `add` first. Contenders run round-robin (the
order rotates each repetition) so drift in machine load hits all alike; the table gives the
median over repetitions of the median single-call wall-clock µs (robust to preemption on a
shared machine) and of the mean process CPU µs per call, and the ratios tlrl / SB3. SB3's `sample`
returns torch tensors: that conversion is part of its real cost and is included; tlrl's
returns numpy arrays (the agent converts at its boundary, not timed here).
Targets: uniform sample <= 100 µs, prioritized sample <= 500 µs.

Usage:
    python scripts/bench_buffers.py             # full run, prints a markdown table
    python scripts/bench_buffers.py --quick     # small buffer, few repetitions (smoke run)
    python scripts/bench_buffers.py --write     # full run, then update our section of BENCHMARKS.md
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import datetime  # noqa: E402
import itertools  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Dict, List  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from tlrl.buffers import PrioritizedReplayBuffer, ReplayBuffer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH_FILE = ROOT / "BENCHMARKS.md"
START, END = "<!-- bench_buffers:start -->", "<!-- bench_buffers:end -->"
N_ENVS, BATCH = 8, 256
OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
ACTION_SPACE = gym.spaces.Discrete(2)


def vector_steps(count: int, seed: int = 0) -> List[tuple]:
    """`count` distinct pre-made 8-env steps (obs, action, reward, next_obs, terminated, truncated)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        obs = rng.normal(size=(N_ENVS, 4)).astype(np.float32)
        out.append((obs, rng.integers(0, 2, N_ENVS), rng.normal(size=N_ENVS).astype(np.float32),
                    obs + 0.1, rng.random(N_ENVS) < 0.02, rng.random(N_ENVS) < 0.01))
    return out


def make_buffers(capacity: int, steps: List[tuple]):
    """The contenders, filled to capacity through their own `add`."""
    from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer

    uniform = ReplayBuffer(capacity, OBS_SPACE, ACTION_SPACE, n_envs=N_ENVS, seed=0)
    uniform3 = ReplayBuffer(capacity, OBS_SPACE, ACTION_SPACE, n_envs=N_ENVS, n_step=3, seed=0)
    per = PrioritizedReplayBuffer(capacity, OBS_SPACE, ACTION_SPACE, n_envs=N_ENVS, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3's memory-size warning
        sb3 = SB3ReplayBuffer(capacity, OBS_SPACE, ACTION_SPACE, device="cpu", n_envs=N_ENVS)
    infos = [{} for _ in range(N_ENVS)]
    for i in range(capacity // N_ENVS):
        obs, act, rew, nxt, term, trunc = steps[i % len(steps)]
        uniform.add(obs, act, rew, nxt, term, trunc)
        uniform3.add(obs, act, rew, nxt, term, trunc)
        per.add(obs, act, rew, nxt, term, trunc)
        sb3.add(obs, nxt, act, rew, term | trunc, infos)
    rng = np.random.default_rng(1)
    for _ in range(200):  # spread the priorities
        batch = per.sample(BATCH)
        per.update_priorities(batch.indices, rng.exponential(size=BATCH))
    return uniform, uniform3, per, sb3


def contenders(uniform, uniform3, per, sb3, steps) -> Dict[str, Callable[[], None]]:
    """name -> op: one call of the operation timed."""
    infos = [{} for _ in range(N_ENVS)]
    rng = np.random.default_rng(2)
    td = rng.exponential(size=BATCH)
    per_indices = per.sample(BATCH).indices
    cycle = itertools.cycle(steps)
    sb3_cycle = itertools.cycle([(o, n, a, r, te | tr) for o, a, r, n, te, tr in steps])
    return {
        "insert/tlrl": lambda: uniform.add(*next(cycle)),
        "insert/tlrl-per": lambda: per.add(*next(cycle)),
        "insert/sb3": lambda: sb3.add(*next(sb3_cycle), infos),
        "sample/tlrl": lambda: uniform.sample(BATCH),
        "sample/tlrl-n3": lambda: uniform3.sample(BATCH),
        "sample/tlrl-per": lambda: per.sample(BATCH),
        "sample/sb3": lambda: sb3.sample(BATCH),
        "update/tlrl-per": lambda: per.update_priorities(per_indices, td),
    }


def measure(ops: Dict[str, Callable[[], None]], reps: int, calls: int) -> Dict[str, Dict[str, List[float]]]:
    """Per repetition and contender: the median wall-clock µs of single calls, and the mean CPU µs.

    Contenders run round-robin with a rotating order. Each call is timed alone and the median
    taken, so calls preempted by other processes on the shared 2-core machine do not count;
    process CPU time over all calls is reported next to it.
    """
    names = list(ops)
    for name in names:  # warm-up
        for _ in range(max(1, calls // 10)):
            ops[name]()
    times = {name: {"wall": [], "cpu": []} for name in names}
    clock = time.perf_counter
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            op, single = ops[name], []
            c0 = time.process_time()
            for _ in range(calls):
                t0 = clock()
                op()
                single.append(clock() - t0)
            times[name]["cpu"].append((time.process_time() - c0) / calls * 1e6)
            times[name]["wall"].append(statistics.median(single) * 1e6)
    return times


def table(times: Dict[str, Dict[str, List[float]]], capacity: int, reps: int, calls: int, load: str) -> str:
    import stable_baselines3
    import torch

    wall = {k: statistics.median(v["wall"]) for k, v in times.items()}
    cpu = {k: statistics.median(v["cpu"]) for k, v in times.items()}
    rows = [
        ("insert (8-env step)", "insert/tlrl", "insert/sb3", ""),
        ("insert, prioritized", "insert/tlrl-per", "insert/sb3", ""),
        ("sample 256, uniform", "sample/tlrl", "sample/sb3", "<= 100"),
        ("sample 256, uniform, n_step=3", "sample/tlrl-n3", "sample/sb3", "<= 100"),
        ("sample 256, prioritized", "sample/tlrl-per", "sample/sb3", "<= 500"),
        ("update_priorities 256", "update/tlrl-per", None, ""),
    ]
    lines = [
        f"Replay buffers, {capacity:,} transitions of CartPole-like data (4 float32 obs, Discrete action), "
        f"{N_ENVS} envs per insert, batch {BATCH}.",
        "",
        f"- machine: `{platform.platform()}`, {platform.machine()}, {os.cpu_count()} CPUs; load average at start {load}",
        f"- versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{reps} repetitions of {calls} calls, round-robin; µs per call: median over repetitions of "
        f"the median single-call wall-clock time, and (in parentheses) of the mean process CPU time",
        "- SB3 `sample` includes its conversion to torch tensors (its real cost); tlrl returns numpy arrays.",
        "- tlrl prioritized insert also writes the new slots' max priority into the sum and min trees.",
        "",
        "| operation | tlrl µs | SB3 µs | tlrl / SB3 wall (CPU) | target µs |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, ours, theirs, target in rows:
        sb3_cell = f"{wall[theirs]:.1f} ({cpu[theirs]:.1f})" if theirs else "n/a"
        ratio = f"{wall[ours] / wall[theirs]:.2f} ({cpu[ours] / cpu[theirs]:.2f})" if theirs else "n/a"
        lines.append(f"| {label} | {wall[ours]:.1f} ({cpu[ours]:.1f}) | {sb3_cell} | {ratio} | {target} |")
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace (or append) our delimited section of BENCHMARKS.md; nothing else is touched."""
    section = f"{START}\n## Replay buffers (`scripts/bench_buffers.py`)\n\n{text}\n{END}"
    old = BENCH_FILE.read_text() if BENCH_FILE.exists() else "# Benchmarks\n"
    if START in old and END in old:
        head, rest = old.split(START, 1)
        new = head + section + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    BENCH_FILE.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small buffer, few repetitions")
    parser.add_argument("--write", action="store_true", help="update our section of BENCHMARKS.md")
    parser.add_argument("--capacity", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    capacity = args.capacity or (20_000 if args.quick else 1_000_000)
    reps = args.reps or (3 if args.quick else 9)
    calls = args.calls or (100 if args.quick else 1000)
    load = "%.2f %.2f %.2f" % os.getloadavg()
    steps = vector_steps(512)
    t0 = time.perf_counter()
    buffers = make_buffers(capacity, steps)
    print(f"filled 4 buffers of {capacity:,} transitions in {time.perf_counter() - t0:.1f} s")
    times = measure(contenders(*buffers, steps), reps, calls)
    text = table(times, capacity, reps, calls, load)
    print(text)
    if args.write:
        write_section(text)
        print(f"updated {BENCH_FILE}")


if __name__ == "__main__":
    main()
