"""GaitGS: the paper's sizes, its blocks' semantics, tree-cut parts, variable lengths and the view loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from workbench.models import GaitGS, GaitGSSpec, SpecError, build_model, create_model
from workbench.models.gaitgs._layers import ConvBlock3d, LocalSpan, StripBlock, UnitConv, ViewPrior

torch.set_num_threads(min(2, torch.get_num_threads()))

REAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"

#: Narrow widths that keep every structural choice (branches, spans, parts) and run in milliseconds.
TINY: dict[str, Any] = {"channels": [4, 4, 8], "out_channels": 6, "heads": 2, "ff_channels": 8, "depth": 1}


def tiny(name: str = "gaitgs-small", **overrides: Any) -> GaitGS:
    torch.manual_seed(0)
    model = create_model(name, **{**TINY, **overrides})
    assert isinstance(model, GaitGS)
    return model


def test_paper_model_has_the_public_codes_parameters_and_output_shape() -> None:
    with torch.device("meta"):
        model = create_model("gaitgs")
        out = model(torch.zeros(2, 30, 64, 44))
    # Counted from the public code's modules: 11.84 M (the paper rounds to 11.8 M).
    assert sum(p.numel() for p in model.parameters()) == 11_844_577
    assert out.embeddings.shape == (2, 256, 64)
    assert out.inference.shape == (2, 256, 64)
    assert out.view_logits is not None and out.view_logits.shape == (2, 11)
    assert out.logits.shape == (2, 0, 64)  # the paper trains no identity classifier


def test_128_model_takes_128x88_and_pools_two_rows_per_part() -> None:
    with torch.device("meta"):
        model = create_model("gaitgs-128")
        out = model(torch.zeros(1, 9, 128, 88))
    assert out.embeddings.shape == (1, 256, 64)
    assert model.spec.part_list == (2,) * 32
    assert model.spec.stage_splits == ((16,) * 8, (8,) * 8)
    with pytest.raises(ValueError, match=r"height 64 does not match.*input_height 128"):
        model(torch.zeros(1, 9, 64, 44))


def test_conv_block_is_the_sum_of_its_three_convolutions() -> None:
    torch.manual_seed(0)
    block = ConvBlock3d(3, 5)
    x = torch.randn(2, 3, 6, 8, 5)
    expected = F.leaky_relu(block.full(x) + block.spatial(x) + block.temporal(x), 0.01)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("split", [[4, 4, 4, 4], [2, 6, 5, 3]])
def test_strip_block_keeps_strips_blind_to_each_other(split: list[int]) -> None:
    torch.manual_seed(0)
    block = StripBlock(2, 3, split)
    x = torch.randn(1, 2, 5, 16, 6)
    changed = x.clone()
    changed[:, :, :, : split[0]] += 5.0  # only the first strip's rows
    with torch.no_grad():
        before, after = block._local(x), block._local(changed)
    rest = slice(split[0], None)
    torch.testing.assert_close(before[:, :, :, rest], after[:, :, :, rest])
    assert not torch.allclose(before[:, :, :, : split[0]], after[:, :, :, : split[0]])
    per_strip = torch.cat([block.strips(s) for s in x.split(split, dim=3)], dim=3)
    torch.testing.assert_close(before, per_strip.detach(), atol=1e-6, rtol=1e-6)


def test_units_are_three_frames_and_leftover_frames_are_dropped() -> None:
    unit = UnitConv(2)
    with torch.no_grad():
        assert unit(torch.randn(1, 2, 11, 4, 3)).shape[2] == 3
        x = torch.randn(1, 2, 9, 4, 3)
        y = x.clone()
        y[:, :, 3:6] += 1.0  # the second unit only
        a, b = unit(x), unit(y)
    torch.testing.assert_close(a[:, :, [0, 2]], b[:, :, [0, 2]])
    assert not torch.allclose(a[:, :, 1], b[:, :, 1])


def test_local_span_reads_only_nearby_frames_of_its_own_part() -> None:
    torch.manual_seed(0)
    span = LocalSpan(channels=4, parts=3, squeeze=2)
    x = torch.randn(1, 4, 12, 3)
    y = x.clone()
    y[:, :, 0, 1] += 3.0  # frame 0 of part 1
    with torch.no_grad():
        a, b = span(x), span(y)
    torch.testing.assert_close(a[..., [0, 2]], b[..., [0, 2]])  # other parts untouched
    # Kernels 3 (conv) then 3 (conv) and pooling of 5 frames reach at most 2 frames away.
    torch.testing.assert_close(a[:, :, 3:, 1], b[:, :, 3:, 1])
    assert not torch.allclose(a[:, :, :3, 1], b[:, :, :3, 1])


def test_view_prior_is_the_embedding_of_the_predicted_view() -> None:
    torch.manual_seed(0)
    prior = ViewPrior(in_channels=8, views=5, embed_channels=3)
    fine, coarse = torch.rand(4, 4, 9, 6, 3), torch.rand(4, 4, 3, 6, 3)
    with torch.no_grad():
        chosen, logits = prior(fine, coarse)
    assert logits.shape == (4, 5)
    torch.testing.assert_close(chosen, prior.embedding[logits.argmax(1)])


def test_tree_cuts_give_nested_uneven_parts_and_strips() -> None:
    spec = GaitGSSpec.from_tree("casia-b-paper", parts=4, strips=2)
    stage1, stage2 = spec.stage_splits
    assert sum(stage1) == 64 and sum(stage2) == 32 and sum(spec.part_list) == 32
    assert len(stage2) == 2 and len(spec.part_list) == 4 and spec.parts == 8
    assert list(stage1) == [2 * s for s in stage2]
    # Each strip is a union of consecutive parts: the cuts come from one tree.
    edges = {sum(spec.part_list[:i]) for i in range(len(spec.part_list) + 1)}
    assert {0, stage2[0], 32} <= edges
    assert len(set(spec.part_list)) > 1  # the paper's tree is not uniform
    uniform = GaitGSSpec.from_tree("uniform-64", parts=32, strips=8)
    assert uniform == GaitGSSpec()  # equal cuts normalise to the paper's default


def test_tree_parts_reach_the_registered_model_and_its_outputs() -> None:
    model = tiny("gaitgs-small", tree="casia-b-paper", parts=4, strips=2)
    assert model.spec.split_lists()["parts"] == list(GaitGSSpec.from_tree("casia-b-paper", 4, 2).part_list)
    with torch.no_grad():
        out = model.eval()(torch.rand(2, 7, 64, 10))
    assert out.embeddings.shape == (2, 6, 8)
    with pytest.raises(ValueError, match=r"gaitgs-small: .*strips=4, parts=2"):
        create_model("gaitgs-small", tree="uniform-64", parts=2, strips=4)
    with pytest.raises(ValueError, match="either block_splits/part_split or tree"):
        create_model("gaitgs-small", tree="uniform-64", part_split=[16, 16])


def test_uneven_parts_batch_equals_one_sequence_at_a_time() -> None:
    model = tiny("gaitgs-small", tree="casia-b-paper", parts=6, strips=3).eval()
    lengths = [14, 4, 7, 9, 2]
    torch.manual_seed(3)
    sequences = [torch.rand(n, 64, 6) for n in lengths]
    batch = torch.rand(len(lengths), max(lengths), 64, 6)  # noisy padding must not leak in
    for i, seq in enumerate(sequences):
        batch[i, : len(seq)] = seq
    with torch.no_grad():
        together = model(batch, torch.tensor(lengths))
        for i, seq in enumerate(sequences):
            alone = model(seq.unsqueeze(0))
            torch.testing.assert_close(together.embeddings[i], alone.embeddings[0], atol=1e-5, rtol=1e-5)
            assert together.view_logits is not None and alone.view_logits is not None
            torch.testing.assert_close(together.view_logits[i], alone.view_logits[0], atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real silhouette fixtures not found at {REAL}")
def test_real_walking_sequences_batched_match_alone() -> None:
    from workbench.data import cut_frames, pretreat_gif

    sequences = [torch.from_numpy(cut_frames(pretreat_gif(REAL / f"{name}.gif", size=64))) for name in ("nm", "cl")]
    model = tiny("gaitgs").eval()
    lengths = [len(s) for s in sequences]
    batch = torch.zeros(2, max(lengths), 64, 44)
    for i, seq in enumerate(sequences):
        batch[i, : len(seq)] = seq
    with torch.no_grad():
        together = model(batch, torch.tensor(lengths))
        for i, seq in enumerate(sequences):
            alone = model(seq.unsqueeze(0))
            torch.testing.assert_close(together.inference[i], alone.inference[0], atol=1e-5, rtol=1e-5)
    # Different walkers' sequences must not collapse onto one embedding.
    assert not torch.allclose(together.inference[0], together.inference[1], atol=1e-3)


def test_spec_errors_name_the_field_and_the_fix() -> None:
    with pytest.raises(SpecError, match=r"heads=3 must divide.*channels\[2\]=128"):
        GaitGSSpec(heads=3)
    with pytest.raises(SpecError, match="input_height=63: must be even"):
        GaitGSSpec(input_height=63)
    with pytest.raises(SpecError, match=r"part_split \[16, 8\] sums to 24 rows.*32"):
        GaitGSSpec(part_split=(16, 8))
    with pytest.raises(SpecError, match=r"give block_splits explicitly or build the spec with GaitGSSpec\.from_tree"):
        GaitGSSpec(input_height=40, part_split=(20,))
    with pytest.raises(SpecError, match="position_kernel=4: must be odd"):
        GaitGSSpec(position_kernel=4)
    with pytest.raises(ValueError, match=r"unknown config key.*colour"):
        create_model("gaitgs", colour="red")


def test_spec_round_trips_and_builds_through_the_shared_builder() -> None:
    spec = GaitGSSpec.from_tree("casia-b-paper", parts=8, strips=4, channels=(4, 4, 8), heads=2, num_classes=3)
    assert GaitGSSpec.from_dict(spec.to_dict()) == spec
    assert spec.merge({"num_views": 5}).num_views == 5
    with torch.device("meta"):
        model = build_model(spec)
    assert isinstance(model, GaitGS) and model.parts == 16
    assert GaitGSSpec(part_split=(1,) * 32) == GaitGSSpec()


def test_cost_counts_a_spec_like_a_name() -> None:
    from workbench.cost import estimate_cost

    by_name = estimate_cost("gaitgs", measure=("params", "flops"))
    by_spec = estimate_cost(GaitGSSpec(), measure=("params", "flops"))
    assert by_name.params == by_spec.params == 11_844_577
    assert by_name.gflops == pytest.approx(by_spec.gflops)
    assert by_name.gflops is not None and by_name.gflops > 50  # 3D convs over 30 frames dominate


def test_short_sequences_are_repeated_like_the_public_code() -> None:
    model = tiny().eval()
    one, two = torch.rand(1, 1, 64, 8), torch.rand(1, 2, 64, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(one).embeddings, model(one.repeat(1, 3, 1, 1)).embeddings)
        torch.testing.assert_close(model(two).embeddings, model(two.repeat(1, 2, 1, 1)).embeddings)


def test_view_loss_trains_the_view_classifier() -> None:
    from workbench.training import GaitLoss, LossConfig

    model = tiny(num_views=3).train()
    out = model(torch.rand(4, 6, 64, 8))
    loss_fn = GaitLoss(LossConfig(triplet_margin=0.25, ce_weight=0.0, view_weight=0.2))
    labels, views = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 2, 1, 2])
    total, metrics = loss_fn(out.embeddings, out.logits, labels, view_logits=out.view_logits, views=views)
    assert out.view_logits is not None
    expected = metrics["triplet_loss"] + 0.2 * F.cross_entropy(out.view_logits, views)
    torch.testing.assert_close(total, expected)
    total.backward()
    assert model.view_prior.classifier.weight.grad is not None
    assert model.view_prior.classifier.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"predicts 3 views; build it with num_views >= 6"):
        loss_fn(out.embeddings, out.logits, labels, view_logits=out.view_logits, views=torch.tensor([0, 5, 1, 2]))


def test_trainer_runs_gaitgs_with_views_from_the_batches(tmp_path: Path) -> None:
    from workbench.training import DataConfig, LossConfig, ModelConfig, TrainConfig, Trainer

    config = TrainConfig(
        data=DataConfig(path="synthetic", synthetic="tiny", p=2, k=2, frames=6),
        model=ModelConfig(name="gaitgs-small", options={**TINY, "num_views": 3}),
        loss=LossConfig(triplet_margin=0.25, ce_weight=0.0),
        iterations=2, save_every=0, device="cpu", output_dir=str(tmp_path / "run"),
    )
    result = Trainer(config, progress=False).fit()
    assert result.status == "completed"
    assert "view_loss" in result.last_metrics and result.last_metrics["view_loss"] > 0
    assert "ce_loss" not in result.last_metrics
