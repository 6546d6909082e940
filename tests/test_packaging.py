"""The core installs and runs without the [search] extra; search and tracking commands name it when missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ("data", "hierarchy", "models", "training", "evaluation", "cost")
EXTRA = ("optuna", "optuna-dashboard", "mlflow", "pandas", "psycopg2-binary")

# Run before the code under test: the [search] modules look absent, as in an install without the extra
# (None in sys.modules: an import raises ModuleNotFoundError, importlib.util.find_spec answers None).
_BLOCKER = textwrap.dedent("""
    import sys
    for name in ("optuna", "optuna_dashboard", "mlflow", "pandas", "psycopg2"):
        sys.modules[name] = None
""")


def _without_extra(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCKER + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _requirement_names(requirements: list[str]) -> set[str]:
    return {r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for r in requirements}


def test_core_dependencies_leave_search_and_tracking_to_the_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert not core & set(EXTRA), f"core dependencies name {sorted(core & set(EXTRA))}; they belong to [search]"
    assert set(EXTRA) <= _requirement_names(extras["search"])
    # The README installs ".[dev]": it must still bring everything.
    assert f"{project['name']}[search]" in extras["dev"]


def test_core_packages_import_without_optuna_mlflow_or_pandas(tmp_path: Path) -> None:
    modules = ", ".join(repr(f"workbench.{name}") for name in CORE)
    done = _without_extra(f"""
        import importlib
        for name in ({modules}):
            importlib.import_module(name)
        print("imported")
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


def test_core_commands_run_without_the_extra(tmp_path: Path) -> None:
    done = _without_extra("""
        import sys
        from workbench.cli import main
        sys.exit(main(["--help"]))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "study" in done.stdout and "compare" in done.stdout
    done = _without_extra("""
        import sys
        from workbench.cli import main
        sys.exit(main(["models"]))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "hstl-casia-b" in done.stdout


@pytest.mark.parametrize("argv", [
    ["study", "report", "study.toml"],
    ["compare", "--tracking-uri", "sqlite:///{tmp}/mlflow.db"],
])
def test_search_and_tracking_commands_name_the_extra(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "mlflow.db").touch()
    args = [a.format(tmp=tmp_path) for a in argv]
    done = _without_extra(f"""
        import sys
        from workbench.cli import main
        sys.exit(main({args!r}))
    """, tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"workbench: error: `workbench {argv[0]}` needs ")
    assert "pip install 'hstl-workbench[search]'" in lines[0]
