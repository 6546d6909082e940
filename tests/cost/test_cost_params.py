"""Parameter counts of small modules, checked against hand-computed figures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.cost import count_parameters


class _TwoPart(nn.Module):
    """A backbone/head split like HSTL's, with one parameter on the root."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv3d(1, 32, 3, padding=1, bias=False), nn.LeakyReLU())
        self.head = nn.Linear(32, 10)
        self.scale = nn.Parameter(torch.ones(3))


def test_counts_match_hand_computed_totals_and_children() -> None:
    counts = count_parameters(_TwoPart())
    conv = 32 * 1 * 3 * 3 * 3  # no bias
    linear = 32 * 10 + 10
    assert counts.by_module == {"backbone": conv, "head": linear, "_root": 3}
    assert counts.total == conv + linear + 3 == 1197
    assert counts.trainable == counts.total


def test_frozen_parameters_are_counted_but_not_trainable() -> None:
    model = _TwoPart()
    model.backbone.requires_grad_(False)
    counts = count_parameters(model)
    assert counts.total == 1197
    assert counts.trainable == 1197 - 864


def test_tied_weights_are_counted_once() -> None:
    embed = nn.Linear(4, 6, bias=False)
    model = nn.Sequential(embed, nn.ReLU(), nn.Linear(6, 4, bias=False))
    model[2].weight = nn.Parameter(embed.weight.t().contiguous())
    untied = count_parameters(model).total
    model[2] = embed  # the same module twice
    tied = count_parameters(model)
    assert untied == 48
    assert tied.total == 24
    assert sum(tied.by_module.values()) == tied.total


def test_meta_device_model_counts_the_same_without_memory() -> None:
    with torch.device("meta"):
        meta = _TwoPart()
    assert next(meta.parameters()).is_meta
    assert count_parameters(meta) == count_parameters(_TwoPart())


def test_rejects_non_module() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        count_parameters("hstl-casia-b")  # type: ignore[arg-type]
