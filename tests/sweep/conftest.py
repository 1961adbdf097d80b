"""The PostgreSQL server of the shared-study tests: $TLRL_TEST_POSTGRES_URL (`.ci/run` starts one), else a
throwaway one started by `.ci/postgres.sh` when the server binaries are installed, else the tests skip."""
import contextlib
import json
import os
import subprocess

import pytest

from tlrl.cli import main

from .helpers import ROOT, write_sweep

SCRIPT = os.path.join(ROOT, ".ci", "postgres.sh")


@pytest.fixture(scope="session")
def postgres_url():
    url = os.environ.get("TLRL_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    started = subprocess.run(["bash", SCRIPT, "start"], capture_output=True, text=True)
    if started.returncode == 3:  # no server binaries
        pytest.skip(f"no PostgreSQL server: set TLRL_TEST_POSTGRES_URL, or install the server (.ci/postgres.sh: "
                    f"{started.stderr.strip()})")
    assert started.returncode == 0, f".ci/postgres.sh start failed:\n{started.stderr}"
    values = dict(line.split("=", 1) for line in started.stdout.split())
    try:
        yield values["TLRL_TEST_POSTGRES_URL"]
    finally:
        subprocess.run(["bash", SCRIPT, "stop", values["TLRL_PG_DIR"]], capture_output=True)


LOCAL_SWEEP = """\
search_space:
  learning_rate: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
  n_epochs: {type: int, low: 1, high: 3}
  net_arch: {type: categorical, choices: [[16], [16, 16]]}
seeds: [0, 1]
budget: {n_trials: 3}
sampler: {type: random, seed: 0}
"""


@pytest.fixture(scope="session")
def local_sweep(tmp_path_factory):
    """(sweep directory, the summary it printed) of `tlrl sweep --workers 2` on SQLite: 3 trials of 2 seeds."""
    folder = tmp_path_factory.mktemp("local")
    out = folder / "sweep"
    with open(folder / "stdout.json", "w") as fh, contextlib.redirect_stdout(fh):
        code = main(["sweep", write_sweep(folder, LOCAL_SWEEP), "--workers", "2", "--out", str(out)])
    assert code == 0
    return str(out), json.loads((folder / "stdout.json").read_text())
