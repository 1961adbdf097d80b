"""Shared test setup: quiet TF logs, one CPU thread pair, seeds reset per test."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


def user_module_on_path(tmp_path, monkeypatch, name: str, source: str):
    """Write `source` as module `name` into `tmp_path` and put it on sys.path (spawned workers inherit
    sys.path, so they can import it too); yields the name and forgets the module afterwards."""
    import sys
    import textwrap

    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    tf.random.set_seed(0)
    yield


@pytest.fixture(autouse=True)
def _sigint_handler_is_put_back():
    """A test (or the code under test) that installs a SIGINT handler must put the previous one back:
    a leaked handler would swallow a later Ctrl-C (and hang the tests that send one)."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"the SIGINT handler was left changed to {after!r} (it was {before!r})")


@pytest.fixture
def record_published():
    """`record_published(learner)` -> a dict version -> weights, filled with every update applied
    through `learner.apply_flat` (the path of every threaded, process or Ray gradient worker)."""

    def record(learner):
        published = {}
        apply = learner.apply_flat

        def recording_apply(flat_grads, learning_rate):
            flat, info = apply(flat_grads, learning_rate)
            published[info["version"]] = [w.copy() for w in learner.layout.unpack(flat)]
            return flat, info

        learner.apply_flat = recording_apply
        return published

    return record


def shared_group(nodeid: str):
    """The machine-wide thing a test shares with others, if any: a local Ray cluster ("ray"), or the sweep tests'
    PostgreSQL database and session-wide sample sweep ("sweep")."""
    if "ray" in nodeid.lower():
        return "ray"
    return "sweep" if nodeid.startswith("tests/sweep/") else None


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """With pytest-xdist (`-n 2`, the project's default) tests of one `shared_group` run on one worker, one after
    another; the others are spread one by one. (pytest-xdist's own `--dist loadgroup` does not group under
    pytest 9.2, which renamed the node id attribute it rewrites.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SharedGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return shared_group(nodeid) or nodeid

    return SharedGroups(config, log)
