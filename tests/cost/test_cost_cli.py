"""``workbench cost`` end to end: registry names, spec files, trees, options and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from workbench.cli import main
from workbench.cost import count_parameters
from workbench.hierarchy import load_tree
from workbench.models import SMALL_SPEC, build_model


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["cost", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_casia_b_preset_figures(capsys: pytest.CaptureFixture[str]) -> None:
    flat = _run_json(capsys, "hstl-casia-b")
    assert flat["params"] == 4_745_834
    assert flat["gflops"] == pytest.approx(51.65, abs=0.01)
    assert flat["input_shape"] == "1x30x64x44"
    assert flat["model"] == "hstl-casia-b"


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "hstl-casia-b", "--frames", "100"]) == 0
    out = capsys.readouterr().out
    assert "4,745,834" in out
    assert "170.65" in out
    assert "1x100x64x44" in out


def test_tree_preset_with_cuts_and_channels(capsys: pytest.CaptureFixture[str]) -> None:
    flat = _run_json(capsys, "casia-b-paper", "--cuts", "2", "4", "--channels", "8", "16", "32", "--num-classes", "10")
    assert flat["model"] == "casia-b-paper cuts 2-4"
    # hstl-small is the paper's CASIA-B splits at widths 8/16/32: the same network, built from splits.
    assert flat["params"] == count_parameters(build_model(SMALL_SPEC.replace(num_classes=10))).total
    three = _run_json(capsys, "uniform-64", "--cuts", "2", "4", "8", "--channels", "8", "16", "32", "32")
    assert three["model"] == "uniform-64 cuts 2-4-8"
    assert three["params"] > flat["params"]


def test_a_tree_without_cuts_or_channels_costs_the_papers_width(capsys: pytest.CaptureFixture[str]) -> None:
    # Cost figures of a tree are the paper's CASIA-B width at the paper's cuts, not training's CPU-sized width.
    default = _run_json(capsys, "casia-b-paper", "--num-classes", "10")
    assert default["model"] == "casia-b-paper cuts 2-4"
    paper = _run_json(capsys, "casia-b-paper", "--cuts", "2", "4", "--channels", "32", "64", "128", "--num-classes", "10")
    assert default["params"] == paper["params"]
    assert default["params"] > count_parameters(build_model(SMALL_SPEC.replace(num_classes=10))).total


def test_tree_file_and_spec_files_agree(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tree_file = tmp_path / "paper.json"
    load_tree("casia-b-paper").save(tree_file)
    from_tree = _run_json(capsys, str(tree_file), "--channels", "8", "16", "32")
    assert from_tree["model"] == "paper cuts 2-4"

    spec = SMALL_SPEC.to_dict()
    yaml_file = tmp_path / "small.yaml"
    yaml_file.write_text(yaml.safe_dump(spec))
    json_file = tmp_path / "small.json"
    json_file.write_text(json.dumps({"spec": spec}))
    from_yaml = _run_json(capsys, str(yaml_file))
    from_json = _run_json(capsys, str(json_file))
    assert from_yaml["model"] == "small"
    assert from_yaml["params"] == from_json["params"] == from_tree["params"]
    assert from_yaml["gflops"] == pytest.approx(from_tree["gflops"])



def test_spec_file_of_another_family(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from workbench.models import GAITGS_SMALL_SPEC

    spec_file = tmp_path / "gaitgs.toml"
    spec_file.write_text('family = "gaitgs"\n[spec]\nchannels = [8, 16, 32]\nout_channels = 64\ndepth = 2\n'
                         'heads = 4\nff_channels = 64\npart_split = [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]\n')
    flat = _run_json(capsys, str(spec_file))
    assert flat["model"] == "gaitgs"
    assert flat["params"] == count_parameters(build_model(GAITGS_SMALL_SPEC)).total
    spec_file.write_text('family = "nope"\n[spec]\n')
    assert main(["cost", str(spec_file)]) != 0
    assert "unknown model family 'nope'" in capsys.readouterr().err

def test_latency_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    flat = _run_json(capsys, "hstl-small", "--frames", "4", "--latency", "--repeats", "2", "--warmup", "0",
                     "--device", "cpu", "--threads", "1")
    assert flat["latency_repeats"] == 2
    assert flat["latency_ms"] > 0
    assert flat["threads"] == 1
    assert flat["device"] == "cpu"


def test_latency_under_bf16_autocast(capsys: pytest.CaptureFixture[str]) -> None:
    flat = _run_json(capsys, "hstl-small", "--frames", "4", "--latency", "--repeats", "1", "--warmup", "0",
                     "--device", "cpu", "--amp", "bf16")
    assert flat["amp"] == "bf16" and flat["latency_ms"] > 0
    assert main(["cost", "hstl-small", "--frames", "4", "--latency", "--device", "cpu", "--amp", "bf16"]) == 0
    assert "autocast bf16" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-thing"], "not a registered model"),
        (["hstl-casia-b", "--cuts", "2", "4"], "registered model"),
        (["uniform-64", "--cuts", "2", "4", "8"], "--channels"),
        (["hstl-small", "--frames", "0"], "--frames must be >= 1"),
        (["hstl-small", "--latency", "--device", "tpu"], "device='tpu'"),
        (["casia-b-paper", "--stage-channels", "32,64"], "1 pairs for 2 stages"),
        (["casia-b-paper", "--stage-channels", "32", "128,128"], "CONV1,CONV2"),
        (["casia-b-paper", "--stage-channels", "32,0", "1,1"], "CONV1,CONV2"),
        (["hstl-casia-b", "--stage-channels", "32,64", "128,128"], "registered model"),
        (["hstl-small", "--latency", "--device", "cpu", "--amp", "fp16"], "needs a CUDA device"),
    ],
)
def test_errors_are_one_clear_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["cost", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_spec_file_names_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('stem_channels = [32]\nstages = [{channels = [8, 8], split = [40, 20]}]\n')
    assert main(["cost", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "split" in err


def test_tree_preset_at_the_public_stage_widths_is_the_public_model(capsys: pytest.CaptureFixture[str]) -> None:
    flat = _run_json(capsys, "casia-b-paper", "--cuts", "2", "4", "--stage-channels", "32,64", "128,128")
    assert flat["params"] == 4_745_834
    assert flat["gflops"] == pytest.approx(51.65, abs=0.01)
