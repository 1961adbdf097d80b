"""The lock every worker of a study holds from deciding that a trial may start until that trial exists (RUNNING)
in the storage.

Why: deciding and starting are two steps in Optuna (`MaxTrialsCallback` counts the trials after one finishes;
`Study.optimize` creates the next one later), so two workers whose trials finish together both see room for
one more and both start it: a sweep of `n_trials: 3` on two workers ended with 4 complete trials. Under this
lock a worker that decides sees every trial started by the others.

- SQLite (one machine): `flock` on a file next to the database;
- PostgreSQL: a session advisory lock; MySQL: `GET_LOCK`.

A worker that dies holding it frees it: the kernel closes its file, the server drops its connection.
"""
from __future__ import annotations

import hashlib
import os
from typing import Optional


def driver_url(url: str) -> str:
    """`url` with the database driver tlrl installs (SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3;
    `tlrl[sweep]` installs psycopg2)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


class StartLock:
    """`acquire()` / `release()` (each a no-op when the lock is already in that state) around a trial's start,
    shared by every worker of the study `study_name` in the storage `url`; `close()` frees it for good."""

    def __init__(self, url: str, study_name: str):
        self.held = False
        self.file: Optional[int] = None
        self.connection = None
        name = f"tlrl-sweep-start:{study_name}"
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme == "sqlite":
            import fcntl  # POSIX only; imported here so that the rest of tlrl.sweep imports anywhere

            self.file = os.open(url.split(":///", 1)[1] + ".start-lock", os.O_RDWR | os.O_CREAT, 0o600)
            self._lock = lambda: fcntl.flock(self.file, fcntl.LOCK_EX)
            self._unlock = lambda: fcntl.flock(self.file, fcntl.LOCK_UN)
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        self.connection = create_engine(driver_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT").connect()
        if scheme == "postgresql":
            lock, unlock, params = "pg_advisory_lock(:key)", "pg_advisory_unlock(:key)", {"key": _key(name)}
        else:  # MySQL
            lock, unlock, params = "GET_LOCK(:name, -1)", "RELEASE_LOCK(:name)", {"name": name[:64]}
        self._lock = lambda: self.connection.execute(text(f"SELECT {lock}"), params)
        self._unlock = lambda: self.connection.execute(text(f"SELECT {unlock}"), params)

    def acquire(self) -> None:
        if not self.held:
            self._lock()
            self.held = True

    def release(self) -> None:
        if self.held:
            self._unlock()
            self.held = False

    def close(self) -> None:
        self.release()
        if self.file is not None:
            os.close(self.file)
            self.file = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def __enter__(self) -> "StartLock":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


def _key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

