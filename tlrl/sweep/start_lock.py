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

import fcntl
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
        self.name = f"tlrl-sweep-start:{study_name}"
        self.file: Optional[int] = None
        self.connection = None
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme == "sqlite":
            path = url.split(":///", 1)[1]
            self.file = os.open(path + ".start-lock", os.O_RDWR | os.O_CREAT, 0o600)
        else:
            from sqlalchemy import create_engine

            engine = create_engine(driver_url(url), poolclass=_null_pool(), isolation_level="AUTOCOMMIT")
            self.connection = engine.connect()
            self.scheme = scheme

    def acquire(self) -> None:
        if self.held:
            return
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_EX)
        elif self.scheme == "postgresql":
            self._sql("SELECT pg_advisory_lock(:key)", key=_key(self.name))
        else:
            self._sql("SELECT GET_LOCK(:name, -1)", name=self.name[:64])
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
        elif self.scheme == "postgresql":
            self._sql("SELECT pg_advisory_unlock(:key)", key=_key(self.name))
        else:
            self._sql("SELECT RELEASE_LOCK(:name)", name=self.name[:64])
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

    def _sql(self, statement: str, **params) -> None:
        from sqlalchemy import text

        self.connection.execute(text(statement), params)


def _key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _null_pool():
    from sqlalchemy.pool import NullPool

    return NullPool
