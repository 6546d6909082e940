"""Reading trees does not load discovery's heavy dependencies; every public name still resolves."""

from __future__ import annotations

import subprocess
import sys

import workbench.hierarchy as hierarchy


def test_every_public_name_resolves() -> None:
    for name in hierarchy.__all__:
        assert getattr(hierarchy, name) is not None, name
    assert set(hierarchy.__all__) <= set(dir(hierarchy))


def test_reading_a_tree_loads_neither_scikit_learn_nor_matplotlib() -> None:
    # A study worker or a model builder reads trees only; scikit-learn alone costs about 2 s per process.
    code = (
        "import sys\n"
        "from workbench.hierarchy import load_tree, preset_tree\n"
        "import workbench.search\n"
        "assert load_tree('casia-b-paper').n_rows == 64\n"
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_discovery_names_load_on_first_use() -> None:
    code = (
        "import sys\n"
        "from workbench.hierarchy import HierarchyDiscovery\n"
        "print('sklearn' in sys.modules, HierarchyDiscovery.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "workbench.hierarchy._discovery"]
