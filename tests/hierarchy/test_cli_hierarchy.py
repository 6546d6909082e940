"""``workbench discover | dendrogram | trees`` end to end on real GIFs and rendered synthetic data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workbench.cli import build_parser, main
from workbench.hierarchy import PartitionTree, list_descriptors

REAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real silhouette fixtures not found at {REAL}")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.data.synth import SynthConfig
    from workbench.data.synth._dataset import render_dataset

    out = tmp_path_factory.mktemp("synth") / "data"
    config = SynthConfig.tiny(subjects=10, views=(72, 90, 108), types=("nm-01", "nm-02", "bg-01"), frames=(40, 50), seed=1)
    render_dataset(out, config)
    return out


@needs_real
def test_discover_on_real_gifs_splits_legs_from_upper_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "real.json"
    assert main(["discover", "--data", str(REAL), "--bootstrap", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 sequences, 3 subjects" in text and "stability k=2" in text
    tree = PartitionTree.load(out)
    upper, _legs = tree.cut(2)
    assert 28 <= upper <= 40, f"first split at row {upper}, expected the hip/upper-thigh band 28-40"
    assert tree.provenance["descriptor"] == "row-coherence" and tree.paper_cuts[0] == tree.cut(2)
    figure = tmp_path / "real.png"
    assert main(["dendrogram", str(out), "--data", str(REAL), "--cuts", "2", "4", "--out", str(figure)]) == 0
    assert figure.stat().st_size > 10_000


def test_discover_on_synthetic_beats_the_uniform_tree(synthetic: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth.json"
    assert main(["discover", "--data", str(synthetic), "--bootstrap", "2", "--out", str(out)]) == 0
    assert "ground truth (6 parts" in capsys.readouterr().out
    scores = json.loads(out.read_text())["provenance"]["ground_truth"]
    found, uniform = scores["discovered"], scores["uniform"]
    assert found["k"] == 6 and sum(found["cut"]) == 64
    assert found["row_error"] <= uniform["row_error"] - 1.0
    assert found["ari"] >= uniform["ari"] + 0.1


def test_single_subject_skips_stability_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.data.synth import SynthConfig
    from workbench.data.synth._dataset import render_dataset

    data = tmp_path / "one"
    render_dataset(data, SynthConfig.tiny(subjects=1, views=(90,), types=("nm-01",), frames=(20, 20)))
    assert main(["discover", "--data", str(data), "--out", str(tmp_path / "one.json")]) == 0
    assert "stability: skipped: needs at least 2 subjects, the data has 1" in capsys.readouterr().out


def test_dendrogram_rejects_a_tree_of_another_height(synthetic: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dendrogram", "uniform-32", "--data", str(synthetic), "--out", str(tmp_path / "x.png")])
    assert code == 2
    assert "has 32 rows but the data is 64 rows high" in capsys.readouterr().err


def test_dendrogram_of_a_preset_alone_and_unreachable_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svg = tmp_path / "oumvlp.svg"
    assert main(["dendrogram", "oumvlp-paper", "--cuts", "3", "5", "--out", str(svg)]) == 0
    assert svg.read_text().lstrip().startswith("<?xml")
    assert main(["dendrogram", "oumvlp-paper", "--cuts", "2", "--out", str(svg)]) == 2
    assert "reachable k: 1, 3, 5" in capsys.readouterr().err


def test_trees_lists_presets_and_discovered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "hierarchies"
    folder.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "hierarchies" / "casia-b-paper.json", folder / "mine.json")
    assert main(["trees", "--dir", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "oumvlp-paper" in text and "[4, 24, 4]" in text and "bf3091b9fe94" in text
    assert "mine" in text


def test_discover_help_documents_every_silhouette_descriptor(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["discover", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in list_descriptors())


def test_discover_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--data", str(tmp_path), "--out", str(tmp_path / "t.json")]) == 2
    assert "no sequences found" in capsys.readouterr().err
    assert main(["discover", "--data", str(tmp_path), "--out", str(tmp_path / "t.txt")]) == 2
    assert "must end in .json" in capsys.readouterr().err
