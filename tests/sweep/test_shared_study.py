"""Two `tlrl sweep` processes on one PostgreSQL study share its trials, none run twice; one of them killed by
SIGKILL mid-trial: the heartbeat marks its trial failed, the other process runs it again (same values), and
the study ends with `n_trials` complete trials."""
import os
import signal
import uuid

from tlrl.sweep import SweepError

from .helpers import study_trials, tlrl_process, wait_until, write_sweep

N_TRIALS = 8  # enough trials that the test sees the first process inside one of its later ones


def test_two_processes_share_a_postgres_study_and_a_killed_trial_runs_again(postgres_url, tmp_path):
    name = f"shared_{uuid.uuid4().hex[:8]}"
    sweep = write_sweep(tmp_path, f"""\
        name: {name}
        search_space:
          learning_rate: {{type: loguniform, low: 1.0e-4, high: 3.0e-3}}
          n_epochs: {{type: int, low: 1, high: 3}}
        budget: {{n_trials: {N_TRIALS}}}
        sampler: {{type: random}}
        pruner: {{type: none}}
        failures: {{heartbeat_interval: 1, grace_period: 3, max_retry: 2}}
        """)
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    first = tlrl_process(tmp_path / "a.log", "sweep", sweep, "--storage", postgres_url, "--out", dirs[0])
    second = tlrl_process(tmp_path / "b.log", "sweep", sweep, "--storage", postgres_url, "--out", dirs[1])

    def of_first(state):
        return [t for t in _trials(dirs[0], postgres_url) if t.user_attrs.get("worker", "").endswith(f":{first.pid}")
                and t.state.name == state and (state != "RUNNING" or t.user_attrs.get("run_dirs"))]

    try:  # the first process has finished a trial and is training the next one: kill it there
        assert wait_until(lambda: of_first("COMPLETE") and of_first("RUNNING"), first), _log(tmp_path / "a.log")
        killed = of_first("RUNNING")[0]
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert second.wait() == 0, _log(tmp_path / "b.log")
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    trials = study_trials(dirs[1], postgres_url)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == N_TRIALS, [(t.number, t.state.name) for t in trials]
    assert [t.number for t in trials if t.state.name == "FAIL"] == [killed.number]
    again = [t for t in complete if t.system_attrs.get("failed_trial") == killed.number]
    assert len(again) == 1 and again[0].params == killed.params  # the same values, run by the other process
    assert again[0].user_attrs["worker"].endswith(f":{second.pid}")
    ran_by = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in complete}
    assert ran_by == {str(first.pid), str(second.pid)}  # both processes ran trials of the one study
    for t in complete:  # each complete trial ran once, in one process's sweep directory
        places = [d for d in dirs if os.path.isfile(os.path.join(d, "trials", f"{t.number:04d}", "seed_0",
                                                                 "summary.json"))]
        assert len(places) == 1, (t.number, places)
        assert t.user_attrs["run_dirs"] == [os.path.join(os.path.abspath(places[0]), "trials", f"{t.number:04d}",
                                                         "seed_0")]


def _trials(sweep_dir, url):
    try:
        return study_trials(sweep_dir, url)
    except SweepError:  # the sweep has not made its directory or its study yet
        return []


def _log(path) -> str:
    return f"{path}:\n{open(path).read()[-3000:]}"
