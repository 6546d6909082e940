"""The same study API on PostgreSQL (skipped when no server answers at 127.0.0.1:5432)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from workbench.tracking import TAG_PARENT, load_trials, pareto_front, resolve_tracking_uri

# MLflow's tables live in their own schema so they never meet Optuna's (both keep an
# ``alembic_version`` table, and one schema can hold only one of them).
SCHEMA = "workbench_tracking_tests"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A PostgreSQL tracking URI whose search path is a dedicated schema; skip if unreachable."""
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is needed for the PostgreSQL test")
    dsn = os.environ.get("WORKBENCH_TEST_POSTGRES", DEFAULT_DSN)
    try:
        connection = psycopg2.connect(dsn, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {dsn} does not answer ({str(exc).strip()}); set WORKBENCH_TEST_POSTGRES")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    finally:
        connection.close()
    yield f"{dsn}?options=-csearch_path%3D{SCHEMA}"


def test_study_on_postgres(postgres_uri: str, log_fake_study: Callable[..., Any]) -> None:
    uri = resolve_tracking_uri(postgres_uri)
    assert uri.startswith("postgresql")
    experiment = f"pg-{uuid.uuid4().hex[:10]}"  # the database outlives the test run
    trials = [
        {"params": {"tree_id": "a", "cuts": [1, 2, 4]}, "metrics": {"rank1": 0.9, "gflops": 50.0}},
        {"params": {"tree_id": "b", "cuts": [1, 2, 4]}, "metrics": {"rank1": 0.8, "gflops": 20.0}},
        {"params": {"tree_id": "c", "cuts": [1, 3, 5]}, "metrics": {"rank1": 0.7, "gflops": 30.0}},
        {"params": {"tree_id": "d"}, "state": "failed", "error": "diverged"},
    ]
    tracker = log_fake_study(uri, experiment, "pg-study", trials)
    try:
        children = tracker.trial_runs()
        assert [r.info.run_name for r in children] == ["trial-0", "trial-1", "trial-2", "trial-3 (failed)"]
        assert {r.data.tags[TAG_PARENT] for r in children} == {tracker.parent_run_id}
        df = load_trials(uri, experiment)
        assert list(df["state"]) == ["complete", "complete", "complete", "failed"]
        front = pareto_front(df[df["state"] == "complete"], {"rank1": "max", "gflops": "min"})
        assert list(front["params.tree_id"]) == ["a", "b"]
        summary = tracker.client.get_run(tracker.parent_run_id).data.metrics
        assert summary["best.rank1"] == 0.9 and summary["n_failed"] == 1.0
    finally:
        tracker.client.delete_experiment(tracker.experiment_id)
