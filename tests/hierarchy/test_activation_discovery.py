"""Trees from what a trained model sees: ``workbench discover --checkpoint`` describes its feature maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.cli import main


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.data.synth import SynthConfig, render_dataset

    root = tmp_path_factory.mktemp("synth") / "tiny"
    render_dataset(root, SynthConfig.tiny(subjects=6, types=("nm-01", "nm-02", "bg-01"), frames=(8, 10)))
    return root


@pytest.fixture(scope="module")
def checkpoint(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.training import DataConfig, ModelConfig, TrainConfig, Trainer

    config = TrainConfig(data=DataConfig(path=str(tiny_data), p=2, k=2, frames=4),
                         model=ModelConfig(name="hstl-small", channels=(4, 8, 8)), iterations=1, save_every=1,
                         device="cpu", output_dir=str(tmp_path_factory.mktemp("run")))
    result = Trainer(config, progress=False).fit()
    assert result.checkpoint is not None
    return Path(result.checkpoint)


def test_hstl_feature_maps_keep_the_whole_height_stage_by_stage() -> None:
    from workbench.models import create_model, feature_map_reader

    model = create_model("hstl-small", num_classes=4, channels=(4, 8, 8)).eval()
    x = torch.rand(2, 6, 64, 44)
    with torch.no_grad():
        stem, second, third = (model.feature_maps(x, stage=s) for s in (1, 2, 3))
    assert stem.shape == (2, 4, 6, 64, 44) and second.shape == (2, 8, 6, 64, 44)
    assert third.shape[:2] == (2, 8) and third.shape[3:] == (64, 44)  # after FTA's temporal aggregation
    with pytest.raises(ValueError, match=r"stages 1 .* to 3"):
        model.feature_maps(x, stage=4)
    # ARME convolutions stay inside their region; the stem convolves the whole height and is cut after.
    assert [model.feature_map_regions(s) for s in (1, 2, 3)] == [[64], [40, 24], [8, 32, 16, 8]]
    halved = create_model("hstl-small", num_classes=4, downsample_before=[0],
                          stages=[{"channels": [8, 8], "split": [20, 12]}, {"channels": [8, 8], "split": [4, 16, 8, 4]}])
    assert halved.feature_map_regions(1) == [64] and halved.feature_map_regions(2) == [20, 12]
    read = feature_map_reader(model, stage=1)
    sequence = (np.random.default_rng(0).random((6, 64, 44)) * 255).astype(np.uint8)
    maps = read(sequence)
    assert maps.dtype == np.float32 and maps.shape == (4, 6, 64, 44)
    with torch.no_grad():  # uint8 silhouettes are read as OpenGait does, scaled to [0, 1]
        expected = model.feature_maps(torch.from_numpy(sequence / 255.0).float()[None], stage=1)[0].numpy()
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)


def test_a_family_without_feature_maps_says_so() -> None:
    from workbench.models import create_model, feature_map_reader

    model = create_model("gaitbase-small", num_classes=4)
    with pytest.raises(NotImplementedError, match="does not expose its feature maps"):
        feature_map_reader(model)


def test_discover_describes_a_checkpoints_feature_maps_of_its_training_subjects(
        tiny_data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "from-model.json"
    assert main(["discover", "--data", str(tiny_data), "--checkpoint", str(checkpoint), "--stage", "2",
                 "--bootstrap", "3", "--max-sequences", "20", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "descriptor: activation-stats [64 rows x 24 features]" in printed  # 8 channels x mean, spread, speed
    assert "the tree will echo those boundaries" in captured.err  # stage 2 runs per region of [40, 24]
    tree = json.loads(out.read_text())
    provenance = tree["provenance"]
    assert provenance["descriptor"] == "activation-stats" and provenance["stage"] == 2
    assert provenance["checkpoint"] == str(checkpoint.resolve()) and provenance["model"] == "hstl-small"
    partition = json.loads((tiny_data / "partition.json").read_text())
    assert provenance["subset"] == "train" and provenance["n_subjects"] == len(partition["TRAIN_SET"])
    assert tree["n_rows"] == 64 and provenance["n_sequences"] == 20 and provenance["map_regions"] == [40, 24]


def test_discover_refuses_mismatched_descriptors_and_stages_before_reading_data(
        tiny_data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "t.json")
    assert main(["discover", "--data", str(tiny_data), "--descriptor", "activation-stats", "--out", out]) == 2
    assert "reads a model's feature maps" in capsys.readouterr().err
    assert main(["discover", "--data", str(tiny_data), "--descriptor", "row-stats", "--checkpoint", str(checkpoint),
                 "--out", out]) == 2
    assert "reads silhouettes" in capsys.readouterr().err
    assert main(["discover", "--data", str(tiny_data), "--checkpoint", str(checkpoint), "--stage", "7",
                 "--out", out]) == 2
    assert "stage 7" in capsys.readouterr().err
    assert main(["discover", "--data", str(tiny_data), "--max-sequences", "0", "--out", out]) == 2
    assert "--max-sequences 0" in capsys.readouterr().err
    assert not Path(out).exists()
