"""The `tlrl` command: train, evaluate, export and plot runs from YAML configs; list tlrl's envs.

    tlrl train CONFIG [--seed N] [--run-dir DIR] [--set key.path=value ...]
    tlrl train --resume DIR [--set total_steps=N]
    tlrl eval RUN_DIR [--episodes N] [--stochastic] [--video]
    tlrl export RUN_DIR [--out DIR]
    tlrl plot RUN_DIR [RUN_DIR ...] --out FILE.png [--metric COLUMN]
    tlrl plot SWEEP_DIR [--out FOLDER]
    tlrl sweep SWEEP.yaml [--workers N] [--backend process|ray] [--storage URL] [--out DIR]
    tlrl sweep --resume DIR
    tlrl runs [DIR ...] [--sort KEY] [--filter KEY=VALUE] [--best] [--json]
    tlrl envs

Every command takes `--verbose` (`-v`) to show TensorFlow's start-up log, hidden by default
(`tlrl.quiet_import`). A run directory (default `runs/<algo>_<env>_<timestamp>/`) holds
`config.yaml` (the resolved config), `command.json` (the CONFIG, --set and --seed it started
with), `metrics.csv`, `evaluations.csv`, TensorBoard files under `tb/`, `checkpoints/` and,
at the end, `summary.json`. Errors in the config or the command stop before anything is
written (except `error.txt` in a new run directory, which a later run there replaces) and
exit with code 2; Ctrl-C or SIGTERM saves a
checkpoint and exits with code 130 or 143. Training that produces NaN or infinity (a loss, a gradient,
a weight, an env's observation or reward) stops at once with a message and exit code 3, without
checkpointing the broken state: the checkpoints written before stay.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

EXIT_ERROR = 2
#: Exit code of a run stopped because a loss, gradient, weight, observation or reward became NaN or infinite.
EXIT_NON_FINITE = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlrl", description="tlrl: reinforcement learning with TensorFlow 2.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log (hidden by default)")

    t = sub.add_parser("train", parents=[common], help="train an agent from a YAML config",
                       description="Train from a YAML config; writes logs, checkpoints and summary.json into the "
                                   "run directory. Config keys: see `tlrl train --keys`.")
    t.add_argument("config", nargs="?", help="YAML config file (leave it out with --resume: the run keeps its own)")
    t.add_argument("--seed", type=int, help="override the config's seed")
    t.add_argument("--run-dir", help="run directory (default runs/<algo>_<env>_<timestamp>)")
    t.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config value (YAML scalar): a top-level key or a dotted path into one "
                        "(--set total_steps=50000 --set env.kwargs.size=5), or a bare name, which means "
                        "hyperparameters.NAME (--set learning_rate=1e-3)")
    t.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR from its latest checkpoint as it was configured (its config, "
                        "--seed and --set); a CONFIG, --seed or --set given with it may change only total_steps "
                        "(--set total_steps=N trains longer) and the eval, log and checkpoint.keep settings")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--keys", action="store_true", help="list the config keys with their defaults and exit")

    e = sub.add_parser("eval", parents=[common], help="evaluate the latest checkpoint of a run")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=None, help="episodes (default: the config's eval.episodes)")
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")
    e.add_argument("--seed", type=int, default=None, help="seed of the first evaluation episode")
    e.add_argument("--video", action="store_true", help='record videos into RUN_DIR/videos (needs moviepy and pygame: pip install "tlrl[video]")')

    x = sub.add_parser("export", parents=[common], help="export the policy of a run as a TensorFlow SavedModel")
    x.add_argument("run_dir")
    x.add_argument("--out", help="output directory (default RUN_DIR/saved_model)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing export")

    pl = sub.add_parser("plot", parents=[common],
                        help="plot learning curves of runs (seeds of one config as mean and band), or a sweep")
    pl.add_argument("run_dirs", nargs="+", help="run directories, or one sweep directory")
    pl.add_argument("--out", help="image file to write (e.g. curves.png); for a sweep, a folder (default "
                                  "SWEEP_DIR/plots)")
    pl.add_argument("--metric", default="episode_return_mean", help="column of metrics.csv to plot")
    pl.add_argument("--title")

    sw = sub.add_parser("sweep", parents=[common], help="search hyperparameters and seeds with Optuna",
                        description="Run the trials of a sweep file (docs/sweeps.md): each trial and seed is an "
                                    "ordinary run directory under the sweep directory.")
    sw.add_argument("sweep", nargs="?", help="sweep file (leave it out with --resume)")
    sw.add_argument("--workers", type=int, default=1, help="trials at once: worker processes (or Ray tasks)")
    sw.add_argument("--backend", choices=["process", "ray"], default="process", help="where workers run")
    sw.add_argument("--storage", metavar="URL", help="the study's database, shared by every process that joins it, "
                                                    "e.g. postgresql://USER:PASSWORD@HOST:5432/DB (default "
                                                    "DIR/study.db)")
    sw.add_argument("--resume", metavar="DIR", help="continue the sweep in DIR (completed trials stay)")
    sw.add_argument("--out", metavar="DIR", help="sweep directory (default sweeps/<name>_<timestamp>)")

    r = sub.add_parser("runs", parents=[common], help="list runs and sweep trials (reads, changes nothing)")
    r.add_argument("dirs", nargs="*", help="run or sweep directories, or folders holding them (default: runs, "
                                           "sweeps)")
    r.add_argument("--sort", metavar="KEY", help="sort by a column (eval, steps, wall, objective, a swept key, ...)")
    r.add_argument("--reverse", action="store_true", help="sort in descending order")
    r.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="keep rows where KEY is VALUE")
    r.add_argument("--best", action="store_true", help="print only the best run directory (for tlrl export)")
    r.add_argument("--json", action="store_true", help="the rows as JSON")
    r.add_argument("--storage", metavar="URL", help="the storage of a sweep whose password is not stored")

    sub.add_parser("envs", parents=[common], help="list tlrl's registered environments")
    return p


#: The exceptions that mean a mistake in the command, its config or its run directory: printed as one line,
#: exit code 2. Named as (module, class) and looked up by `_is_user_error`, so that `tlrl envs` and
#: `tlrl --help` do not import TensorFlow through the modules that define them.
USER_ERRORS = (("tlrl.config_schema", "ConfigError"), ("tlrl.checkpointing", "CheckpointError"),
               ("tlrl.run_dir", "RunError"), ("tlrl.export", "ExportError"), ("tlrl.plotting", "PlotError"),
               ("tlrl.envs.make", "EnvSpecError"), ("tlrl.runs_table", "RunsError"))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the `tlrl` command with `argv` (default: sys.argv[1:]); return the exit code."""
    from tlrl.quiet_import import hide_tensorflow_startup_log, show_tensorflow_startup_log

    args = _parser().parse_args(argv)
    _search_current_directory()
    if args.verbose:
        show_tensorflow_startup_log()
    else:
        hide_tensorflow_startup_log()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "plot": cmd_plot, "envs": cmd_envs,
               "sweep": cmd_sweep, "runs": cmd_runs}
    try:
        return handler[args.command](args)
    except Exception as exc:
        finite = sys.modules.get("tlrl.finite")
        if finite is not None and isinstance(exc, finite.NonFiniteError):  # training diverged: no traceback
            print(f"tlrl {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_NON_FINITE
        if not _is_user_error(exc):
            raise
        print(f"tlrl {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _search_current_directory() -> None:
    """Let configs name env modules in the current directory ("mypkg.envs:MyEnv"), as `python -m tlrl`
    does. Appended, so a file there never shadows an installed package."""
    cwd = os.getcwd()
    if not any(os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.append(cwd)


def _is_user_error(exc: BaseException) -> bool:
    """Whether `exc` is one of `USER_ERRORS`; only modules imported so far can have raised one."""
    return isinstance(exc, tuple(getattr(sys.modules[m], name) for m, name in USER_ERRORS if m in sys.modules))


# ----- train ------------------------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from tlrl.config import ConfigError, check_config, load_config, schema_doc
    from tlrl.run_dir import INTERRUPTED, TERMINATED, RunError, prepare_new, prepare_resume, write_error
    from tlrl.training import run_training

    if args.keys:
        print("\n".join(schema_doc()))
        return 0
    try:
        if args.resume:
            if args.run_dir and os.path.abspath(args.run_dir) != os.path.abspath(args.resume):
                raise RunError("--run-dir and --resume name different directories; --resume DIR continues DIR")
            run = prepare_resume(args.resume, args.config, args.set, args.seed)
        else:
            if not args.config:
                raise RunError("train needs a CONFIG file (or --resume DIR)")
            config = load_config(args.config, args.set, seed=args.seed, check=False)  # no TF imported yet
            _prestart_workers(config)
            check_config(config)
            run = prepare_new(config, args.run_dir, config_path=args.config, overrides=args.set, seed=args.seed)
    except (ConfigError, RunError) as exc:
        if not args.resume:
            write_error(args.run_dir, str(exc))
        raise
    summary = run_training(run, progress=False if args.no_progress else None)
    if summary.get("interrupted"):
        return TERMINATED if summary.get("signal") == "SIGTERM" else INTERRUPTED
    print(json.dumps({"run_dir": run.run_dir, **summary}, indent=2))
    return 0


def _prestart_workers(config) -> None:
    """Start the run's worker processes or Ray actors now (`tlrl.runner.process.prestart`,
    `tlrl.runner.ray_host.prestart`), before this process imports TF: they import it at the same time
    (seconds), and the pool that the run builds takes them. Called before the config's algorithm checks,
    so the count is bounded here; a run that does not use them stops them at exit."""
    n = config.runner.workers or config.hyperparameters.get("n_workers", 1)
    if type(n) is not int or not 0 < n <= 4 * (os.cpu_count() or 1):
        return
    if config.runner.backend == "process":
        from tlrl.runner.process import prestart

        prestart(n)
    elif config.runner.backend == "ray":
        from tlrl.runner.ray_host import prestart

        prestart(n, address=config.runner.ray_address)


# ----- eval -------------------------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    from tlrl.run_dir import RunError, load_run

    if args.episodes is not None and args.episodes <= 0:
        raise RunError(f"--episodes must be positive, got {args.episodes}")
    if args.seed is not None and args.seed < 0:
        raise RunError(f"--seed must be a non-negative integer (seeds are >= 0), got {args.seed}")
    config, agent = load_run(args.run_dir)
    episodes = args.episodes or config.eval.episodes
    deterministic = not args.stochastic
    if args.video:
        mean, std, folder = _evaluate_with_video(agent, args.run_dir, episodes, deterministic, args.seed)
    else:
        mean, std = agent.evaluate(episodes, deterministic, seed=args.seed)
        folder = None
    result = {"run_dir": args.run_dir, "num_timesteps": int(agent.num_timesteps), "episodes": episodes,
              "deterministic": deterministic, "eval_return_mean": mean, "eval_return_std": std}
    if folder:
        result["video_folder"] = folder
    print(json.dumps(result, indent=2))
    return 0


def _evaluate_with_video(agent, run_dir: str, episodes: int, deterministic: bool, seed: Optional[int]):
    import numpy as np
    from gymnasium.wrappers import RecordVideo

    from tlrl.run_dir import RunError
    from tlrl.spaces import to_env_action

    try:
        import moviepy  # noqa: F401 - RecordVideo writes mp4 files through moviepy
    except ImportError:
        raise RunError(f"--video needs moviepy to write mp4 files: {VIDEO_PIP} (or pip install moviepy)") from None
    try:
        env = agent.make_env(render_mode="rgb_array")
    except Exception as exc:  # noqa: BLE001 - any env failure here means no rgb_array rendering
        raise RunError(f"--video needs an env that renders with render_mode='rgb_array': {exc}") from None
    if env.render_mode != "rgb_array":
        raise RunError(f"--video needs render_mode='rgb_array'; this env renders with {env.render_mode!r}")
    base = seed if seed is not None else (agent.seed or 0) + 10_000
    _check_renders(env, base)
    videos = os.path.join(run_dir, "videos")
    folder = os.path.join(videos, f"step_{int(agent.num_timesteps):09d}")
    returns = []
    try:
        env = RecordVideo(env, folder, episode_trigger=lambda i: True, disable_logger=True)
        for i in range(episodes):
            obs, _ = env.reset(seed=base + i)
            done, total = False, 0.0
            while not done:
                action = to_env_action(agent.action_space, agent.act(obs, deterministic))
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    except BaseException:
        env.close()
        _remove_empty_folders(folder, videos)
        raise
    env.close()
    return float(np.mean(returns)), float(np.std(returns)), folder


#: What installs everything `tlrl eval --video` needs (moviepy for mp4 files, pygame for the classic-control frames).
VIDEO_PIP = 'pip install "tlrl[video]"'


def _check_renders(env, seed: int) -> None:
    """Render one frame before any video folder exists; a missing package becomes a RunError with the pip line."""
    from gymnasium.error import DependencyNotInstalled

    from tlrl.run_dir import RunError

    try:
        env.reset(seed=seed)
        env.render()
    except (DependencyNotInstalled, ImportError) as exc:
        env.close()
        raise RunError(f"--video cannot render this env, a package is missing ({exc}); {VIDEO_PIP} installs what "
                       f"rendering needs") from None
    except Exception as exc:  # noqa: BLE001 - any failure here means no frames to record
        env.close()
        raise RunError(f"--video cannot render this env with render_mode='rgb_array': {exc}") from None


def _remove_empty_folders(*folders: str) -> None:
    """Remove each of `folders` that exists and is empty (innermost first), so a failed recording leaves none."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:  # missing or not empty: keep it
            pass


# ----- export -----------------------------------------------------------------------------------------------------
def cmd_export(args) -> int:
    from tlrl.export import export_saved_model
    from tlrl.run_dir import load_run

    _, agent = load_run(args.run_dir)
    out = args.out or os.path.join(args.run_dir, "saved_model")
    path = export_saved_model(agent, out, overwrite=args.overwrite)
    print(json.dumps({"saved_model": path, "num_timesteps": int(agent.num_timesteps),
                      "signature": "serving_default(observations) -> {'actions'}"}, indent=2))
    return 0


# ----- plot, envs -------------------------------------------------------------------------------------------------
def cmd_plot(args) -> int:
    from tlrl.plotting import plot_dirs

    for path in plot_dirs(args.run_dirs, args.out, metric=args.metric, title=args.title):
        print(path)
    return 0


# ----- sweep, runs ------------------------------------------------------------------------------------------------
def cmd_sweep(args) -> int:
    from tlrl.sweep import run_sweep

    code, summary = run_sweep(args.sweep, resume=args.resume, out=args.out, storage=args.storage,
                              workers=args.workers, backend=args.backend)
    print(json.dumps(summary, indent=2))
    return code


def cmd_runs(args) -> int:
    from tlrl.runs_table import runs_command

    print(runs_command(args.dirs, sort=args.sort, reverse=args.reverse, filters=args.filter, best=args.best,
                       as_json=args.json, storage=args.storage))
    return 0


def cmd_envs(args) -> int:
    import inspect

    import gymnasium as gym

    import tlrl.envs  # noqa: F401 - registers tlrl/... ids

    ids = sorted(k for k in gym.registry if k.startswith("tlrl/"))
    width = max((len(i) for i in ids), default=0)
    for env_id in ids:
        spec = gym.registry[env_id]
        doc = ""
        try:
            cls = spec.entry_point if callable(spec.entry_point) else gym.envs.registration.load_env_creator(spec.entry_point)
            doc = " ".join(inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].split())  # the summary, unwrapped
        except Exception:  # noqa: BLE001 - the listing must not fail on one env's docstring
            pass
        limit = f"max {spec.max_episode_steps} steps" if spec.max_episode_steps else ""
        print(f"{env_id:<{width}}  {limit:<16}  {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
