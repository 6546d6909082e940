"""The README's install must work on a machine that is not this one: every pin exists on the public index,
and pip resolves the whole install (``-c constraints.txt ".[dev]"``) from that index alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi/{name}/json"


def _pins() -> list[tuple[str, str]]:
    pins = []
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins.append((name.strip(), version.strip()))
    return pins


def test_pins_name_releases_not_local_builds() -> None:
    # "torch==2.13.0+cpu" resolves only where that local wheel lies, and gives a GPU machine the CPU build.
    for name, version in _pins():
        assert "+" not in version, f"constraints.txt pins a local build {name}=={version}; pin the release"


def _installable_here(files: list[dict]) -> bool:
    """Whether a release has a file pip could install on this interpreter (an sdist, a pure wheel, or a
    wheel for this CPython on Linux x86_64)."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for f in files:
        filename = f["filename"]
        if f.get("packagetype") == "sdist" or filename.endswith("-py3-none-any.whl"):
            return True
        if re.search(rf"-{tag}-{tag}-manylinux[^ ]*x86_64\.whl$", filename):
            return True
    return False


@pytest.mark.slow
def test_every_pin_is_on_the_public_index() -> None:
    for name, version in _pins():
        try:
            with urllib.request.urlopen(PYPI.format(name=name), timeout=30) as response:
                project = json.load(response)
        except urllib.error.HTTPError as exc:
            assert exc.code != 404, f"constraints.txt: {name} is not a project on the public index (pypi.org)"
            pytest.skip(f"pypi.org answered {exc.code} for {name}; cannot check {name}=={version}")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            pytest.skip(f"pypi.org is not reachable from here ({exc}); cannot check the pins")
        files = project["releases"].get(version)
        assert files, (f"constraints.txt: {name}=={version} is not on the public index (pypi.org); the README's "
                       "install would fail on a user's machine")
        assert _installable_here(files), (
            f"{name}=={version} is on pypi.org but has no file for Python "
            f"{sys.version_info.major}.{sys.version_info.minor} on Linux x86_64")


#: What pip prints when it cannot reach an index, as opposed to an install that cannot be resolved.
_UNREACHABLE = re.compile(r"Max retries exceeded|Failed to establish a new connection|Temporary failure in name "
                          r"resolution|Could not fetch URL|Read timed out|ProxyError|Network is unreachable")


@pytest.mark.slow
def test_the_readme_install_resolves_from_the_public_index_alone(tmp_path: Path) -> None:
    # --isolated ignores this machine's pip configuration (its local wheel folders); --dry-run installs
    # nothing; --ignore-installed resolves every package as a fresh machine would.
    report = tmp_path / "resolved.json"
    command = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
               "--quiet", "--disable-pip-version-check", "--index-url", "https://pypi.org/simple",
               "-c", str(ROOT / "constraints.txt"), f"{ROOT}[dev]", "--report", str(report)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.skip("pip took over 15 minutes to reach pypi.org; cannot check the install")
    if done.returncode != 0 and _UNREACHABLE.search(done.stderr):
        pytest.skip(f"pypi.org is not reachable from here; cannot check the install:\n{done.stderr[-500:]}")
    assert done.returncode == 0, f"the README's install does not resolve from pypi.org alone:\n{done.stderr[-3000:]}"
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    for name, version in _pins():
        if name.lower() in resolved:
            assert resolved[name.lower()] == version, f"{name}: pip chose {resolved[name.lower()]}, not the pin {version}"
    assert resolved.get("torch") == dict(_pins())["torch"]
