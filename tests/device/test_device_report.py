"""The device check's JSON: one file with the device, each checked test's outcome and its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_device_check_writes_outcomes_and_figures_to_one_json(tmp_path: Path) -> None:
    target = tmp_path / "out" / "device-check.json"
    env = {**os.environ, "WORKBENCH_DEVICE_CHECK_JSON": str(target)}
    # The device report and a CUDA-only test elsewhere: one records figures, the other skips without CUDA.
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "device or cuda",
                    "tests/device/test_device_check.py::test_report_device",
                    "tests/cost/test_cost_memory.py", "tests/cost/test_cost_latency.py"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    report = json.loads(target.read_text())
    assert report["torch"] and report["cpu"] and report["exit_status"] == 0
    device = report["tests"]["tests/device/test_device_check.py::test_report_device"]
    assert device["outcome"] == "passed" and device["figures"]["device"] == report["device"]
    cuda_tests = {k: v for k, v in report["tests"].items() if k.startswith("tests/cost/")}
    assert len(cuda_tests) == 2, "only the tests marked cuda are checked, not every test of the files"
    if report["cuda"] is None:
        assert all(v["outcome"] == "skipped" and "needs a CUDA device" in v["reason"] for v in cuda_tests.values())
    assert sum(report["counts"].values()) == len(report["tests"]) == 3

