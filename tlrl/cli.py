"""The `tlrl` command: train, evaluate, export and plot runs from YAML configs; list tlrl's envs.

    tlrl train CONFIG [--seed N] [--run-dir DIR] [--set key.path=value ...]
    tlrl train --resume DIR [CONFIG] [--set total_steps=N]
    tlrl eval RUN_DIR [--episodes N] [--stochastic] [--video]
    tlrl export RUN_DIR [--out DIR]
    tlrl plot RUN_DIR [RUN_DIR ...] --out FILE.png [--metric COLUMN]
    tlrl envs

A run directory (default `runs/<algo>_<env>_<timestamp>/`) holds `config.yaml` (the resolved
config), `metrics.csv`, `evaluations.csv`, TensorBoard files under `tb/`, `checkpoints/` and,
at the end, `summary.json`. Errors in the config or the command stop before anything is
written (except `error.txt` in a new run directory) and exit with code 2; Ctrl-C saves a
checkpoint and exits with code 130.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlrl", description="tlrl: reinforcement learning with TensorFlow 2.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train an agent from a YAML config",
                       description="Train from a YAML config; writes logs, checkpoints and summary.json into the "
                                   "run directory. Config keys: see `tlrl train --keys`.")
    t.add_argument("config", nargs="?", help="YAML config file (optional with --resume)")
    t.add_argument("--seed", type=int, help="override the config's seed")
    t.add_argument("--run-dir", help="run directory (default runs/<algo>_<env>_<timestamp>)")
    t.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config value (YAML scalar); a bare name means hyperparameters.NAME, "
                        "e.g. --set learning_rate=1e-3 --set env.kwargs.size=5")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--keys", action="store_true", help="list the config keys with their defaults and exit")

    e = sub.add_parser("eval", help="evaluate the latest checkpoint of a run")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=None, help="episodes (default: the config's eval.episodes)")
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")
    e.add_argument("--seed", type=int, default=None, help="seed of the first evaluation episode")
    e.add_argument("--video", action="store_true", help="record videos into RUN_DIR/videos (needs moviepy)")

    x = sub.add_parser("export", help="export the policy of a run as a TensorFlow SavedModel")
    x.add_argument("run_dir")
    x.add_argument("--out", help="output directory (default RUN_DIR/saved_model)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing export")

    pl = sub.add_parser("plot", help="plot learning curves of runs (seeds of one config as mean and band)")
    pl.add_argument("run_dirs", nargs="+")
    pl.add_argument("--out", required=True, help="image file to write (e.g. curves.png)")
    pl.add_argument("--metric", default="episode_return_mean", help="column of metrics.csv to plot")
    pl.add_argument("--title")

    sub.add_parser("envs", help="list tlrl's registered environments")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the `tlrl` command with `argv` (default: sys.argv[1:]); return the exit code."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "plot": cmd_plot, "envs": cmd_envs}
    from tlrl.checkpointing import CheckpointError
    from tlrl.config import ConfigError
    from tlrl.export import ExportError
    from tlrl.plotting import PlotError
    from tlrl.training import RunError

    try:
        return handler[args.command](args)
    except (ConfigError, CheckpointError, RunError, ExportError, PlotError) as exc:
        print(f"tlrl {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


# ----- train ------------------------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from tlrl.config import ConfigError, load_config, schema_doc
    from tlrl.training import INTERRUPTED, RunError, prepare_new, prepare_resume, run_training, write_error

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
            config = load_config(args.config, args.set, seed=args.seed)
            run = prepare_new(config, args.run_dir)
    except (ConfigError, RunError) as exc:
        if not args.resume:
            write_error(args.run_dir, str(exc))
        raise
    summary = run_training(run, progress=False if args.no_progress else None)
    if summary.get("interrupted"):
        return INTERRUPTED
    print(json.dumps({"run_dir": run.run_dir, **summary}, indent=2))
    return 0


# ----- eval -------------------------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    from tlrl.training import RunError, load_run

    if args.episodes is not None and args.episodes <= 0:
        raise RunError(f"--episodes must be positive, got {args.episodes}")
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

    from tlrl.training import RunError

    try:
        import moviepy  # noqa: F401 - RecordVideo writes mp4 files through moviepy
    except ImportError:
        raise RunError("--video needs moviepy to write mp4 files: pip install moviepy") from None
    try:
        env = agent._make_single_env(render_mode="rgb_array")
    except Exception as exc:  # noqa: BLE001 - any env failure here means no rgb_array rendering
        raise RunError(f"--video needs an env that renders with render_mode='rgb_array': {exc}") from None
    if env.render_mode != "rgb_array":
        raise RunError(f"--video needs render_mode='rgb_array'; this env renders with {env.render_mode!r}")
    folder = os.path.join(run_dir, "videos", f"step_{int(agent.num_timesteps):09d}")
    env = RecordVideo(env, folder, episode_trigger=lambda i: True, disable_logger=True)
    base = seed if seed is not None else (agent.seed or 0) + 10_000
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=base + i)
            done, total = False, 0.0
            while not done:
                obs, reward, terminated, truncated, _ = env.step(agent._to_env_action(agent.act(obs, deterministic)))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return float(np.mean(returns)), float(np.std(returns)), folder


# ----- export -----------------------------------------------------------------------------------------------------
def cmd_export(args) -> int:
    from tlrl.export import export_saved_model
    from tlrl.training import load_run

    _, agent = load_run(args.run_dir)
    out = args.out or os.path.join(args.run_dir, "saved_model")
    path = export_saved_model(agent, out, overwrite=args.overwrite)
    print(json.dumps({"saved_model": path, "num_timesteps": int(agent.num_timesteps),
                      "signature": "serving_default(observations) -> {'actions'}"}, indent=2))
    return 0


# ----- plot, envs -------------------------------------------------------------------------------------------------
def cmd_plot(args) -> int:
    from tlrl.plotting import plot_runs

    print(plot_runs(args.run_dirs, args.out, metric=args.metric, title=args.title))
    return 0


def cmd_envs(args) -> int:
    import gymnasium as gym

    import tlrl.envs  # noqa: F401 - registers tlrl/... ids

    ids = sorted(k for k in gym.registry if k.startswith("tlrl/"))
    width = max((len(i) for i in ids), default=0)
    for env_id in ids:
        spec = gym.registry[env_id]
        doc = ""
        try:
            cls = spec.entry_point if callable(spec.entry_point) else gym.envs.registration.load_env_creator(spec.entry_point)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        except Exception:  # noqa: BLE001 - the listing must not fail on one env's docstring
            pass
        limit = f"max {spec.max_episode_steps} steps" if spec.max_episode_steps else ""
        print(f"{env_id:<{width}}  {limit:<16}  {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
