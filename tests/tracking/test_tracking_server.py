"""A real ``mlflow server`` on 127.0.0.1: log a study over HTTP, read it back through the REST API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.tracking import TAG_PARENT, TAG_ROLE, TAG_STATE, load_trials, resolve_tracking_uri

# About a minute on an idle 2-core machine; a loaded one needs longer before we give up.
START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def mlflow_server(template_db: Path, tmp_path: Path) -> Iterator[str]:
    """Start ``mlflow server`` (SQLite backend, proxied artifacts) and stop its whole process group."""
    executable = Path(sys.executable).with_name("mlflow")
    if not executable.exists():
        pytest.skip(f"no mlflow executable beside {sys.executable}")
    backend = tmp_path / "server.db"
    shutil.copy(template_db, backend)  # already migrated: the server starts faster
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    command = [str(executable), "server", "--backend-store-uri", f"sqlite:///{backend}",
               "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               # No background job runner: it forks a pool of workers a test does not use.
                               env={**os.environ, "MLFLOW_TRACKING_URI": "",
                                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.skip(f"mlflow server exited with {process.returncode}: "
                            f"{(tmp_path / 'server.log').read_text()[-500:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.skip(f"mlflow server did not answer /health within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        yield uri
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        log.close()


@pytest.mark.slow
def test_study_logged_over_http_reads_back_through_rest(
    mlflow_server: str, log_fake_study: Callable[..., Any], tmp_path: Path
) -> None:
    uri = resolve_tracking_uri(mlflow_server, tmp_path)
    trials = [
        {"params": {"tree_id": "t0", "stage2.split": [40, 24]}, "metrics": {"rank1": 0.7, "gflops": 40.0}},
        {"params": {"tree_id": "t1", "stage2.split": [32, 32]}, "metrics": {"rank1": 0.8, "gflops": 20.0}},
        {"params": {"tree_id": "t2"}, "metrics": {"rank1": 0.3}, "state": "pruned"},
    ]
    tracker = log_fake_study(uri, "over-http", "remote-study", trials)
    report = tmp_path / "report.txt"
    report.write_text("front: t1")
    tracker.log_study_artifact(report)

    found = _post(f"{uri}/api/2.0/mlflow/runs/search",
                  {"experiment_ids": [tracker.experiment_id], "max_results": 100})["runs"]
    runs = {r["info"]["run_id"]: r for r in found}
    tags = {rid: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for rid, r in runs.items()}
    parents = [rid for rid, t in tags.items() if t.get(TAG_ROLE) == "study"]
    assert parents == [tracker.parent_run_id]
    children = {t["mlflow.runName"]: rid for rid, t in tags.items() if t.get(TAG_PARENT) == parents[0]}
    assert sorted(children) == ["trial-0", "trial-1", "trial-2 (pruned)"]
    assert tags[children["trial-2 (pruned)"]][TAG_STATE] == "pruned"
    metrics = {m["key"]: m["value"] for m in runs[children["trial-1"]]["data"]["metrics"]}
    assert metrics == {"rank1": 0.8, "gflops": 20.0}
    params = {p["key"]: p["value"] for p in runs[children["trial-0"]]["data"]["params"]}
    assert params["stage2.split"] == "[40, 24]"
    summary = {m["key"]: m["value"] for m in runs[parents[0]]["data"]["metrics"]}
    assert summary["best.rank1"] == 0.8 and summary["n_pruned"] == 1.0

    listed = _get(f"{uri}/api/2.0/mlflow/artifacts/list?run_id={parents[0]}&path=report")
    assert [f["path"] for f in listed["files"]] == ["report/report.txt"]
    assert list((tmp_path / "artifacts").rglob("report.txt"))  # proxied to --artifacts-destination

    df = load_trials(uri, "over-http")
    assert list(df["state"]) == ["complete", "complete", "pruned"]
    assert list(load_trials(uri, "over-http", "metrics.gflops < 30")["params.tree_id"]) == ["t1"]

    # Workers on several machines start one study at the same moment: no lock is shared over HTTP, so
    # the creators settle it after creating, and every one of them ends with the same single parent.
    from tracking_helpers import start_together

    from workbench.tracking import StudyTracker, search_all_runs

    ids = start_together(uri, "over-http", "started-together", workers=4)
    assert len(ids) == 4 and len(set(ids)) == 1, ids
    client = StudyTracker(uri, "over-http", "started-together").client
    kept = search_all_runs(client, [tracker.experiment_id],
                           f"tags.`{TAG_ROLE}` = 'study' AND tags.`workbench.study` = 'started-together'")
    assert [r.info.run_id for r in kept] == ids[:1]
