"""``ModelOutput``: what every registered model's forward returns."""

from __future__ import annotations

from typing import NamedTuple

import torch


class ModelOutput(NamedTuple):
    """Training and inference features of a batch.

    ``embeddings: [n, c, p]`` for the triplet loss, ``logits: [n, classes, p]`` for the per-part
    cross-entropy, ``inference: [n, c, p]`` for retrieval (for HSTL the same tensor as ``embeddings``).
    ``view_logits: [n, views]`` feeds a view cross-entropy for models that predict the view (GaitGS).
    """

    embeddings: torch.Tensor
    logits: torch.Tensor
    inference: torch.Tensor
    view_logits: torch.Tensor | None = None
