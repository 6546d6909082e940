"""Storage URLs: defaults, journal for workers, clear errors for dead databases."""

from __future__ import annotations

from pathlib import Path

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
