"""Storage URLs: defaults, journal for workers, clear errors for dead databases."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from pathlib import Path

import optuna
import pytest

from workbench.search import StorageError, choose_storage_url, journal_path, load_study_config, open_storage
from workbench.search._storage import normalise_url

STUDY = """
[study]
name = "s1"
[hierarchies]
presets = ["uniform-64"]
"""


def _config(tmp_path: Path, extra: str = ""):
    path = tmp_path / "s1.toml"
    path.write_text(STUDY + extra)
    return load_study_config(path, project_dir=tmp_path / "home")


def test_default_is_sqlite_for_one_worker_and_journal_for_several(tmp_path: Path) -> None:
    config = _config(tmp_path)
    one = choose_storage_url(config, config.project_dir, None, 1)
    assert one == f"sqlite:///{config.project_dir / 'optuna.db'}"
    many = choose_storage_url(config, config.project_dir, None, 3)
    assert many == f"journal:{journal_path(config.project_dir, 's1')}"


def test_existing_journal_keeps_being_used(tmp_path: Path) -> None:
    config = _config(tmp_path)
    journal = journal_path(config.project_dir, "s1")
    journal.parent.mkdir(parents=True)
    journal.touch()
    assert choose_storage_url(config, config.project_dir, None, 1).startswith("journal:")


def test_sqlite_refused_for_several_workers(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(ValueError, match="journal:"):
        choose_storage_url(config, config.project_dir, "sqlite:///x.db", 2)


def test_relative_paths_become_absolute(tmp_path: Path) -> None:
    assert normalise_url("sqlite:///rel/o.db", tmp_path) == f"sqlite:///{tmp_path.resolve() / 'rel/o.db'}"
    assert normalise_url("journal:j.log", tmp_path) == f"journal:{tmp_path.resolve() / 'j.log'}"
    assert normalise_url("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"


def test_dead_database_names_the_url_and_fix() -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:1") as info:
        open_storage(url)
    assert "pg_isready" in str(info.value)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(StorageError, match="unknown Optuna storage"):
        open_storage("redis://localhost")


# Processes opening one fresh store at once. The race on table creation is a matter of timing: with the
# creation lock removed these tests do not fail every time (six openers did not make it reliable either),
# so they guard against it coming back rather than prove its absence. Three keep the cost down (each
# opener pays seconds of imports).
OPENERS = 3
# A pool whose worker dies mid-task waits for ever; a lost opener fails the test instead.
OPEN_TIMEOUT = 300


def _open_and_create(url: str, name: str) -> str:
    study = optuna.create_study(study_name=name, storage=open_storage(url), load_if_exists=True)
    return study.study_name


def test_processes_opening_one_fresh_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    # `study run` and `study report` (or a test polling the study) may open a new file together;
    # both creating Optuna's tables at once made one of them fail on the schema version row.
    url = f"sqlite:///{tmp_path / 'fresh' / 'optuna.db'}"
    context = multiprocessing.get_context("spawn")
    with context.Pool(OPENERS) as pool:
        names = pool.starmap_async(_open_and_create, [(url, "shared")] * OPENERS).get(timeout=OPEN_TIMEOUT)
    assert names == ["shared"] * OPENERS
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))] == ["shared"]


def test_workers_opening_one_fresh_postgresql_database_at_once_all_succeed() -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    base = os.environ.get("WORKBENCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        admin = psycopg2.connect(base, connect_timeout=3)
    except Exception as exc:
        pytest.skip(f"PostgreSQL at {base} does not answer ({type(exc).__name__}); start it or set WORKBENCH_TEST_POSTGRES")
    admin.autocommit = True
    name = f"workbench_fresh_{uuid.uuid4().hex[:8]}"
    admin.cursor().execute(f"CREATE DATABASE {name}")
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        with multiprocessing.get_context("spawn").Pool(OPENERS) as pool:
            names = pool.starmap_async(_open_and_create, [(url, "shared")] * OPENERS).get(timeout=OPEN_TIMEOUT)
        assert names == ["shared"] * OPENERS
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def test_dead_database_error_is_one_line() -> None:
    with pytest.raises(StorageError) as info:
        open_storage("postgresql://nobody@127.0.0.1:1/none")
    assert "\n" not in str(info.value) and "sqlalche.me" not in str(info.value)


NOT_A_STORE = {"notes.txt": b"hello, these are my notes\n", "figure.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}


@pytest.mark.parametrize("scheme", ["sqlite:///", "journal:"])
@pytest.mark.parametrize("name", sorted(NOT_A_STORE))
def test_a_file_that_is_no_store_is_refused_untouched(scheme: str, name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(NOT_A_STORE[name])
    kind = "SQLite database" if scheme == "sqlite:///" else "Optuna journal"
    with pytest.raises(StorageError, match=f"{path} is not an? {kind}.*--storage") as info:
        open_storage(f"{scheme}{path}")
    assert "\n" not in str(info.value)
    assert path.read_bytes() == NOT_A_STORE[name] and sorted(tmp_path.iterdir()) == [path]  # no lock file either


def test_stores_a_study_wrote_open_again(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'o.db'}", f"journal:{tmp_path / 'o.journal'}"):
        optuna.create_study(study_name="kept", storage=open_storage(url)).optimize(lambda t: t.suggest_float("x", 0, 1), 1)
        assert len(optuna.load_study(study_name="kept", storage=open_storage(url)).trials) == 1


@pytest.mark.parametrize("storage", [
    "sqlite:///{tmp}/notes.txt",
    "journal:{tmp}/figure.png",
    "postgresql://nobody@127.0.0.1:1/none",
    "sqlite:///{tmp}/no-such-dir/optuna.db",
    "journal:{tmp}/no-such-dir/s1.journal",
])
def test_study_report_names_a_store_it_cannot_open_in_one_line(storage: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    for name, content in NOT_A_STORE.items():
        (tmp_path / name).write_bytes(content)
    study = tmp_path / "s1.toml"
    study.write_text(STUDY)
    url = storage.format(tmp=tmp_path)
    assert main(["study", "report", str(study), "--storage", url, "--project-dir", str(tmp_path / "home")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert url.split(":", 1)[1].lstrip("/").split("/")[-1] in err  # the file, or the server's URL
    assert "--storage" in err or "pg_isready" in err
    assert not (tmp_path / "no-such-dir").exists() and not (tmp_path / "home").exists()


def test_a_password_in_the_storage_url_is_not_printed() -> None:
    from workbench.search import StorageError, open_storage

    with pytest.raises(StorageError) as caught:
        open_storage("postgresql://alice:s3cret@127.0.0.1:1/nowhere")
    assert "s3cret" not in str(caught.value) and "alice:***@" in str(caught.value)
