"""OpenGait interop: load a checkpoint written with the public key names; export and re-import."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from workbench.models import (
    HSTL,
    GuessedSplitsWarning,
    HSTLSpec,
    SpecError,
    create_model,
    export_opengait,
    load_opengait_checkpoint,
    spec_from_state_dict,
)

Getter = Callable[[HSTL], torch.Tensor]


def public_key_table(spec: HSTLSpec) -> dict[str, Getter]:
    """Public HSTL state-dict names -> how to reach that tensor through the model's attributes.

    Written from the key list of the public checkpoint, independently of the model's own naming.
    """
    table: dict[str, Getter] = {}
    for i in range(len(spec.stem_channels)):
        table[f"arme1.{2 * i}.conv3d.weight"] = lambda m, i=i: m.arme1.convs[i].conv3d.weight
    table["astp1.hpp.0.p"] = lambda m: m.astp1.hpp[0].p
    table["astp1.proj.conv.weight"] = lambda m: m.astp1.proj.conv.weight
    for s, stage in enumerate(spec.stages):
        k = s + 2
        for block in range(2):
            for r in range(len(stage.split)):
                table[f"arme{k}.{block}.conv3d.{r}.conv3d.weight"] = (
                    lambda m, k=k, b=block, r=r: getattr(m, f"arme{k}")[b].conv3d[r].conv3d.weight
                )
        for r in range(len(stage.split)):
            table[f"astp{k}.hpp.{r}.p"] = lambda m, k=k, r=r: getattr(m, f"astp{k}").hpp[r].p
            if stage.fta:
                table[f"astp{k}_fta.hpp.{r}.p"] = lambda m, k=k, r=r: getattr(m, f"astp{k}_fta").hpp[r].p
                for f in range(2):
                    table[f"fta.mma.{r}.fcs.{f}.weight"] = lambda m, r=r, f=f: m.fta.mma[r].fcs[f].weight
                    table[f"fta.mma.{r}.fcs.{f}.bias"] = lambda m, r=r, f=f: m.fta.mma[r].fcs[f].bias
        if stage.project:
            table[f"astp{k}.proj.conv.weight"] = lambda m, k=k: getattr(m, f"astp{k}").proj.conv.weight
            if stage.fta:
                table[f"astp{k}_fta.proj.conv.weight"] = lambda m, k=k: getattr(m, f"astp{k}_fta").proj.conv.weight
    table["HPP.p"] = lambda m: m.HPP.p
    table["Head0.fc_bin"] = lambda m: m.Head0.fc_bin
    table["Head1.fc_bin"] = lambda m: m.Head1.fc_bin
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        table[f"Bn.{name}"] = lambda m, name=name: getattr(m.Bn, name)
    return table


def randomised(model: HSTL) -> HSTL:
    """Perturb every parameter and the BN statistics so a wrong mapping cannot pass."""
    torch.manual_seed(3)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
        model.Bn.running_mean.normal_(0, 0.1)
        model.Bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def public_checkpoint(model: HSTL, path: Path) -> Path:
    table = public_key_table(model.spec)
    state = {key: get(model).detach().clone() for key, get in table.items()}
    adam_state = {"state": {}, "param_groups": [{"lr": 1e-4, "params": list(range(len(state)))}]}
    scheduler = {"milestones": collections.Counter([70000]), "gamma": 0.1, "last_epoch": 80000}
    torch.save({"model": state, "optimizer": adam_state, "scheduler": scheduler, "iteration": 80000}, path)
    return path


def test_public_casia_b_checkpoint_loads_strictly_and_gives_the_same_embeddings(tmp_path: Path) -> None:
    source = randomised(create_model("hstl-casia-b"))
    path = public_checkpoint(source, tmp_path / "HSTL-80000.pt")
    assert len(torch.load(path, weights_only=False)["model"]) == 41
    with pytest.warns(GuessedSplitsWarning, match="casia-b-paper"):
        loaded = load_opengait_checkpoint(path).eval()
    assert loaded.spec == source.spec
    x = torch.rand(2, 4, 64, 22)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).embeddings, source(x).embeddings, atol=1e-5, rtol=1e-5)


def test_class_count_comes_from_the_checkpoint(tmp_path: Path) -> None:
    with torch.device("meta"):
        shell = create_model("hstl-casia-b", num_classes=73)
    state = {key: torch.zeros(value.shape, dtype=value.dtype) for key, value in shell.state_dict().items()}
    with pytest.warns(GuessedSplitsWarning):
        assert spec_from_state_dict(state).num_classes == 73


def tiny_spec() -> HSTLSpec:
    return HSTLSpec.from_splits([[24, 40], [8, 16, 16, 24]], channels=(4, 6, 8), num_classes=7)


def test_custom_splits_need_a_hint_then_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = randomised(HSTL(tiny_spec()))
    path = public_checkpoint(source, tmp_path / "custom.pt")
    # The weights cannot tell these splits from the CASIA-B paper's: that guess is made, and said.
    with pytest.warns(GuessedSplitsWarning, match="'casia-b-paper'"):
        guessed = load_opengait_checkpoint(path)
    assert guessed.spec.split_lists()["stage2"] == [40, 24]
    with pytest.raises(SpecError, match="regions per stage"):
        load_opengait_checkpoint(path, splits=[[24, 40], [8, 16, 40]])
    loaded = load_opengait_checkpoint(path, splits=[[24, 40], [8, 16, 16, 24]]).eval()
    assert loaded.spec == source.spec
    x = torch.rand(2, 5, 64, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).embeddings, source(x).embeddings, atol=1e-5, rtol=1e-5)


def test_export_writes_public_names_and_a_model_cfg_then_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = randomised(HSTL(tiny_spec()))
    ckpt, cfg = export_opengait(source, tmp_path / "out" / "HSTL-00001.pt", tmp_path / "out" / "hstl.yaml", iteration=1)
    saved = torch.load(ckpt, weights_only=True)
    assert set(saved) == {"model", "optimizer", "scheduler", "iteration"}
    assert saved["iteration"] == 1
    assert set(saved["model"]) == set(public_key_table(source.spec))
    assert cfg is not None
    model_cfg = yaml.safe_load(cfg.read_text())["model_cfg"]
    assert model_cfg["model"] == "HSTL"
    assert model_cfg["class_num"] == 7
    assert model_cfg["channels"] == [4, 6, 8]
    assert [s["split_param"] for s in model_cfg["stages"]] == [[24, 40], [8, 16, 16, 24]]
    loaded = load_opengait_checkpoint(ckpt, model_cfg=cfg).eval()
    assert loaded.spec == source.spec
    x = torch.rand(1, 7, 64, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).embeddings, source(x).embeddings, atol=1e-5, rtol=1e-5)


def test_tree_hint_cuts_at_the_checkpoint_region_counts(tmp_path: Path) -> None:
    hierarchy = pytest.importorskip("workbench.hierarchy", reason="workbench.hierarchy is not available")
    spec = HSTLSpec.from_tree(hierarchy.load_tree("uniform-64"), cuts=(2, 4), channels=(4, 6, 8), num_classes=3)
    source = randomised(HSTL(spec))
    path = public_checkpoint(source, tmp_path / "tree.pt")
    loaded = load_opengait_checkpoint(path, tree=hierarchy.load_tree("uniform-64"))
    assert loaded.spec == spec


def test_mismatched_config_and_missing_file_are_reported(tmp_path: Path) -> None:
    source = HSTL(tiny_spec())
    ckpt, _ = export_opengait(source, tmp_path / "a.pt")
    other = HSTL(tiny_spec().replace(num_classes=9))
    _, other_cfg = export_opengait(other, tmp_path / "b.pt", tmp_path / "b.yaml")
    with pytest.raises(SpecError, match="different network"):
        load_opengait_checkpoint(ckpt, model_cfg=other_cfg)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_opengait_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(SpecError, match="no stem weights"):
        load_opengait_checkpoint({"model": {"foo": torch.zeros(1)}})


def test_a_checkpoint_with_pickled_code_is_refused_without_torchs_advice(tmp_path: Path) -> None:
    from workbench.models import read_checkpoint_file

    path = tmp_path / "shared.pt"
    torch.save({"model": {}, "hook": print}, path)
    with pytest.raises(SpecError) as info:
        read_checkpoint_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused: it holds pickled Python code or objects (print)")
    assert "state_dict" in message and "\n" not in message
    assert "weights_only" not in message and "safe_globals" not in message
