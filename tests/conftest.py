"""Suite-wide settings: small thread pools, a headless plotting backend, deterministic seeds.

The device check (``nox -s gpu``) runs the tests marked ``device`` (``tests/device``) and ``cuda``
(CUDA-only tests anywhere; skipped on a machine without CUDA). With ``WORKBENCH_DEVICE_CHECK_JSON``
naming a file, each of those tests' outcome, seconds and the figures it recorded through the
``figures`` fixture are written there as one JSON, with the device, torch and CPU it ran on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest
from machine_info import cpu_name

#: Where the device check writes its figures (unset: nowhere).
DEVICE_CHECK_JSON = "WORKBENCH_DEVICE_CHECK_JSON"
_CHECKED: dict[str, dict[str, Any]] = {}
_STARTED = time.time()


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; the device check (nox -s gpu) runs it on a GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A mapping a device-check test fills with its figures (sequences/s, ratios, MiB, ...)."""
    return _CHECKED.setdefault(request.node.nodeid, {}).setdefault("figures", {})


def _checked(report: pytest.TestReport) -> bool:
    return bool(os.environ.get(DEVICE_CHECK_JSON)) and ("device" in report.keywords or "cuda" in report.keywords)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _checked(report) or (report.when != "call" and report.passed):
        return
    entry = _CHECKED.setdefault(report.nodeid, {})
    if "outcome" in entry and entry["outcome"] != "passed":
        return  # a failed call stays failed when its teardown reports too
    entry.update(outcome=report.outcome, seconds=round(report.duration, 3))
    if report.skipped and isinstance(report.longrepr, tuple):
        entry["reason"] = str(report.longrepr[2])
    elif report.failed:
        entry["error"] = report.longreprtext[-3000:]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get(DEVICE_CHECK_JSON)
    if not path:
        return
    import torch

    cuda = torch.cuda.is_available()
    outcomes = [entry.get("outcome", "not run") for entry in _CHECKED.values()]
    payload = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "seconds": round(time.time() - _STARTED, 1),
        "exit_status": int(exitstatus),
        "counts": {name: outcomes.count(name) for name in sorted(set(outcomes))},
        "tests": dict(sorted(_CHECKED.items())),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=1, default=str) + "\n")
