"""The CLI's choices and help come from the library's registries, and ``workbench --help`` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.cli import build_parser, main


def test_top_level_help_imports_no_heavy_dependency() -> None:
    code = (
        "import sys\n"
        "from workbench.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'optuna', 'mlflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out


def test_a_newly_registered_protocol_is_a_choice(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import workbench.evaluation as evaluation

    monkeypatch.setattr(evaluation, "list_protocols", lambda: ["casia-b", "my-protocol"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "x.pt", "--data", "d", "--protocol", "synthetic"])
    assert "invalid choice: 'synthetic' (choose from 'casia-b', 'my-protocol')" in capsys.readouterr().err
    args = build_parser().parse_args(["evaluate", "x.pt", "--data", "d", "--protocol", "my-protocol"])
    assert args.protocol == "my-protocol"


def test_help_lists_the_registered_names(capsys) -> None:
    from workbench.evaluation import list_protocols
    from workbench.hierarchy import LINKAGES, list_descriptors

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ", ".join(list_protocols()) in text and "off, bf16, fp16, auto" in text
    with pytest.raises(SystemExit):
        main(["discover", "--help"])
    text = capsys.readouterr().out
    assert ", ".join(LINKAGES) in text
    assert all(f"  {name} " in text for name in list_descriptors())
