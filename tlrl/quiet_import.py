"""Keep TensorFlow's start-up log off the terminal of the `tlrl` command (`--verbose` shows it).

`import tensorflow` loads native libraries whose static initializers write a block to file
descriptor 2 before absl logging is set up ("All log messages before absl::InitializeLog() ...",
"oneDNN custom operations are on", "Could not find cuda drivers"). It appears twice because two
extension modules carry their own copy of that code (`_pywrap_cpu_feature_guard` and, later in
the import, `_pywrap_profiler_plugin`). C++ writes it, so neither `TF_CPP_MIN_LOG_LEVEL` nor Python's `sys.stderr` can
hide it. `hide_tensorflow_startup_log()` makes the first `import tensorflow` of the process run
with fd 2 pointed at the null device, restored as soon as the import returns or fails (its
exception still reaches the caller). It also sets `TLRL_QUIET_TF=1`, so that the worker processes
the command spawns later do the same when they `import tlrl`.

This module imports only the standard library: importing it must not import TensorFlow.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
from typing import Iterator

#: Environment variable that asks `import tlrl` to hide TensorFlow's start-up log (inherited by workers).
ENV_FLAG = "TLRL_QUIET_TF"


@contextlib.contextmanager
def fd2_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 (stderr of C++ code and of Python) at the null device for the block
    (unchanged if the process has no fd 2)."""
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        try:
            _flush_stderr()  # what Python wrote meanwhile goes to the null device too
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _flush_stderr() -> None:
    if sys.stderr is not None:
        sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with fd 2 silenced; the module keeps TensorFlow's loader."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        with fd2_to_devnull():
            self.loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` like the rest of `sys.meta_path` does, wrapping its loader once."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        _uninstall()  # one-shot: only the first import of the process loads the native libraries
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowFinder)]


def hide_tensorflow_startup_log() -> None:
    """Make this process's first `import tensorflow`, and that of the processes it spawns, silent on fd 2.

    It also sets `TF_CPP_MIN_LOG_LEVEL=3`, which hides TensorFlow's C++ log after the import too
    (such as "failed call to cuInit" on a machine without a GPU at the first operation); fatal
    errors still show. Does nothing if TensorFlow is imported already (`tlrl.cli.main` called from a
    program that uses TensorFlow: its log settings are that program's).
    """
    if "tensorflow" in sys.modules:
        return
    os.environ[ENV_FLAG] = "1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


def show_tensorflow_startup_log() -> None:
    """Undo `hide_tensorflow_startup_log` (`--verbose` in a process that inherited `TLRL_QUIET_TF=1`)."""
    if os.environ.pop(ENV_FLAG, None) is not None and os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3":
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # `import tlrl`'s default
    _uninstall()
