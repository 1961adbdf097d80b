"""Wall time of the same training on two source trees of tlrl, side by side in one run.

Used to measure what a change costs (for example the finiteness checks on every update and
every vector-env step): the reference tasks of `scripts/benchmarks/` run in fresh child
processes, alternating between this tree and a baseline tree (a checkout of an earlier
commit), round after round, so load on the machine hits both alike. Each child imports tlrl
from its own tree (a small import hook maps `tlrl`, `tlrl.algorithms` and `tlrl.envs` to the
tree's folders, as setup.cfg's `package_dir` does) and runs that tree's own task module.

    git worktree add /tmp/tlrl-base e428491
    python scripts/bench_revisions.py --baseline /tmp/tlrl-base --tasks ppo_cartpole,dqn_cartpole --rounds 3

The eval results must be identical between the trees when the change does not touch the
numerics (same seed, same single-threaded order of events); the table shows both.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_child  # noqa: E402 - scripts/ is on the path now

from benchmark import machine, versions  # noqa: E402 - same machine/version line as the other tables

CHILD = r"""
import importlib.abc, importlib.util, json, os, sys
root = sys.argv[1]
folders = {"tlrl": "tlrl", "tlrl.algorithms": "algorithms", "tlrl.envs": "envs"}

class TreeFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in folders:
            return None
        folder = os.path.join(root, folders[name])
        return importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])

sys.meta_path.insert(0, TreeFinder())
sys.path.insert(0, os.path.join(root, "scripts"))  # task modules import each other as `benchmarks.<task>`
import tlrl
assert os.path.dirname(tlrl.__file__) == os.path.join(root, "tlrl"), tlrl.__file__
module = importlib.import_module("benchmarks." + sys.argv[2])
print("RESULT " + json.dumps(module.run_tlrl(int(sys.argv[3]))), flush=True)
"""


def run_child(tree: str, task: str, seed: int) -> dict:
    return bench_child.run([sys.executable, "-c", CHILD, os.path.abspath(tree), task, str(seed)], f"{task} on {tree}",
                           {"TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=os.path.abspath(tree))


def git_head(tree: str) -> str:
    try:
        return subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="source tree of the earlier revision (a git worktree)")
    parser.add_argument("--tree", default=ROOT, help="source tree of the new revision (default: this one)")
    parser.add_argument("--tasks", default="ppo_cartpole,dqn_cartpole")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    parser.add_argument("--title", default="Cost of a change: the same training on two revisions")
    args = parser.parse_args()

    trees = {"baseline": args.baseline, "new": args.tree}
    lines = [f"### {args.title}", "",
             f"Baseline {git_head(args.baseline)}, new {git_head(args.tree)} (working tree); seed {args.seed}, "
             f"{args.rounds} alternating rounds, each run a fresh process; wall = agent construction + training.", "",
             "| task | baseline wall s (rounds) | new wall s (rounds) | new / baseline (medians) | eval baseline | eval new |",
             "|---|---|---|---|---|---|"]
    for task in args.tasks.split(","):
        walls = {name: [] for name in trees}
        evals = {name: [] for name in trees}
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(list(trees)))
            for name in order:
                res = run_child(trees[name], task, args.seed)
                walls[name].append(res["wall"])
                evals[name].append(res["eval_mean"])
                print(f"{task} round {r} {name}: wall {res['wall']:.1f} s, eval {res['eval_mean']:.1f}", flush=True)
        med = {name: statistics.median(w) for name, w in walls.items()}
        lines.append(f"| {task} | {med['baseline']:.1f} ({', '.join(f'{w:.1f}' for w in walls['baseline'])}) | "
                     f"{med['new']:.1f} ({', '.join(f'{w:.1f}' for w in walls['new'])}) | "
                     f"**{med['new'] / med['baseline']:.3f}** | {evals['baseline'][0]:.1f} | {evals['new'][0]:.1f} |")
    lines += ["", f"Measured {datetime.date.today()} on {machine()}; {versions()}.",
              f"Command: `python scripts/bench_revisions.py --baseline BASE --tasks {args.tasks} --rounds {args.rounds}`", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(os.path.join(ROOT, "BENCHMARKS.md"), "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
