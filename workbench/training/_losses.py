"""Training losses: batch-all triplet per part and cross-entropy per part, combined by weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class TripletLossOutput(NamedTuple):
    """The triplet loss and two detached statistics worth logging."""

    loss: torch.Tensor
    nonzero_fraction: torch.Tensor
    mean_distance: torch.Tensor


class CrossEntropyOutput(NamedTuple):
    """The per-part cross-entropy and the detached per-part top-1 accuracy."""

    loss: torch.Tensor
    accuracy: torch.Tensor


def pairwise_part_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distances per part: ``embeddings [n, c, p]`` -> ``[p, n, n]``."""
    x = embeddings.float().permute(2, 0, 1)  # [p, n, c]
    squared = x.pow(2).sum(-1)
    d2 = squared.unsqueeze(2) + squared.unsqueeze(1) - 2 * torch.bmm(x, x.transpose(1, 2))
    # The floor keeps sqrt differentiable when two embeddings coincide (duplicates drawn with replacement).
    return d2.clamp_min(1e-12).sqrt()


def _padded_indices(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the column indices where ``mask`` is true, left-packed: ``[n, m]`` indices and validity."""
    width = max(int(mask.sum(1).max().item()), 1)
    order = torch.sort(mask.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :width]
    valid = torch.gather(mask, 1, order)
    return order, valid


class BatchAllTripletLoss(nn.Module):
    """Batch-all triplet loss per part; each part's loss is the mean of its non-zero terms.

    Every (anchor, positive, negative) with ``anchor != positive``, equal anchor/positive labels and a
    different negative label contributes ``relu(margin + d(a, p) - d(a, n))``. Each part averages the
    terms that are non-zero (zero when none is); the result is the mean over parts.
    """

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"triplet margin must be >= 0, got {margin}")
        self.margin = float(margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> TripletLossOutput:
        """``embeddings: [n, c, p]``, ``labels: int64 [n]``."""
        if embeddings.dim() != 3:
            raise ValueError(f"triplet loss expects embeddings [n, c, p], got shape {tuple(embeddings.shape)}")
        n = embeddings.shape[0]
        if labels.shape != (n,):
            raise ValueError(f"triplet loss expects labels [{n}], got shape {tuple(labels.shape)}")
        dist = pairwise_part_distances(embeddings)  # [p, n, n]
        parts = dist.shape[0]
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(n, dtype=torch.bool, device=labels.device)
        pos_idx, pos_ok = _padded_indices(same & ~eye)  # [n, kp]
        neg_idx, neg_ok = _padded_indices(~same)  # [n, kn]
        # Gathering only positives and negatives keeps memory at p*n*K*(n-K), not p*n^3.
        d_ap = torch.gather(dist, 2, pos_idx.unsqueeze(0).expand(parts, -1, -1))
        d_an = torch.gather(dist, 2, neg_idx.unsqueeze(0).expand(parts, -1, -1))
        terms = F.relu(self.margin + d_ap.unsqueeze(3) - d_an.unsqueeze(2))  # [p, n, kp, kn]
        valid = (pos_ok.unsqueeze(2) & neg_ok.unsqueeze(1)).unsqueeze(0).expand_as(terms)
        terms = terms * valid
        nonzero = (terms > 0).flatten(1).sum(1)  # [p]
        per_part = terms.flatten(1).sum(1) / nonzero.clamp_min(1)
        loss = per_part.mean()
        total_valid = valid.sum()
        with torch.no_grad():
            fraction = nonzero.sum().float() / total_valid.clamp_min(1).float()
            off_diag = ~eye
            mean_distance = dist[:, off_diag].mean() if n > 1 else dist.new_zeros(())
        return TripletLossOutput(loss, fraction.detach(), mean_distance.detach())


class PartCrossEntropyLoss(nn.Module):
    """Cross-entropy on every part's logits (scaled, optionally label-smoothed), averaged over parts."""

    def __init__(self, scale: float = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"cross-entropy scale must be > 0, got {scale}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {label_smoothing}")
        self.scale = float(scale)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> CrossEntropyOutput:
        """``logits: [n, classes, p]``, ``labels: int64 [n]``."""
        if logits.dim() != 3:
            raise ValueError(f"cross-entropy expects logits [n, classes, p], got shape {tuple(logits.shape)}")
        n, classes, parts = logits.shape
        if labels.shape != (n,):
            raise ValueError(f"cross-entropy expects labels [{n}], got shape {tuple(labels.shape)}")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise ValueError(
                f"labels span {int(labels.min())}..{int(labels.max())} but the model has {classes} classes; "
                "build the model with the training set's class count"
            )
        target = labels.unsqueeze(1).expand(n, parts)
        loss = F.cross_entropy(logits.float() * self.scale, target, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            accuracy = (logits.argmax(1) == target).float().mean()
        return CrossEntropyOutput(loss, accuracy.detach())


def view_cross_entropy(view_logits: torch.Tensor, views: torch.Tensor) -> CrossEntropyOutput:
    """Cross-entropy of the predicted view: ``view_logits: [n, views]``, ``views: int64 [n]``."""
    if view_logits.dim() != 2 or views.shape != view_logits.shape[:1]:
        raise ValueError(
            f"view loss expects view_logits [n, views] and views [n], got {tuple(view_logits.shape)} and "
            f"{tuple(views.shape)}"
        )
    count = view_logits.shape[1]
    if views.numel() and (int(views.min()) < 0 or int(views.max()) >= count):
        raise ValueError(
            f"view classes span {int(views.min())}..{int(views.max())} but the model predicts {count} views; "
            f"build it with num_views >= {int(views.max()) + 1} (e.g. model.options.num_views)"
        )
    loss = F.cross_entropy(view_logits.float(), views)
    with torch.no_grad():
        accuracy = (view_logits.argmax(1) == views).float().mean()
    return CrossEntropyOutput(loss, accuracy.detach())


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and settings: triplet (margin 0.2) plus per-part cross-entropy.

    ``view_weight`` weighs a view cross-entropy, used only when the model returns view logits
    (GaitGS; its paper uses 0.2) and the batch carries views.
    """

    triplet_margin: float = 0.2
    triplet_weight: float = 1.0
    ce_scale: float = 1.0
    ce_label_smoothing: float = 0.0
    ce_weight: float = 1.0
    view_weight: float = 0.2

    def __post_init__(self) -> None:
        if self.triplet_weight < 0 or self.ce_weight < 0 or self.view_weight < 0:
            raise ValueError("loss.triplet_weight, loss.ce_weight and loss.view_weight must be >= 0")
        if self.triplet_weight == 0 and self.ce_weight == 0:
            raise ValueError("loss.triplet_weight and loss.ce_weight are both 0; set at least one > 0")


class GaitLoss(nn.Module):
    """Weighted sum of the triplet and cross-entropy losses, with metrics for logging."""

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()
        self.triplet = BatchAllTripletLoss(self.config.triplet_margin)
        self.cross_entropy = PartCrossEntropyLoss(self.config.ce_scale, self.config.ce_label_smoothing)

    def forward(
        self,
        embeddings: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        *,
        triplet_embeddings: torch.Tensor | None = None,
        triplet_labels: torch.Tensor | None = None,
        triplet_scale: float = 1.0,
        view_logits: torch.Tensor | None = None,
        views: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and detached metrics; ``triplet_*`` replace the local batch (e.g. gathered ranks).

        ``view_logits: [n, views]`` with ``views: int64 [n]`` add the weighted view cross-entropy.
        """
        cfg = self.config
        metrics: dict[str, torch.Tensor] = {}
        total = embeddings.new_zeros((), dtype=torch.float32)
        logged = embeddings.new_zeros((), dtype=torch.float32)
        if cfg.triplet_weight > 0:
            trip_emb = embeddings if triplet_embeddings is None else triplet_embeddings
            trip_lab = labels if triplet_labels is None else triplet_labels
            trip = self.triplet(trip_emb, trip_lab)
            # triplet_scale undoes DDP's gradient averaging when every rank computes the gathered loss.
            total = total + cfg.triplet_weight * triplet_scale * trip.loss
            logged = logged + cfg.triplet_weight * trip.loss.detach()
            metrics["triplet_loss"] = trip.loss.detach()
            metrics["triplet_nonzero"] = trip.nonzero_fraction
            metrics["mean_distance"] = trip.mean_distance
        if cfg.ce_weight > 0:
            ce = self.cross_entropy(logits, labels)
            total = total + cfg.ce_weight * ce.loss
            logged = logged + cfg.ce_weight * ce.loss.detach()
            metrics["ce_loss"] = ce.loss.detach()
            metrics["accuracy"] = ce.accuracy
        if cfg.view_weight > 0 and view_logits is not None and views is not None:
            view = view_cross_entropy(view_logits, views)
            total = total + cfg.view_weight * view.loss
            logged = logged + cfg.view_weight * view.loss.detach()
            metrics["view_loss"] = view.loss.detach()
            metrics["view_accuracy"] = view.accuracy
        metrics["loss"] = logged
        return total, metrics
