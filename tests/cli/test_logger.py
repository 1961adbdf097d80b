"""The logger callback: one metrics row per interval, a growing header, truncation on resume,
TensorBoard scalars without the tensorboard package."""
import glob
import os

import numpy as np
import pytest

from tlrl.logger import Logger, MetricsCSV, read_metrics, truncate_events_after


def feed(log, steps, metrics=None):
    for s in steps:
        log(None, {"num_timesteps": s, "metrics": dict(metrics or {"loss": 1.0 / s}), "episode_returns": [float(s)]})


def test_a_row_per_interval_at_the_first_update_past_each_multiple(tmp_path):
    log = Logger(str(tmp_path), total_steps=1000, interval=100, tensorboard=False, progress=False)
    feed(log, range(30, 1000, 30))  # updates every 30 steps
    log.close()
    rows = read_metrics(os.path.join(tmp_path, "metrics.csv"))
    assert [r["num_timesteps"] for r in rows] == [120, 210, 300, 420, 510, 600, 720, 810, 900]
    assert rows[0]["episodes"] == 4 and rows[0]["episode_return_mean"] == pytest.approx(75.0)
    assert set(rows[0]) >= {"num_timesteps", "wall", "steps_per_s", "episode_return_mean", "episodes", "loss"}


def test_finish_writes_the_last_partial_interval(tmp_path):
    log = Logger(str(tmp_path), total_steps=250, interval=100, tensorboard=False, progress=False)
    feed(log, [100, 200, 250])
    log.finish()
    log.close()
    assert [r["num_timesteps"] for r in read_metrics(os.path.join(tmp_path, "metrics.csv"))] == [100, 200, 250]


def test_a_new_metric_extends_the_header_and_keeps_old_rows(tmp_path):
    log = Logger(str(tmp_path), total_steps=300, interval=100, tensorboard=False, progress=False)
    feed(log, [100], {"loss": 1.0})
    feed(log, [200], {"loss": 2.0, "kl": 0.5})
    log.close()
    rows = read_metrics(os.path.join(tmp_path, "metrics.csv"))
    assert rows[0]["loss"] == 1.0 and np.isnan(rows[0]["kl"]) and rows[1]["kl"] == 0.5


def test_resuming_truncates_rows_after_the_checkpoint_and_continues_without_gaps(tmp_path):
    log = Logger(str(tmp_path), total_steps=600, interval=100, tensorboard=False, progress=False)
    feed(log, [100, 200, 300])
    state = log.state()  # checkpoint at step 300
    feed(log, [400, 500])  # then the run is killed
    log.close()
    resumed = Logger(str(tmp_path), total_steps=600, interval=100, tensorboard=False, progress=False, state=state)
    feed(resumed, [400, 500, 600])
    resumed.close()
    rows = read_metrics(os.path.join(tmp_path, "metrics.csv"))
    assert [r["num_timesteps"] for r in rows] == [100, 200, 300, 400, 500, 600]
    assert rows[-1]["episodes"] == 6 and rows[-1]["wall"] >= rows[2]["wall"]


def test_a_torn_last_line_is_ignored(tmp_path):
    path = os.path.join(tmp_path, "metrics.csv")
    with open(path, "w") as fh:
        fh.write("num_timesteps,loss\n100,1.5\n200,2.")  # killed mid-write
    rows = read_metrics(path)
    assert [r["num_timesteps"] for r in rows] == [100, 200]  # "2." is still a whole number of fields
    with open(path, "w") as fh:
        fh.write("num_timesteps,loss\n100,1.5\n2")
    assert [r["num_timesteps"] for r in read_metrics(path)] == [100]
    assert MetricsCSV(path, ["num_timesteps"]).truncate_after(1000) == 1


def test_tensorboard_scalars_are_written_without_the_tensorboard_package(tmp_path):
    import tensorflow as tf

    log = Logger(str(tmp_path), total_steps=200, interval=100, tensorboard=True, progress=False)
    feed(log, [100, 200], {"loss": 0.25})
    log.log_eval(200, 10.0, 1.0)
    log.close()
    tags = {}
    for file in glob.glob(os.path.join(tmp_path, "tb", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(file):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
                assert value.metadata.plugin_data.plugin_name == "scalars"
    assert tags["train/loss"] == [(100, 0.25), (200, 0.25)]
    assert tags["eval/return_mean"] == [(200, 10.0)]
    assert "train/episode_return_mean" in tags


def _scalars(tb_dir):
    """(tag, step) of every summary in the event files of `tb_dir`, in file order."""
    import tensorflow as tf

    out = []
    for file in sorted(glob.glob(os.path.join(tb_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(file):
            out += [(value.tag, event.step) for value in event.summary.value]
    return out


def test_resuming_drops_tensorboard_steps_after_the_checkpoint(tmp_path):
    log = Logger(str(tmp_path), total_steps=600, interval=100, tensorboard=True, progress=False)
    feed(log, [100, 200, 300], {"loss": 0.5})
    state = log.state()  # checkpoint at step 300
    feed(log, [400, 500], {"loss": 0.5})  # then the run is killed
    log.log_eval(500, 1.0, 0.0)
    log.close()
    resumed = Logger(str(tmp_path), total_steps=600, interval=100, tensorboard=True, progress=False, state=state)
    feed(resumed, [400, 500, 600], {"loss": 0.5})
    resumed.close()
    seen = _scalars(os.path.join(tmp_path, "tb"))
    assert len(seen) == len(set(seen)), "a step was logged twice to TensorBoard"
    assert [s for tag, s in seen if tag == "train/loss"] == [100, 200, 300, 400, 500, 600]
    assert not [s for tag, s in seen if tag == "eval/return_mean"]  # the eval at 500 came after the checkpoint


def test_truncating_event_files_keeps_the_rest_and_survives_a_torn_record(tmp_path):
    tb = os.path.join(tmp_path, "tb")
    log = Logger(str(tmp_path), total_steps=300, interval=100, tensorboard=True, progress=False)
    feed(log, [100, 200, 300], {"loss": 0.5})
    log.close()
    (file,) = glob.glob(os.path.join(tb, "events.out.tfevents.*"))
    before = os.path.getmtime(file)
    assert truncate_events_after(tb, 300) == 0 and os.path.getmtime(file) == before  # nothing to drop: untouched
    with open(file, "ab") as fh:
        fh.write(b"\x10\x00\x00")  # killed mid-write: a torn record
    assert truncate_events_after(tb, 200) > 0
    assert sorted({s for _, s in _scalars(tb)}) == [100, 200]


def test_progress_bar_runs(tmp_path, capsys):
    log = Logger(str(tmp_path), total_steps=200, interval=100, tensorboard=False, progress=True)
    feed(log, [100, 200])
    log.close()
    assert "200/200" in capsys.readouterr().err
