"""`tlrl sweep --backend ray`: the workers are Ray tasks (a local Ray) that pull trials from the same storage (one here: each
starts TensorFlow, seconds on CI's two cores)."""
import importlib.util
import os

import pytest

from tlrl.cli import main

from .helpers import states, study_trials, write_sweep

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")


def test_ray_tasks_run_the_trials_of_a_sweep(tmp_path):
    sweep = write_sweep(tmp_path, """\
        overrides: {total_steps: 512}
        search_space:
          learning_rate: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
        budget: {n_trials: 2}
        sampler: {type: random, seed: 3}
        """)
    out = tmp_path / "sweep"
    assert main(["sweep", sweep, "--backend", "ray", "--workers", "1", "--out", str(out)]) == 0
    trials = study_trials(str(out))
    assert states(trials) == {"COMPLETE": 2}
    workers = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials}
    assert str(os.getpid()) not in workers  # run in Ray's worker processes, not here
    for t in trials:
        assert os.path.isfile(out / "trials" / f"{t.number:04d}" / "seed_0" / "summary.json")
