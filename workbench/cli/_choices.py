"""Choice lists several commands share, kept free of torch so that ``--help`` stays fast."""

from __future__ import annotations

# The same names as workbench.models.AMP_CHOICES (a test keeps them equal).
AMP = ("off", "bf16", "fp16", "auto")
