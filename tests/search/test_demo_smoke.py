"""`workbench demo` end to end on tiny studies: the tree comparison on shared seeds, the test step, the
search and every report it prints (the real demo runs the same code on the quick set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.cli import main

pytestmark = pytest.mark.slow


def test_the_demo_runs_both_studies_and_prints_the_verdicts(write_study, tmp_path: Path, capsys) -> None:
    trees = write_study(name="demo-trees", trials=2, iterations=2)
    trees.write_text(trees.read_text().replace('name = "random"', 'name = "grid"')
                     .replace("fta = [true, false]", "fta = [true]")
                     .replace("eval_every = 2", "eval_every = 2\nseeds = 2"))
    search = write_study(name="demo-search", trials=2, iterations=2)
    project = tmp_path / "demo-home"
    assert main(["demo", "--trees-study", str(trees), "--study", str(search), "--project-dir", str(project)]) == 0
    out = capsys.readouterr().out
    assert "per-tree comparison on validation subjects" in out and "per-tree comparison on test subjects" in out
    assert out.count("verdict: ") >= 2
    assert "scored on the held-out test subjects" in out
    assert "workflowType=machine_learning" in out, "the MLflow link opens the model-training view"
    assert (project / "reports" / "demo-trees" / "report.json").is_file()
