"""Shared fixtures: a migrated empty MLflow SQLite store, copied per test (migrations take seconds)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def template_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow database, kept in the pytest cache per MLflow version."""
    import mlflow
    from mlflow import MlflowClient

    cache = getattr(request.config, "cache", None)
    folder = (cache.mkdir(f"mlflow-template-{mlflow.__version__}") if cache is not None
              else tmp_path_factory.mktemp("mlflow-template"))
    path = folder / "mlflow.db"
    if not path.exists():
        # Build elsewhere and rename into place, so a concurrent session never sees a half-migrated file.
        building = tmp_path_factory.mktemp("mlflow-build") / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments()
        partial = folder / f"mlflow.db.{os.getpid()}"
        shutil.copy(building, partial)
        os.replace(partial, path)
    return path


@pytest.fixture
def tracking_uri(template_db: Path, tmp_path: Path) -> str:
    """An absolute SQLite tracking URI of a fresh store under ``tmp_path``."""
    db = tmp_path / "mlflow.db"
    shutil.copy(template_db, db)
    return f"sqlite:///{db}"


FakeTrial = Mapping[str, Any]


@pytest.fixture
def log_fake_study() -> Callable[..., Any]:
    """Log a study of fake trials: each has ``state``, ``params`` and ``metrics`` (no training)."""

    def log(uri: str, experiment: str, study: str, trials: Iterable[FakeTrial]) -> Any:
        from workbench.tracking import StudyTracker

        tracker = StudyTracker(uri, experiment, study)
        counts = {"complete": 0, "pruned": 0, "failed": 0}
        best = float("-inf")
        for number, spec in enumerate(trials):
            run = tracker.start_trial(number, spec.get("params", {}), spec.get("tags"))
            run.log_metrics(spec.get("metrics", {}), step=spec.get("step", 0))
            state = spec.get("state", "complete")
            run.finish(state, error=spec.get("error"))
            counts[state] += 1
            if state == "complete":
                best = max(best, float(spec.get("metrics", {}).get("rank1", float("-inf"))))
        tracker.log_study_summary({"rank1": best}, counts["complete"], counts["pruned"], counts["failed"])
        tracker.finish()
        return tracker

    return log
