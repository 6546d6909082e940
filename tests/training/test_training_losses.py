"""Losses checked against hand-worked cases and a brute-force reference."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from workbench.training import (
    BatchAllTripletLoss,
    GaitLoss,
    LossConfig,
    PartCrossEntropyLoss,
    pairwise_part_distances,
)


def _one_dim(values: list[float], *parts: list[float]) -> torch.Tensor:
    """Embeddings ``[n, 1, p]`` from one list of scalars per part."""
    return torch.tensor([values, *parts]).T.unsqueeze(1).contiguous()


def test_triplet_matches_hand_worked_case() -> None:
    # d(0,1)=.1 d(0,2)=1 d(0,3)=.15 d(1,2)=.9 d(1,3)=.05 d(2,3)=.85; with margin .2 the eight valid
    # triplets give .15 .25 .05 .15 .9 1.0 and two zeros: mean of non-zero 2.5 / 6.
    emb = _one_dim([0.0, 0.1, 1.0, 0.15])
    out = BatchAllTripletLoss(0.2)(emb, torch.tensor([0, 0, 1, 1]))
    assert out.loss.item() == pytest.approx(2.5 / 6, abs=1e-5)
    assert out.nonzero_fraction.item() == pytest.approx(6 / 8)
    assert out.mean_distance.item() == pytest.approx(3.05 / 6, abs=1e-5)


def test_triplet_averages_parts_and_ignores_zero_terms() -> None:
    # Part 2 separates the ids by far more than the margin, so it adds 0 and halves the mean.
    emb = _one_dim([0.0, 0.1, 1.0, 0.15], [0.0, 0.0, 5.0, 5.0])
    out = BatchAllTripletLoss(0.2)(emb, torch.tensor([0, 0, 1, 1]))
    assert out.loss.item() == pytest.approx(2.5 / 6 / 2, abs=1e-5)
    assert out.nonzero_fraction.item() == pytest.approx(6 / 16)


def test_triplet_is_zero_with_zero_gradient_when_all_satisfied() -> None:
    emb = _one_dim([0.0, 0.01, 3.0, 3.02]).requires_grad_()
    out = BatchAllTripletLoss(0.2)(emb, torch.tensor([5, 5, 9, 9]))
    out.loss.backward()
    assert out.loss.item() == 0.0
    assert out.nonzero_fraction.item() == 0.0
    assert emb.grad is not None and torch.count_nonzero(emb.grad) == 0


def _brute_force(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    n, _, parts = emb.shape
    losses = []
    for part in range(parts):
        x = emb[:, :, part]
        terms = []
        for a, p, q in itertools.product(range(n), repeat=3):
            if a != p and labels[a] == labels[p] and labels[a] != labels[q]:
                terms.append(F.relu(margin + (x[a] - x[p]).norm() - (x[a] - x[q]).norm()))
        t = torch.stack(terms)
        nonzero = (t > 0).sum()
        losses.append(t.sum() / nonzero.clamp_min(1))
    return torch.stack(losses).mean()


def test_triplet_matches_brute_force_with_uneven_classes() -> None:
    gen = torch.Generator().manual_seed(3)
    emb = torch.randn(9, 5, 3, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2])  # 4, 2 and 3 sequences per id
    got = BatchAllTripletLoss(0.5)(emb, labels).loss
    assert got.item() == pytest.approx(_brute_force(emb, labels, 0.5).item(), rel=1e-5)


def test_triplet_gradient_is_finite_for_duplicate_embeddings() -> None:
    # Sampling with replacement repeats sequences; identical embeddings must not give NaN gradients.
    emb = torch.tensor([[[1.0]], [[1.0]], [[1.1]]]).requires_grad_()
    out = BatchAllTripletLoss(0.2)(emb, torch.tensor([0, 0, 1]))
    out.loss.backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    assert out.loss.item() > 0


def test_pairwise_distances_match_cdist() -> None:
    emb = torch.randn(6, 4, 3, dtype=torch.float64)
    expected = torch.cdist(emb.permute(2, 0, 1), emb.permute(2, 0, 1))
    off = ~torch.eye(6, dtype=torch.bool)
    assert torch.allclose(pairwise_part_distances(emb)[:, off], expected[:, off].float(), atol=1e-5)


def test_triplet_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[n, c, p\]"):
        BatchAllTripletLoss()(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        BatchAllTripletLoss()(torch.zeros(4, 3, 2), torch.zeros(5, dtype=torch.long))


def test_cross_entropy_is_mean_over_parts() -> None:
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [1.5, -1.0]]])  # [n=2, classes=2, p=2]
    labels = torch.tensor([0, 1])
    per_part = [F.cross_entropy(logits[:, :, i], labels) for i in range(2)]
    out = PartCrossEntropyLoss()(logits, labels)
    assert out.loss.item() == pytest.approx(float(sum(per_part)) / 2, abs=1e-6)
    # argmax per part: sample 0 -> 0 (right), 1 (wrong); sample 1 -> 1 (right), 0 (wrong)
    assert out.accuracy.item() == pytest.approx(0.5)


def test_cross_entropy_scale_and_smoothing() -> None:
    logits = torch.randn(5, 4, 3)
    labels = torch.tensor([0, 1, 2, 3, 0])
    out = PartCrossEntropyLoss(scale=16.0, label_smoothing=0.1)(logits, labels)
    expected = F.cross_entropy(16.0 * logits, labels[:, None].expand(5, 3), label_smoothing=0.1)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cross_entropy_names_class_mismatch() -> None:
    with pytest.raises(ValueError, match="3 classes"):
        PartCrossEntropyLoss()(torch.zeros(2, 3, 1), torch.tensor([0, 3]))


def test_gait_loss_weights_and_metrics() -> None:
    emb = _one_dim([0.0, 0.1, 1.0, 0.15])
    labels = torch.tensor([0, 0, 1, 1])
    logits = torch.randn(4, 2, 1)
    config = LossConfig(triplet_weight=2.0, ce_weight=0.5, ce_scale=1.0)
    total, metrics = GaitLoss(config)(emb, logits, labels)
    ce = PartCrossEntropyLoss()(logits, labels).loss
    assert total.item() == pytest.approx(2.0 * 2.5 / 6 + 0.5 * ce.item(), abs=1e-5)
    assert metrics["loss"].item() == pytest.approx(total.item(), abs=1e-6)
    assert set(metrics) >= {"triplet_loss", "triplet_nonzero", "mean_distance", "ce_loss", "accuracy"}
    scaled, scaled_metrics = GaitLoss(config)(emb, logits, labels, triplet_scale=3.0)
    assert scaled.item() == pytest.approx(3 * 2.0 * 2.5 / 6 + 0.5 * ce.item(), abs=1e-5)
    assert scaled_metrics["loss"].item() == pytest.approx(total.item(), abs=1e-6)


def test_loss_config_rejects_no_loss() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LossConfig(triplet_weight=0.0, ce_weight=0.0)
    _, metrics = GaitLoss(LossConfig(triplet_weight=0.0))(torch.zeros(2, 1, 1), torch.zeros(2, 2, 1),
                                                          torch.tensor([0, 1]))
    assert "triplet_loss" not in metrics
