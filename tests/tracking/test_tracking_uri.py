"""Tracking URI resolution: defaults, relative paths, supported schemes and dead stores."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from workbench.tracking import TrackingError, default_artifact_location, redact_uri, resolve_tracking_uri


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_none_means_absolute_sqlite_in_project_dir(tmp_path: Path) -> None:
    uri = resolve_tracking_uri(None, tmp_path)
    assert uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve().as_posix()}"
    assert uri.startswith("sqlite:////")


def test_relative_sqlite_path_is_made_absolute_against_project_dir(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    uri = resolve_tracking_uri("sqlite:///runs/track.db", tmp_path)
    assert uri == f"sqlite:///{(tmp_path / 'runs' / 'track.db').resolve().as_posix()}"


def test_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    target = (tmp_path / "a.db").resolve()
    assert resolve_tracking_uri(f"sqlite:///{target.as_posix()}", "/nonexistent") == f"sqlite:///{target.as_posix()}"


def test_sqlite_in_missing_directory_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match=r"does not exist.*mkdir -p"):
        resolve_tracking_uri("sqlite:///nope/mlflow.db", tmp_path)
    # Without the check the URI is still resolved (a later mkdir may create the directory).
    assert resolve_tracking_uri("sqlite:///nope/mlflow.db", tmp_path, check=False).endswith("/nope/mlflow.db")


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///:memory:"])
def test_sqlite_without_a_file_is_refused(uri: str, tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="sqlite:///"):
        resolve_tracking_uri(uri, tmp_path)


@pytest.mark.parametrize("uri", ["./mlruns", "file:///tmp/mlruns", "mlruns"])
def test_file_store_is_refused_with_the_sqlite_fix(uri: str, tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match=r"MLflow 3.*sqlite:///"):
        resolve_tracking_uri(uri, tmp_path)


def test_bare_db_path_suggests_its_sqlite_uri(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match=r"sqlite:///.*/runs\.db"):
        resolve_tracking_uri("runs.db", tmp_path)


def test_unknown_and_misspelled_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="unsupported scheme 'ftp'"):
        resolve_tracking_uri("ftp://host/x", tmp_path)
    with pytest.raises(TrackingError, match="postgresql://"):
        resolve_tracking_uri("postgres://u@h/db", tmp_path)


def test_server_and_database_uris_pass_through_unchecked(tmp_path: Path) -> None:
    assert resolve_tracking_uri("http://127.0.0.1:5000/", tmp_path, check=False) == "http://127.0.0.1:5000"
    pg = resolve_tracking_uri("postgresql://postgres@127.0.0.1:5432/test", tmp_path, check=False)
    assert pg.startswith("postgresql") and pg.endswith("://postgres@127.0.0.1:5432/test")


def test_dead_server_error_names_uri_and_how_to_start_one(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TrackingError) as info:
        resolve_tracking_uri(uri, tmp_path)
    assert uri in str(info.value) and "mlflow server" in str(info.value)


def test_dead_database_error_names_uri_without_password(tmp_path: Path) -> None:
    uri = f"postgresql://postgres:secret@127.0.0.1:{_free_port()}/test"
    with pytest.raises(TrackingError) as info:
        resolve_tracking_uri(uri, tmp_path)
    message = str(info.value)
    assert "does not answer" in message and "secret" not in message and "postgres:***@" in message


def test_redact_uri_hides_only_the_password() -> None:
    assert redact_uri("postgresql://u:pw@h:1/db") == "postgresql://u:***@h:1/db"
    assert redact_uri("postgresql://u@h/db") == "postgresql://u@h/db"


def test_artifacts_default_beside_the_sqlite_file(tmp_path: Path) -> None:
    uri = resolve_tracking_uri(None, tmp_path)
    assert default_artifact_location(uri) == (tmp_path / "mlartifacts").resolve().as_uri()
    assert default_artifact_location("http://127.0.0.1:5000") is None
    assert default_artifact_location("postgresql://u@h/db", tmp_path) == (tmp_path / "mlartifacts").resolve().as_uri()


@pytest.mark.parametrize("content", [b"my notes\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"])
def test_a_file_that_is_no_sqlite_database_is_refused_untouched(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(TrackingError, match=f"{path} is not a SQLite database; point the URI at the mlflow.db"):
        resolve_tracking_uri(f"sqlite:///{path}", tmp_path)
    assert path.read_bytes() == content


def test_the_ui_hint_opens_the_model_training_view() -> None:
    # MLflow 3's UI opens experiments in its GenAI view (traces), where training runs do not show.
    from workbench.tracking import ui_hint

    local = ui_hint("sqlite:////data/mlflow.db", "7")
    assert local.startswith("mlflow ui --backend-store-uri sqlite:////data/mlflow.db --port 5000")
    assert local.endswith("http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")
    served = ui_hint("http://mlflow-host:5000/", "7")
    assert served == "http://mlflow-host:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert "s3cret" not in ui_hint("postgresql://bob:s3cret@db/mlflow")
