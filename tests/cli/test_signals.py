"""SIGTERM (schedulers, `docker stop`, Kubernetes) and Ctrl-C stop `tlrl train` with a checkpoint at the
step they arrive, even before an off-policy agent's first update (`learning_starts`), and the run resumes."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

from .conftest import tiny_config
from tlrl.cli import main
from tlrl.logger import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUARD_SECONDS = 300.0  # only guards against a hang (a run that never logs or never stops): not a time limit


def start_train(*args, new_session=False):
    """`python -m tlrl train ARGS` in a real child process (leading its own process group if `new_session`)."""
    return subprocess.Popen([sys.executable, "-m", "tlrl", "train", *args, "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, start_new_session=new_session)


def _kill_and_fail(proc, what):
    """Kill the run (its whole process group if it leads one) and fail the test saying what never happened."""
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:  # it has exited meanwhile
        pass
    try:
        err = proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:  # a worker it started still holds its stderr
        err = "(no stderr: the pipe was still held open)"
    raise AssertionError(f"{what} within {GUARD_SECONDS:g} s; the run was killed:\n{err[-3000:]}")


def wait_for_rows(proc, run_dir, min_step=0):
    """Wait until the run has logged a metrics row at or past `min_step` (its training loop is running)."""
    path = os.path.join(run_dir, "metrics.csv")
    deadline = time.monotonic() + GUARD_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (code {proc.returncode}) early:\n{proc.stderr.read()[-3000:]}")
        try:
            rows = read_metrics(path)
        except ValueError:  # a row being written
            rows = []
        if rows and rows[-1]["num_timesteps"] >= min_step:
            return
        time.sleep(0.05)
    _kill_and_fail(proc, f"the run logged no metrics row at or past step {min_step}")


def finish(proc):
    """The stderr of the run once it has exited."""
    try:
        return proc.communicate(timeout=GUARD_SECONDS)[1]
    except subprocess.TimeoutExpired:
        _kill_and_fail(proc, "the run did not exit after the signal")


def stopped_step(stderr):
    found = re.findall(r"stopped at step (\d+)", stderr)
    assert found, stderr[-3000:]
    return int(found[-1])


def latest(run_dir):
    with open(os.path.join(run_dir, "checkpoints", "latest")) as fh:
        return fh.read().strip()


def counters(run_dir, name):
    """(vector steps, updates) of the agent saved in checkpoint `name` (BaseAgent's `__counters__` are
    vector steps, updates, step target)."""
    with np.load(os.path.join(run_dir, "checkpoints", name, "agent", "state.npz"), allow_pickle=False) as data:
        return tuple(int(x) for x in data["__counters__"][:2])


def test_sigterm_saves_a_checkpoint_at_that_step_exits_143_and_the_run_resumes_to_the_end(tmp_path, write_config):
    config = write_config(tiny_config("dqn", total_steps=10**7, every=10**7, interval=32))
    run_dir = str(tmp_path / "run")
    proc = start_train(config, "--run-dir", run_dir)
    wait_for_rows(proc, run_dir, min_step=64)  # past learning_starts (32): updates are running
    proc.send_signal(signal.SIGTERM)
    err = finish(proc)
    assert proc.returncode == 143, err[-3000:]
    step = stopped_step(err)
    assert f"Continue with: tlrl train --resume {run_dir}" in err
    assert latest(run_dir) == f"step_{step:09d}"
    with open(os.path.join(run_dir, "checkpoints", latest(run_dir), "run_state.json")) as fh:
        assert json.load(fh)["step"] == step
    assert not os.path.exists(os.path.join(run_dir, "summary.json"))
    assert main(["train", "--resume", run_dir, "--set", f"total_steps={step + 64}", "--no-progress"]) == 0
    with open(os.path.join(run_dir, "summary.json")) as fh:
        assert json.load(fh)["num_timesteps"] == step + 64


def test_sigterm_before_learning_starts_saves_a_checkpoint_at_that_step(tmp_path, write_config):
    text = tiny_config("ddpg", total_steps=2 * 10**6, every=10**7, interval=64)
    config = write_config(text.replace("learning_starts: 32", "learning_starts: 1000000"))
    run_dir = str(tmp_path / "run")
    proc = start_train(config, "--run-dir", run_dir)
    wait_for_rows(proc, run_dir)
    proc.send_signal(signal.SIGTERM)
    err = finish(proc)
    assert proc.returncode == 143, err[-3000:]
    step = stopped_step(err)
    assert 0 < step < 10**6 and latest(run_dir) == f"step_{step:09d}"
    assert counters(run_dir, latest(run_dir)) == (step, 0)  # no update had run yet
    assert main(["train", "--resume", run_dir, "--set", f"total_steps={step + 64}", "--no-progress"]) == 0
    with open(os.path.join(run_dir, "summary.json")) as fh:
        assert json.load(fh)["num_timesteps"] == step + 64


def test_sigterm_to_the_whole_process_group_stops_a_run_with_worker_processes_at_a_checkpoint(tmp_path, write_config):
    """Slurm and systemd send SIGTERM to every process of the job: A3C's `process` workers died of it, were
    restarted or failed the run (WorkerError, exit 1) before `tlrl train` could save its checkpoint."""
    text = tiny_config("a3c", total_steps=10**7, every=10**7, interval=64,
                       extra="runner: {backend: process, workers: 2}\n")
    config = write_config(text.replace("n_workers: 1, ", ""))
    run_dir = str(tmp_path / "run")
    proc = start_train(config, "--run-dir", run_dir, new_session=True)  # leads its own process group
    wait_for_rows(proc, run_dir)
    os.killpg(proc.pid, signal.SIGTERM)  # the run and its worker processes at once
    err = finish(proc)
    assert proc.returncode == 143, err[-3000:]
    assert "killed by SIGTERM" not in err and "restarted" not in err
    step = stopped_step(err)
    assert latest(run_dir) == f"step_{step:09d}"
    with open(os.path.join(run_dir, "checkpoints", latest(run_dir), "run_state.json")) as fh:
        assert json.load(fh)["step"] == step
    assert main(["train", "--resume", run_dir, "--set", f"total_steps={step + 64}", "--no-progress"]) == 0
    with open(os.path.join(run_dir, "summary.json")) as fh:
        assert json.load(fh)["num_timesteps"] >= step + 64


def _raise_at(monkeypatch, step, *signals):
    """Send `signals` to this process when the run's logger sees `step` (as a user or a scheduler would)."""
    from tlrl.logger import Logger

    real_call = Logger.__call__

    def call_then_signal(self, agent, info):
        real_call(self, agent, info)
        if info["num_timesteps"] == step:
            for sig in signals:
                signal.raise_signal(sig)

    monkeypatch.setattr(Logger, "__call__", call_then_signal)


def test_ctrl_c_before_learning_starts_saves_a_checkpoint_at_that_step(tmp_path, write_config, monkeypatch, capsys):
    text = tiny_config("dqn", total_steps=100000, every=100000, interval=32)
    config = write_config(text.replace("learning_starts: 32", "learning_starts: 50000"))
    run_dir = str(tmp_path / "run")
    _raise_at(monkeypatch, 96, signal.SIGINT)
    assert main(["train", config, "--run-dir", run_dir, "--no-progress"]) == 130
    monkeypatch.undo()
    assert "Continue with: tlrl train --resume" in capsys.readouterr().err
    assert latest(run_dir) == "step_000000096" and counters(run_dir, "step_000000096") == (96, 0)
    assert main(["train", "--resume", run_dir, "--set", "total_steps=160", "--no-progress"]) == 0
    assert [r["num_timesteps"] for r in read_metrics(os.path.join(run_dir, "metrics.csv"))] == [32, 64, 96, 128, 160]


def test_sigterm_twice_still_saves_and_exits_143_and_the_handlers_are_put_back(tmp_path, write_config, monkeypatch):
    run_dir = str(tmp_path / "run")
    # what was there before the run (not SIG_DFL: an earlier test in this process may have started Ray, whose
    # driver keeps a SIGTERM handler of its own)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    _raise_at(monkeypatch, 96, signal.SIGTERM, signal.SIGTERM)  # a repeated SIGTERM does not abort the save
    assert main(["train", write_config(tiny_config("ppo", total_steps=100000, every=100000, interval=32)),
                 "--run-dir", run_dir, "--no-progress"]) == 143
    assert latest(run_dir) == "step_000000096"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_checkpoints_fall_due_before_learning_starts(tmp_path, write_config):
    text = tiny_config("dqn", total_steps=256, every=64, interval=32)
    run_dir = str(tmp_path / "run")
    assert main(["train", write_config(text.replace("learning_starts: 32", "learning_starts: 1000")),
                 "--run-dir", run_dir, "--no-progress"]) == 0
    names = sorted(n for n in os.listdir(os.path.join(run_dir, "checkpoints")) if n.startswith("step_"))
    assert names == ["step_000000064", "step_000000128", "step_000000192", "step_000000256"]


def test_off_policy_learn_calls_back_before_learning_starts_with_empty_metrics_and_stops_there():
    from tlrl.algorithms import get_algorithm

    agent = get_algorithm("dqn")("CartPole-v1", seed=0, learning_starts=40, train_freq=4, buffer_size=200,
                                 batch_size=8, net_arch=[8])
    infos = []
    agent.learn(64, callback=lambda a, info: infos.append(info))
    assert [i["num_timesteps"] for i in infos] == list(range(4, 65, 4))
    assert all(i["metrics"] == {} and i["n_updates"] == 0 for i in infos if i["num_timesteps"] < 40)
    assert all("loss" in i["metrics"] and i["n_updates"] > 0 for i in infos if i["num_timesteps"] >= 40)
    agent.learn(1000, callback=lambda a, info: False)
    assert agent.num_timesteps == 68
