"""Optuna storages: SQLite for one process, the journal file for workers on one machine, PostgreSQL across."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import optuna


class StorageError(RuntimeError):
    """A storage URL that cannot be opened; the message names it and the fix."""


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


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open ``sqlite:///...``, ``postgresql://...``, ``mysql://...`` or ``journal:/path/to/file``.

    The journal file storage is safe for several processes on one machine (file locks); SQLite is
    meant for one process; a database server is for several machines.
    """
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            path = Path(url[len("journal:"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
            return optuna.storages.JournalStorage(backend)
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        if url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "mysql"):
            return optuna.storages.RDBStorage(_with_driver(url), engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # the storage's own errors vary by backend; name the URL and the fix
        raise StorageError(
            f"cannot open Optuna storage {url!r}: {exc}. Check that the database server runs and "
            "accepts connections (for PostgreSQL: `pg_isready -h HOST`), or use the default SQLite "
            "storage by leaving --storage unset."
        ) from exc
    raise StorageError(
        f"unknown Optuna storage {url!r}; use sqlite:///ABS/PATH.db, journal:/ABS/PATH.journal, "
        "or postgresql://user@host:port/db"
    )


def _with_driver(url: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the project ships psycopg2, so name it.
    if not url.startswith("postgresql://") or importlib.util.find_spec("psycopg") is not None:
        return url
    return "postgresql+psycopg2://" + url[len("postgresql://"):]
