"""Every registered model: forward, backward, output shapes and variable-length batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from workbench.models import (
    GaitModel,
    ModelOutput,
    autocast,
    create_model,
    list_models,
    model_family,
    register_model,
)

TINY_CLASSES = 5


def tiny_overrides(name: str) -> dict[str, Any]:
    """Shrink a registered model's widths as its family says (its splits and structure stay), so CPU tests are fast."""
    with torch.device("meta"):
        model = create_model(name)
    return {**model_family(name).narrow(model.spec), "num_classes": TINY_CLASSES}


def tiny_model(name: str) -> GaitModel:
    torch.manual_seed(0)
    model = create_model(name, **tiny_overrides(name))
    assert isinstance(model, GaitModel), f"{name} does not implement the model contract (GaitModel)"
    return model


def input_height(model: GaitModel) -> int:
    return int(model.spec.input_height)


@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_and_contract(name: str) -> None:
    model = tiny_model(name)
    x = torch.rand(3, 7, input_height(model), 8)
    out = model(x)
    assert isinstance(out, ModelOutput)
    n, c, p = out.embeddings.shape
    assert n == 3
    assert out.logits.shape == (3, TINY_CLASSES, p)
    assert out.inference.shape == (3, c, p)
    features = model.forward_features(x)
    assert features.shape == (3, c, p)
    embeddings, logits = model.forward_head(features)
    torch.testing.assert_close(embeddings, out.embeddings)
    torch.testing.assert_close(logits, out.logits)
    assert p == model.parts == model.spec.parts


@pytest.mark.parametrize("name", list_models())
def test_backward_reaches_every_parameter(name: str) -> None:
    model = tiny_model(name).train()
    out = model(torch.rand(4, 6, input_height(model), 8))
    loss = out.embeddings.square().mean() + out.logits.logsumexp(1).mean()
    if out.view_logits is not None:
        loss = loss + out.view_logits.logsumexp(1).mean()
    loss.backward()
    for key, param in model.named_parameters():
        assert param.grad is not None, f"{key} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{key} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", list_models())
def test_variable_lengths_match_one_at_a_time(name: str) -> None:
    model = tiny_model(name).eval()
    h = input_height(model)
    lengths = [11, 1, 2, 5, 3, 8, 4]
    frames = max(lengths)
    torch.manual_seed(1)
    sequences = [torch.rand(length, h, 8) for length in lengths]
    batch = torch.rand(len(lengths), frames, h, 8)  # padding holds noise: it must not leak in
    for i, seq in enumerate(sequences):
        batch[i, : len(seq)] = seq
    seqL = torch.tensor(lengths)
    with torch.no_grad():
        together = model(batch, seqL)
        for i, seq in enumerate(sequences):
            alone = model(seq.unsqueeze(0))
            torch.testing.assert_close(together.embeddings[i], alone.embeddings[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(together.logits[i], alone.logits[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_variable_length_gradients_match_one_at_a_time(name: str) -> None:
    # Eval mode keeps BatchNorm per sequence, so the batch's gradient is the sum of the lone ones.
    model = tiny_model(name).eval()
    h = input_height(model)
    lengths = [7, 2, 5]
    torch.manual_seed(2)
    sequences = [torch.rand(length, h, 8) for length in lengths]
    batch = torch.rand(len(lengths), max(lengths), h, 8)
    for i, seq in enumerate(sequences):
        batch[i, : len(seq)] = seq

    def gradients(loss: torch.Tensor) -> list[torch.Tensor]:
        params = [p for p in model.parameters() if p.requires_grad]
        return list(torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True))

    together = gradients(model(batch, torch.tensor(lengths)).embeddings.square().sum())
    alone = [gradients(model(seq.unsqueeze(0)).embeddings.square().sum()) for seq in sequences]
    for index, grad in enumerate(together):
        torch.testing.assert_close(grad, sum(g[index] for g in alone), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list_models())
def test_bf16_autocast_trains_and_infers_variable_lengths(name: str) -> None:
    # What `amp = "bf16"` training and `workbench evaluate --amp bf16` run: fixed and padded batches.
    model = tiny_model(name).train()
    h = input_height(model)
    with autocast("cpu", "bf16"):
        out = model(torch.rand(4, 6, h, 8))
        loss = out.embeddings.float().square().mean() + out.logits.float().logsumexp(1).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad(), autocast("cpu", "bf16"):
        padded = model(torch.rand(3, 9, h, 8), torch.tensor([9, 4, 6])).inference
    assert padded.shape[0] == 3 and torch.isfinite(padded.float()).all()


@pytest.mark.parametrize("name", list_models())
def test_full_lengths_take_the_fixed_path(name: str) -> None:
    model = tiny_model(name).eval()
    x = torch.rand(2, 6, input_height(model), 8)
    with torch.no_grad():
        fixed = model(x)
        full = model(x, torch.tensor([6, 6]))
    torch.testing.assert_close(fixed.embeddings, full.embeddings, atol=0.0, rtol=0.0)


def test_short_sequences_are_repeated_like_the_public_code() -> None:
    model = tiny_model("hstl-small").eval()
    one = torch.rand(1, 1, 64, 8)
    two = torch.rand(1, 2, 64, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(one).embeddings, model(one.repeat(1, 3, 1, 1)).embeddings)
        torch.testing.assert_close(model(two).embeddings, model(two.repeat(1, 2, 1, 1)).embeddings)


def test_create_model_rejects_unknown_names_and_listing_is_sorted() -> None:
    names = list_models()
    assert names == sorted(names)
    assert {"hstl-casia-b", "hstl-oumvlp", "hstl-gait3d", "hstl-small"} <= set(names)
    with pytest.raises(ValueError, match=r"unknown model 'hstl-nope'.*hstl-casia-b"):
        create_model("hstl-nope")


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("hstl-casia-b")(lambda **kw: torch.nn.Identity())


def test_overrides_reach_the_spec_and_bad_keys_fail() -> None:
    with torch.device("meta"):
        model = create_model("hstl-casia-b", num_classes=10)
    assert model.spec.num_classes == 10
    assert model.Head1.fc_bin.shape == (73, 128, 10)
    with pytest.raises(ValueError, match=r"unknown config key.*colour"):
        create_model("hstl-casia-b", colour="red")


def test_small_model_from_a_named_tree() -> None:
    pytest.importorskip("workbench.hierarchy", reason="workbench.hierarchy is not available")
    from workbench import hierarchy

    if not hasattr(hierarchy, "load_tree"):
        pytest.skip("workbench.hierarchy has no load_tree yet")
    with torch.device("meta"):
        model = create_model("hstl-small", tree="uniform-64", cuts=(2, 4))
    assert [st.split for st in model.spec.stages] == [(32, 32), (16, 16, 16, 16)]


def test_input_errors_name_the_fix() -> None:
    model = tiny_model("hstl-small")
    with pytest.raises(ValueError, match="height 32 does not match"):
        model(torch.rand(1, 5, 32, 8))
    with pytest.raises(ValueError, match=r"expected \[n, s, h, w\]"):
        model(torch.rand(5, 64, 8))
    with pytest.raises(ValueError, match=r"seqL must lie in 1\.\.5"):
        model(torch.rand(2, 5, 64, 8), torch.tensor([5, 6]))
