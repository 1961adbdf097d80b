"""An exclusive lock on a run directory, held for the whole training.

Two writers in one run directory (two `tlrl train --resume DIR` at once, or a resume while the
run is still going) would overwrite each other's checkpoints, and the second one's start-up
clean-up would delete the first one's save in progress. `RunLock` takes `fcntl.flock` on
`DIR/.lock` (and writes its pid there, for the message another process gets); the kernel
releases the lock when the process ends in any way, `kill -9` included, so a crashed run never
leaves a stale lock behind. The lock file itself stays (removing it would race with a process
that is opening it).

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with RunLock(folder):
...     try:
...         RunLock(folder).acquire()
...     except RunLockedError as exc:
...         print("refused:", "another process" in str(exc))
refused: True
>>> RunLock(folder).acquire().release()  # free again
"""
from __future__ import annotations

import fcntl
import os
from typing import Optional

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another process holds the lock on the run directory."""


class RunLock:
    """`flock` on `run_dir/.lock`, taken without waiting; a context manager.

    Args:
        run_dir: an existing directory.
    """

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_FILE)
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise `RunLockedError` at once, naming the process that holds it."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"another process (pid {holder})" if holder else "another process"
            raise RunLockedError(
                f"{who} is using the run directory {self.run_dir} (it holds {self.path}); wait for it to "
                f"finish or stop it (Ctrl-C saves a checkpoint), then `tlrl train --resume {self.run_dir}`"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (closing the file releases the flock)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def __del__(self):
        self.release()


def _read_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
