"""Other distributions add model families, descriptors and protocols through entry points, loaded lazily."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = '''
import torch

from workbench.evaluation import SyntheticProtocol, register_protocol
from workbench.hierarchy import register_descriptor
from workbench.hierarchy._descriptors import RowStats
from workbench.models import register_model


@register_model("demo-identity")
def demo_identity(**overrides):
    """A demo model from another distribution."""
    return torch.nn.Identity()


@register_descriptor
class DemoRows(RowStats):
    """demo-rows: row-stats under another name."""

    name = "demo-rows"


register_protocol("demo-protocol")(SyntheticProtocol)
'''

CHECK = '''
import sys

import workbench.evaluation
import workbench.hierarchy
import workbench.models
from workbench.cli import build_parser

assert "wb_demo_plugin" not in sys.modules, "entry points load only when a registry is read"
from workbench.models import create_model, list_models

assert "demo-identity" in list_models() and "wb_demo_plugin" in sys.modules
assert isinstance(create_model("demo-identity"), __import__("torch").nn.Identity)
assert "demo-rows" in workbench.hierarchy.list_descriptors(kind="silhouette")
assert "demo-protocol" in workbench.evaluation.list_protocols()
args = build_parser().parse_args(["evaluate", "x.pt", "--data", "d", "--protocol", "demo-protocol"])
assert args.protocol == "demo-protocol"
print("ok")
'''


def _install(root: Path, module: str, entry_points: str) -> None:
    """A distribution on ``root`` as pip leaves it: the module plus its dist-info with entry points."""
    (root / "wb_demo_plugin.py").write_text(module)
    info = root / "wb_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wb-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def _run(root: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_a_distribution_registers_a_model_a_descriptor_and_a_protocol(tmp_path: Path) -> None:
    _install(tmp_path, PLUGIN, """
        [workbench.models]
        demo = wb_demo_plugin
        [workbench.descriptors]
        demo = wb_demo_plugin
        [workbench.protocols]
        demo = wb_demo_plugin
    """)
    done = _run(tmp_path, CHECK)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr


def test_a_broken_extension_names_its_distribution(tmp_path: Path) -> None:
    _install(tmp_path, "raise ImportError('needs a missing package')\n", "[workbench.models]\nbroken = wb_demo_plugin\n")
    done = _run(tmp_path, "from workbench.models import list_models\nlist_models()\n")
    assert done.returncode != 0
    assert ("entry point 'broken' (wb_demo_plugin) of wb-demo-plugin, group workbench.models, failed to load: "
            "ImportError: needs a missing package; fix or uninstall wb-demo-plugin") in done.stderr
