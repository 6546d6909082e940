"""Tracking URI resolution: where runs go, where artifacts go, and whether the store answers."""

from __future__ import annotations

import importlib.util
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_DB_NAME = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"

_SQL_SCHEMES = ("postgresql", "mysql")
_SERVER_HINT = (
    "start one with `mlflow server --backend-store-uri sqlite:///$PWD/mlflow.db "
    "--artifacts-destination $PWD/mlartifacts --host 127.0.0.1 --port 5000`, or leave --tracking-uri "
    "unset to log to sqlite:///<project dir>/mlflow.db"
)


_SQLITE_HEADER = b"SQLite format 3\x00"


class TrackingError(ValueError):
    """A tracking store that cannot be used as given; the message names the URI and the fix."""


def sqlite_file_problem(path: str | Path) -> str | None:
    """Why the file at ``path`` cannot be opened as a SQLite database, or None (absent, empty or one).

    SQLite itself only says "file is not a database" on the first query, deep in a store's setup;
    Optuna and MLflow storages both check their file here first.
    """
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        return "is not a file"
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if head and head != _SQLITE_HEADER:
        return "is not a SQLite database"
    return None


def _scheme(uri: str) -> str:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):", uri)
    return match.group(1).lower() if match else ""


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (safe to print and log)."""
    return re.sub(r"(://[^/:@]+:)[^/@]*@", r"\1***@", uri)


def _sqlite_uri(uri: str, project_dir: Path) -> str:
    if not uri.startswith("sqlite:///"):
        raise TrackingError(
            f"tracking URI {uri!r}: an MLflow SQLite URI needs a file path, e.g. sqlite:///mlflow.db "
            "(relative to the project directory) or sqlite:////abs/path/mlflow.db"
        )
    rest = uri[len("sqlite:///"):]
    path_text, _, query = rest.partition("?")
    if not path_text or path_text == ":memory:":
        raise TrackingError(
            f"tracking URI {uri!r}: an in-memory SQLite database loses every run at exit; "
            "use a file, e.g. sqlite:///mlflow.db"
        )
    path = Path(path_text)
    if not path.is_absolute():
        path = project_dir / path
    path = path.resolve()
    resolved = f"sqlite:///{path.as_posix()}"
    return f"{resolved}?{query}" if query else resolved


def resolve_tracking_uri(uri: str | None, project_dir: str | Path = ".", *, check: bool = True) -> str:
    """Turn a user's tracking URI (or None) into an absolute one MLflow 3 accepts.

    None means ``sqlite:///<project_dir>/mlflow.db``; relative SQLite paths are taken relative to
    ``project_dir``; ``postgresql://``, ``mysql://`` and ``http(s)://`` pass through. With ``check``
    the store must answer (server ``/health``, database connection, SQLite directory present).

    Args:
        uri: ``sqlite:///...``, ``postgresql://...``, ``http(s)://...`` or None.
        project_dir: directory that holds the default database and relative SQLite paths.
        check: probe the store and raise ``TrackingError`` naming the URI and the fix if it is dead.
    """
    base = Path(project_dir).expanduser().resolve()
    text = (uri or "").strip()
    if not text:
        text = f"sqlite:///{(base / DEFAULT_DB_NAME).as_posix()}"
    scheme = _scheme(text)
    if scheme == "sqlite":
        resolved = _sqlite_uri(text, base)
    elif scheme in ("http", "https"):
        resolved = text.rstrip("/")
    elif scheme.split("+")[0] in _SQL_SCHEMES:
        resolved = with_postgres_driver(text)
    elif scheme == "postgres":
        raise TrackingError(
            f"tracking URI {redact_uri(text)!r}: SQLAlchemy needs the scheme 'postgresql://', not 'postgres://'"
        )
    elif scheme in ("", "file"):
        path = text[len("file://"):] if scheme == "file" else text
        raise TrackingError(
            f"tracking URI {text!r}: MLflow 3 no longer accepts a directory (./mlruns) file store; use a "
            f"SQLite database instead, e.g. sqlite:///{(base / DEFAULT_DB_NAME).as_posix()}"
            + (f" or sqlite:///{Path(path).expanduser().resolve().as_posix()}" if path.endswith(".db") else "")
        )
    else:
        raise TrackingError(
            f"tracking URI {redact_uri(text)!r}: unsupported scheme {scheme!r}; use sqlite:///<path>.db, "
            "postgresql://user@host:port/db or http(s)://host:port of an MLflow server"
        )
    if check:
        check_tracking_uri(resolved)
    return resolved


def with_postgres_driver(uri: str) -> str:
    """``uri`` with the psycopg2 driver named when it is a bare ``postgresql://`` and psycopg 3 is absent.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; the project ships psycopg2. MLflow's
    tracking store and Optuna's storage both open their URI through this.
    """
    if _scheme(uri) != "postgresql" or importlib.util.find_spec("psycopg") is not None:
        return uri
    if importlib.util.find_spec("psycopg2") is None:
        raise TrackingError(f"{redact_uri(uri)!r}: no PostgreSQL driver is installed; pip install psycopg2-binary "
                           "(the [search] extra installs it)")
    return "postgresql+psycopg2" + uri[len("postgresql"):]


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Raise ``TrackingError`` unless the store behind an already resolved URI answers."""
    scheme = _scheme(uri)
    if scheme == "sqlite":
        db = Path(uri[len("sqlite:///"):].partition("?")[0])
        if not db.parent.is_dir():
            raise TrackingError(
                f"tracking URI {uri!r}: directory {db.parent} does not exist; create it "
                f"(mkdir -p {db.parent}) or choose another path"
            )
        problem = sqlite_file_problem(db)
        if problem is not None:
            raise TrackingError(
                f"tracking URI {uri!r}: {db} {problem}; point the URI at the mlflow.db a study or the demo "
                "wrote, or at a new .db file"
            )
    elif scheme in ("http", "https"):
        _check_server(uri, timeout)
    elif scheme.split("+")[0] in _SQL_SCHEMES:
        _check_database(uri, timeout)


def _check_server(uri: str, timeout: float) -> None:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"MLflow server {uri} does not answer ({reason}); {_SERVER_HINT}") from exc
    if status != 200:
        raise TrackingError(
            f"{uri}/health answered HTTP {status}: is this an MLflow tracking server? {_SERVER_HINT}"
        )


def _check_database(uri: str, timeout: float) -> None:
    import sqlalchemy

    connect_args: dict[str, Any] = {"connect_timeout": max(1, int(timeout))}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
    except Exception as exc:
        raise TrackingError(f"tracking URI {redact_uri(uri)!r} is not a valid database URL: {exc}") from exc
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise TrackingError(
            f"database {redact_uri(uri)} does not answer ({reason}); start the database server and create "
            "the database (e.g. `createdb -h HOST -U USER NAME`), check user and password, or leave "
            "--tracking-uri unset to log to sqlite:///<project dir>/mlflow.db"
        ) from exc
    finally:
        engine.dispose()


def default_artifact_location(tracking_uri: str, project_dir: str | Path | None = None) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlartifacts/`` beside a SQLite file (absolute).

    A database server store uses ``<project_dir or cwd>/mlartifacts``; an MLflow server decides
    itself (None), so its clients upload through it.
    """
    scheme = _scheme(tracking_uri)
    if scheme in ("http", "https"):
        return None
    if scheme == "sqlite":
        root = Path(tracking_uri[len("sqlite:///"):].partition("?")[0]).parent
    else:
        root = Path(project_dir if project_dir is not None else Path.cwd()).resolve()
    return (root / DEFAULT_ARTIFACT_DIR).resolve().as_uri()


def make_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` bound to ``tracking_uri`` (no global MLflow state is touched)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def ui_hint(tracking_uri: str, experiment_id: str | None = None, port: int = 5000) -> str:
    """How to look at an experiment's runs in the MLflow UI: the command (for a store without a server)
    and the address.

    The address asks for MLflow 3's model-training view (``workflowType=machine_learning``); the UI's
    default, the GenAI view, lists traces and hides training runs.
    """
    page = f"#/experiments/{experiment_id}/runs" if experiment_id else "#/experiments"
    query = "?workflowType=machine_learning"
    if _scheme(tracking_uri) in ("http", "https"):
        return f"{tracking_uri.rstrip('/')}/{page}{query}"
    return (f"mlflow ui --backend-store-uri {redact_uri(tracking_uri)} --port {port}, then open "
            f"http://127.0.0.1:{port}/{page}{query}")
