"""Where a study lives: a journal file next to the runs, or a PostgreSQL database.

- Embedded (the default): Optuna's JournalStorage on the file SWEEP_DIR/study.journal. Optuna
  recommends it over SQLite for several worker processes: each write appends one JSON line under
  a file lock, so workers on one machine (or a shared file system) can share it.
- `postgresql://user:password@host:port/database`: Optuna's RDBStorage (SQLAlchemy + psycopg2);
  workers on any number of machines join one study by running the same command.

Each store also gives a *trial lock*: the step "count the study's trials, then ask for a new one"
runs under it, so workers sharing a study together start exactly `--trials` trials, never more
(a flock(2) on the sweep folder for the journal; a transaction-scoped advisory lock in PostgreSQL).
"""
from __future__ import annotations

import os
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

try:
    import fcntl
except ImportError:            # pragma: no cover - Windows: one worker per journal there
    fcntl = None  # type: ignore[assignment]

JOURNAL = "study.journal"
_SCHEMA_LOCK = zlib.crc32(b"charnn-sweep:schema")     # PostgreSQL advisory lock keys


class SweepError(ValueError):
    """A sweep cannot run or be reported as asked (a user error: one line, exit status 2)."""


@dataclass
class Store:
    """An opened study storage: the Optuna storage object and its trial lock."""

    storage: Any
    where: str                                   # for messages: the journal path or the URL without password
    trial_lock: Callable[[str], ContextManager[None]]   # trial_lock(study_name)


def is_url(storage: str) -> bool:
    return "://" in storage


def open_store(storage: str | None, sweep_dir: Path | None) -> Store:
    """The journal file in `sweep_dir` when `storage` is None, else the database at the URL `storage`."""
    if storage is None:
        if sweep_dir is None:
            raise SweepError("give a sweep folder or --storage URL")
        return _journal(sweep_dir)
    scheme = storage.split("://", 1)[0].lower()
    if scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise SweepError(f"unsupported --storage {scheme}://…: give a postgresql://user@host:port/database URL, "
                         f"or leave --storage out for the journal file next to the runs")
    return _postgres(storage)


def _journal(sweep_dir: Path) -> Store:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = sweep_dir / JOURNAL
    try:
        backend = JournalFileBackend(str(path))
    except OSError as exc:
        raise SweepError(f"cannot open the study journal {path}: {exc.strerror or exc}") from None

    @contextmanager
    def trial_lock(study_name: str) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        fd = os.open(sweep_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)       # blocks while another worker is starting a trial
            yield
        finally:
            os.close(fd)                         # releases the lock

    return Store(JournalStorage(backend), str(path), trial_lock)


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and files."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:      # an unparsable URL: show only its scheme
        return url.split("://", 1)[0] + "://…"


def _postgres(url: str) -> Store:
    shown = redact(url)
    scheme, rest = url.split("://", 1)
    if "+" not in scheme:       # SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://; use psycopg2
        url = "postgresql+psycopg2://" + rest
    try:
        import psycopg2  # noqa: F401  (the driver SQLAlchemy uses for postgresql://)
    except ImportError:
        raise SweepError("a postgresql:// storage needs psycopg2: pip install 'charnn[postgres]' "
                         "(or psycopg2-binary)") from None
    import sqlalchemy
    from optuna.storages import RDBStorage
    from sqlalchemy.pool import NullPool

    try:
        lock_engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        # Workers starting together on a new database would race to create Optuna's tables: one at a time.
        with lock_engine.begin() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            storage = RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, ImportError) as exc:
        first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        raise SweepError(f"cannot open the study database {shown}: {first[0] if first else type(exc).__name__}") from None

    @contextmanager
    def trial_lock(study_name: str) -> Iterator[None]:
        key = zlib.crc32(f"charnn-sweep:{study_name}".encode())   # one advisory lock per study
        with lock_engine.begin() as conn:                         # released when the transaction ends
            conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            yield

    return Store(storage, shown, trial_lock)
