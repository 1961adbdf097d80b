"""`tlrl train` stops loudly on NaN and infinity: a NaN hyperparameter before anything is built (exit 2), a
run that diverges at the update that diverged (exit 3) with every checkpoint written before it intact;
metrics.csv and TensorBoard keep NaN and inf points as such."""
import glob
import os
import re

import numpy as np

from .conftest import tiny_config
from tlrl.cli import EXIT_ERROR, EXIT_NON_FINITE, main
from tlrl.logger import Logger, read_metrics
from tlrl.run_dir import load_run


def test_a_nan_learning_rate_is_refused_before_the_run_is_built(tmp_path, capsys):
    config = tmp_path / "dqn.yaml"
    config.write_text(tiny_config("dqn", total_steps=128, every=32))
    run_dir = tmp_path / "run"
    code = main(["train", str(config), "--run-dir", str(run_dir), "--set", "learning_rate=.nan", "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR, err
    assert "learning_rate" in err and "nan" in err and "finite" in err and "Traceback" not in err
    assert not os.path.exists(run_dir / "checkpoints") and not os.path.exists(run_dir / "metrics.csv")


DIVERGING = """\
algo: dqn
env:
  id: "nonfinite_envs:GoesBad"       # tests/nonfinite_envs.py: reward 1e30 after 250 steps
  kwargs: {after: 250, what: reward, value: 1.0e+30, tag: TAG}
hyperparameters: {learning_starts: 32, buffer_size: 500, batch_size: 16, train_freq: 4, gradient_steps: 2,
                  net_arch: [16, 16], target_update_interval: 40, loss: mse, jit_compile: false}
total_steps: 1000
seed: 0
eval: {episodes: 2, deterministic: true}
checkpoint: {every_steps: 32, keep: 2}
log: {interval: 16, tensorboard: false, progress: false}
"""


def test_a_diverging_run_stops_with_exit_3_and_keeps_every_checkpoint_written_before(tmp_path, capsys):
    config = tmp_path / "diverging.yaml"
    config.write_text(DIVERGING.replace("TAG", str(tmp_path)))  # steps counted across the env restarts
    run_dir = tmp_path / "run"
    code = main(["train", str(config), "--run-dir", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_NON_FINITE, err
    assert "Traceback" not in err and "learning rate" in err
    found = re.search(r"DQN: the update at env step (\d+) \(learning rate 0.0001\) produced loss = (inf|nan)", err)
    assert found, err
    step = int(found.group(1))
    assert step > 3 * 32  # (the env's step count includes the 50 steps `check_env` takes on its probe env)
    assert not os.path.exists(run_dir / "summary.json")
    ckpts = sorted(glob.glob(str(run_dir / "checkpoints" / "step_*")))
    steps = [int(os.path.basename(c)[5:]) for c in ckpts]
    last_good = (step - 1) // 32 * 32  # the last checkpoint boundary before the failing update
    assert steps == [last_good - 32, last_good], (steps, step)  # keep=2: the newest two, none pruned for a bad one
    for ckpt in ckpts:
        _, agent = load_run(str(run_dir), ckpt)
        assert agent.num_timesteps == int(os.path.basename(ckpt)[5:])
        variables = [v for obj in agent.trackables().values() for v in getattr(obj, "variables", [obj])]
        assert variables  # weights, target weights, optimizer slots
        for v in variables:
            if v.dtype.is_floating:
                assert np.all(np.isfinite(v.numpy())), (ckpt, v.name)
    rows = read_metrics(str(run_dir / "metrics.csv"))
    assert rows and max(r["num_timesteps"] for r in rows) < step  # the broken update was not logged


def test_metrics_csv_writes_nan_and_inf_literally_and_reads_them_back(tmp_path):
    log = Logger(str(tmp_path), total_steps=300, interval=100, tensorboard=False, progress=False)
    log(None, {"num_timesteps": 100, "metrics": {"loss": float("nan"), "grad_norm": float("inf"),
                                                 "q_mean": float("-inf")}, "episode_returns": []})
    log(None, {"num_timesteps": 200, "metrics": {"loss": 1.5, "grad_norm": 2.0, "q_mean": 0.0, "kl": 0.25},
               "episode_returns": [3.0]})  # a new column: the file is rewritten, the literal cells stay
    log.close()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    cells = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    assert (cells[0]["loss"], cells[0]["grad_norm"], cells[0]["q_mean"]) == ("nan", "inf", "-inf")
    assert cells[0]["episode_return_mean"] == "nan" and cells[0]["kl"] == ""  # no episode yet; no such metric yet
    rows = read_metrics(str(tmp_path / "metrics.csv"))
    assert np.isnan(rows[0]["loss"]) and rows[0]["grad_norm"] == np.inf and rows[0]["q_mean"] == -np.inf
    assert rows[1]["loss"] == 1.5 and rows[1]["kl"] == 0.25


def test_tensorboard_keeps_nan_and_inf_points(tmp_path):
    import tensorflow as tf

    log = Logger(str(tmp_path), total_steps=200, interval=100, tensorboard=True, progress=False)
    log(None, {"num_timesteps": 100, "metrics": {"loss": float("nan")}, "episode_returns": []})
    log(None, {"num_timesteps": 200, "metrics": {"loss": float("inf")}, "episode_returns": []})
    log.close()
    points = []
    for file in glob.glob(os.path.join(tmp_path, "tb", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(file):
            points += [(event.step, float(tf.make_ndarray(v.tensor))) for v in event.summary.value
                       if v.tag == "train/loss"]
    assert [s for s, _ in points] == [100, 200]
    assert np.isnan(points[0][1]) and points[1][1] == np.inf

