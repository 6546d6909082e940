"""Developer sessions: tests, lint, typecheck, bench, demo, gpu (the device check).

Every session installs the package with ``-c constraints.txt`` so that torch resolves to the pinned
release (the CUDA build on a GPU machine, a local CPU wheel where one lies) and MLflow to the tested one.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
CONSTRAINTS = ("-c", "constraints.txt")


def _install(session: nox.Session, extras: str = "dev") -> None:
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (what CI runs)."""
    _install(session)
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "MPLBACKEND": "Agg"}
    session.run("pytest", "-q", "--timeout=900", *session.posargs, env=env)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff over the package and the tests."""
    session.install("ruff")
    session.run("ruff", "check", "workbench", "tests", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Mypy over the package."""
    _install(session)
    session.run("mypy", "workbench")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed and memory benchmarks; each prints ratios against a baseline measured in the same run."""
    _install(session)
    env = {"MPLBACKEND": "Agg"}
    session.run("pytest", "tests/benchmarks", "-s", "-q", "-p", "no:cacheprovider", *session.posargs, env=env)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job on synthetic data: render, discover, search, log; prints where everything went."""
    _install(session, extras="dev")
    session.run("workbench", "demo", *session.posargs, env={"MPLBACKEND": "Agg"})


@nox.session(python=PYTHON)
def gpu(session: nox.Session) -> None:
    """The device check: every CUDA-only test and the timed device tests, figures to one JSON.

    ``nox -s gpu`` writes ``device-check.json``; ``nox -s gpu -- PATH`` writes PATH. Without a GPU
    it runs everything but the CUDA parts, at CPU sizes.
    """
    _install(session)
    target = session.posargs[0] if session.posargs else "device-check.json"
    env = {"WORKBENCH_DEVICE_CHECK_JSON": os.path.abspath(target), "MPLBACKEND": "Agg"}
    session.run("pytest", "tests", "-m", "device or cuda", "-s", "-q", "-p", "no:cacheprovider", env=env)
    session.log(f"device check figures: {os.path.abspath(target)}")
