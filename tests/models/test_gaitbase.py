"""GaitBase: OpenGait's baseline shapes, parts cut from a tree, and the family seen by training, search and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.models import SpecError, TreeCut, create_model, get_family, model_family
from workbench.models._gaitbase import GaitBase, GaitBaseSpec
from workbench.training import ModelConfig, load_for_inference


def tiny(**overrides: object) -> GaitBase:
    torch.manual_seed(0)
    model = create_model("gaitbase", channels=[4, 4, 8, 8], embedding_channels=6, num_classes=5, **overrides)
    assert isinstance(model, GaitBase)
    return model.eval()


def test_the_published_layout() -> None:
    with torch.device("meta"):
        model = create_model("gaitbase")
    spec = model.spec
    assert (spec.channels, spec.strides, spec.parts, spec.num_classes) == ((64, 128, 256, 512), (1, 2, 2, 1), 16, 74)
    assert spec.part_list == (1,) * 16 and spec.part_split == ()
    # A 64x44 silhouette ends at 16x11 after the strides 1, 2, 2, 1.
    maps = model.stages(model.stem(torch.zeros(1, 1, 64, 44, device="meta")))
    assert tuple(maps.shape) == (1, 512, 16, 11)
    assert tuple(model.fcs.fc_bin.shape) == (16, 512, 256)
    assert tuple(model.classifier.fc_bin.shape) == (16, 256, 74)
    assert model.bnneck.num_features == 256 * 16
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_parts_are_a_tree_cut_rescaled_to_the_feature_height() -> None:
    spec = GaitBaseSpec.from_tree("casia-b-paper", parts=4)
    assert spec.part_list == (2, 8, 4, 2)  # the paper's [8, 32, 16, 8] at 16 rows
    assert GaitBaseSpec.from_tree("uniform-64", parts=16) == GaitBaseSpec()
    with torch.device("meta"):
        model = create_model("gaitbase-small", tree="casia-b-paper", parts=4, num_classes=3)
    assert model.spec.split_lists() == {"parts": [2, 8, 4, 2]}
    assert model.parts == 4 and tuple(model.classifier.fc_bin.shape) == (4, 64, 3)
    with pytest.raises(ValueError, match="either part_split or tree/parts"):
        create_model("gaitbase-small", tree="casia-b-paper", part_split=[16])


def test_parts_pool_mean_plus_max_after_a_temporal_max() -> None:
    model = tiny(tree="casia-b-paper", parts=4)
    x = torch.rand(2, 5, 64, 12)
    with torch.no_grad():
        features = model.pool_parts(x)
        maps = model.stages(model.stem(x.reshape(10, 1, 64, 12))).reshape(2, 5, 8, 16, 3).amax(dim=1)
        rows = torch.split(maps, [2, 8, 4, 2], dim=2)
        expected = torch.stack([r.flatten(2).mean(-1) + r.flatten(2).amax(-1) for r in rows], dim=-1)
        torch.testing.assert_close(features, expected)
        # A temporal max does not care about frame order.
        shuffled = model.pool_parts(x[:, torch.tensor([3, 0, 4, 2, 1])])
    torch.testing.assert_close(shuffled, features)


def test_logits_are_scaled_cosines_and_embeddings_come_before_the_bnneck() -> None:
    model = tiny()
    x = torch.rand(3, 4, 64, 8)
    with torch.no_grad():
        out = model(x)
        features = model.forward_features(x)
        scaled = create_model("gaitbase", channels=[4, 4, 8, 8], embedding_channels=6, num_classes=5,
                              logit_scale=32.0).eval()
        scaled.load_state_dict(model.state_dict())
        doubled = scaled(x).logits
    torch.testing.assert_close(out.embeddings, model.fcs(model.pool_parts(x)))
    torch.testing.assert_close(out.embeddings, features)
    torch.testing.assert_close(out.inference, out.embeddings)
    assert out.logits.abs().max() <= 16.0 + 1e-4
    torch.testing.assert_close(doubled, 2 * out.logits)


def test_training_batches_never_show_padding_to_batchnorm() -> None:
    model = tiny().train()
    seq = torch.rand(1, 3, 64, 8)
    padded = torch.cat([seq, torch.full((1, 4, 64, 8), 5.0)], dim=1)
    with torch.no_grad():
        alone = model.pool_parts(seq)
        with_padding = model.pool_parts(padded, torch.tensor([3]))
    torch.testing.assert_close(with_padding, alone)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"channels": (8, 16, 32)}, r"channels=\[8, 16, 32\]: give four positive widths"),
        ({"strides": (1, 3, 2, 1)}, r"strides=\[1, 3, 2, 1\]: give four strides, each 1 or 2"),
        ({"part_split": (8, 4)}, r"part_split \[8, 4\] sums to 12 rows but the feature height there is 16"),
        ({"input_height": 30}, r"give part_split explicitly or build the spec with GaitBaseSpec\.from_tree"),
        ({"logit_scale": 0.0}, r"logit_scale=0.0: must be > 0"),
    ],
)
def test_spec_errors_name_the_field_and_the_fix(fields: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        GaitBaseSpec(**fields)


def test_spec_round_trips_through_plain_dicts() -> None:
    spec = GaitBaseSpec.from_tree("casia-b-paper", parts=4, num_classes=10)
    assert GaitBaseSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.merge({"embedding_channels": 32}).embedding_channels == 32
    with pytest.raises(ValueError, match="colour"):
        spec.merge({"colour": "red"})


def test_the_family_cuts_trains_and_logs_like_the_others() -> None:
    family = get_family("gaitbase")
    assert model_family("gaitbase-small") is family and family.spec_type is GaitBaseSpec
    assert family.levels((2, 4)) == [4]  # one pooled level: the finest cut
    spec = family.cut("gaitbase-small", TreeCut(tree="casia-b-paper", cuts=(2, 4), channels=(4, 4, 8, 8)), 3, {})
    assert (spec.part_list, spec.channels, spec.num_classes) == ((2, 8, 4, 2), (4, 4, 8, 8), 3)
    with torch.device("meta"):
        model = ModelConfig(name="gaitbase-small", tree="casia-b-paper", cuts=(2, 4), fta=True).build(7)
    assert isinstance(model, GaitBase) and model.spec.part_list == (2, 8, 4, 2) and model.spec.num_classes == 7


def test_models_list_and_cost_show_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["gaitbase"]["parts"] == 16 and rows["gaitbase"]["classes"] == 74
    assert rows["gaitbase"]["description"].startswith("GaitBase for 64x44 input")
    assert main(["cost", "gaitbase", "--json"]) == 0
    flat = json.loads(capsys.readouterr().out)
    assert flat["params"] == rows["gaitbase"]["parameters"] and flat["gflops"] > 0


def test_export_refuses_it_naming_the_families_that_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", "gaitbase-small", "--out", str(tmp_path)]) == 2
    assert "export writes models of the hstl family only (those with an OpenGait exporter), got GaitBase" in (
        capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_train_command_trains_it_and_the_checkpoint_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    config = tmp_path / "train.toml"
    config.write_text(
        f'iterations = 2\nsave_every = 2\ndevice = "cpu"\namp = "off"\noutput_dir = "{out.as_posix()}"\n'
        '[data]\npath = "synthetic"\np = 2\nk = 2\nframes = 4\n'
        '[model]\nname = "gaitbase-small"\ntree = "casia-b-paper"\ncuts = [4]\nchannels = [4, 4, 8, 8]\n'
    )
    assert main(["train", str(config), "--no-progress"]) == 0
    assert "trained 2 iterations" in capsys.readouterr().out
    model, loaded = load_for_inference(out / "checkpoint-00000002.pt")
    assert isinstance(model, GaitBase) and loaded.model.name == "gaitbase-small"
    assert model.spec.part_list == (2, 8, 4, 2)
