"""Optuna storages: SQLite for one process, the journal file for workers on one machine, PostgreSQL across."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna

from workbench._locks import sqlite_creation_lock


class StorageError(RuntimeError):
    """A storage URL that cannot be opened; the message names it and the fix."""


_SERVER_FIX = ("Check that the database server runs and accepts connections (for PostgreSQL: `pg_isready -h HOST`), "
               "or use the default SQLite storage by leaving --storage unset.")
_FILE_FIX = ("Point --storage at the store a study wrote (PROJECT/optuna.db, or PROJECT/NAME.journal for workers) "
             "or at a new file, or leave --storage unset.")
# Bytes read to recognise an Optuna journal: its first line is one JSON record (a study's creation).
_JOURNAL_PROBE = 1 << 16


def _journal_problem(path: Path) -> str | None:
    """Why the file at ``path`` cannot be an Optuna journal, or None (absent, empty or one)."""
    if not path.exists():
        return None
    if not path.is_file():
        return "is not a file"
    try:
        with path.open("rb") as fh:
            first = fh.readline(_JOURNAL_PROBE)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not first.endswith(b"\n"):
        # Empty, or a first record a worker is still writing (or one longer than the probe).
        return None if not first or first.startswith(b"{") else "is not an Optuna journal"
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    return None if isinstance(record, dict) and "op_code" in record else "is not an Optuna journal"


def _store_file_problem(url: str) -> str | None:
    """For a journal or SQLite URL whose file is there but is no store of that kind: the file and why."""
    from workbench.tracking import sqlite_file_problem

    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        problem = _journal_problem(path)
    elif url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):].partition("?")[0])
        problem = sqlite_file_problem(path)
    else:
        return None
    return None if problem is None else f"{path} {problem}"


def _first_line(exc: BaseException) -> str:
    # Database drivers add the SQL and a documentation link on further lines; the first says what failed.
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def default_storage_url(project_dir: str | Path) -> str:
    """The zero-setup storage: an absolute SQLite file under the project directory."""
    path = Path(project_dir).resolve() / "optuna.db"
    return f"sqlite:///{path}"


def journal_path(project_dir: str | Path, study_name: str) -> Path:
    """Where the journal file of a study lives when several local workers share it."""
    return Path(project_dir).resolve() / f"{study_name}.journal"


def normalise_url(url: str, base_dir: str | Path) -> str:
    """Make relative SQLite and journal paths absolute against ``base_dir``; other URLs pass through."""
    for scheme in ("sqlite:///", "journal:"):
        if url.startswith(scheme):
            raw = url[len(scheme):]
            path = Path(raw)
            if not path.is_absolute():
                path = Path(base_dir).resolve() / path
            return f"{scheme}{path}"
    return url


# Advisory lock id under which workers create Optuna's tables on a database server.
_SCHEMA_LOCK_KEY = 0x6F7074756E61  # "optuna"


def _open_server_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage on PostgreSQL or MySQL, its tables created under a server-side lock.

    Workers on several machines may open a fresh database together; creating the tables at once
    fails for all but one (a duplicate table or type). A PostgreSQL advisory lock (MySQL: a named
    lock) lets one create while the others wait and then find the tables made.
    """
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        lock, unlock = "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
    else:
        lock, unlock = "SELECT GET_LOCK(:key, 600)", "SELECT RELEASE_LOCK(:key)"
    key = {"key": _SCHEMA_LOCK_KEY if postgres else "workbench-optuna-schema"}
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(lock), key)
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            finally:
                connection.execute(sqlalchemy.text(unlock), key)
                connection.commit()
    finally:
        engine.dispose()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open ``sqlite:///...``, ``postgresql://...``, ``mysql://...`` or ``journal:/path/to/file``.

    The journal file storage is safe for several processes on one machine (file locks); SQLite is
    meant for one process; a database server is for several machines. A file that is there but is
    not a store of that kind (a text file, an image) is refused before the storage touches it.
    """
    from workbench.tracking import redact_uri, with_postgres_driver

    problem = _store_file_problem(url)
    if problem is not None:
        raise StorageError(f"Optuna storage {redact_uri(url)!r}: {problem}. {_FILE_FIX}")
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            path = Path(url[len("journal:"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
            return optuna.storages.JournalStorage(backend)
        if url.startswith("sqlite:///"):
            database = Path(url[len("sqlite:///"):])
            database.parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
            with sqlite_creation_lock(database):
                return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        if url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "mysql"):
            return _open_server_storage(with_postgres_driver(url))
    except Exception as exc:  # the storage's own errors vary by backend; name the URL and the fix
        fix = _FILE_FIX if url.startswith(("journal:", "sqlite:")) else _SERVER_FIX
        raise StorageError(f"cannot open Optuna storage {redact_uri(url)!r}: {_first_line(exc)}. {fix}") from exc
    raise StorageError(
        f"unknown Optuna storage {redact_uri(url)!r}; use sqlite:///ABS/PATH.db, journal:/ABS/PATH.journal, "
        "or postgresql://user@host:port/db"
    )
