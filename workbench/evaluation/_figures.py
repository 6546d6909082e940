"""Figures of evaluation results: the probe-view x gallery-view rank-1 heat map."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from workbench.evaluation._results import CrossViewResult


def plot_view_heatmap(result: CrossViewResult, path: str | Path, dpi: int = 120) -> Path:
    """Draw one rank-1 heat map per condition (probe view rows, gallery view columns) into a PNG."""
    # A bare Figure renders off-screen without touching pyplot's global backend or state.
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = len(result.conditions)
    views = result.views
    side = max(3.5, 0.42 * len(views) + 1.5)
    fig = Figure(figsize=(side * count + 0.8, side), layout="constrained")
    axes = fig.subplots(1, count, squeeze=False)
    image = None
    for ax, condition in zip(axes[0], result.conditions, strict=True):
        acc = result.accuracy(condition)
        masked = np.ma.masked_invalid(acc)
        image = ax.imshow(masked, vmin=0.0, vmax=100.0, cmap="viridis", origin="upper")
        ax.set_title(f"{condition}: {result.mean(condition):.1f} %")
        ax.set_xticks(range(len(views)), views, rotation=90, fontsize=7)
        ax.set_yticks(range(len(views)), views, fontsize=7)
        ax.set_xlabel("gallery view")
        ax.set_ylabel("probe view")
        if len(views) <= 16:
            for i in range(len(views)):
                for j in range(len(views)):
                    if not np.isnan(acc[i, j]):
                        # Dark text on the bright end of viridis, light text elsewhere.
                        colour = "black" if acc[i, j] > 60 else "white"
                        ax.text(j, i, f"{acc[i, j]:.0f}", ha="center", va="center", fontsize=6, color=colour)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="rank-1 (%)")
    fig.suptitle(f"{result.protocol}: rank-1 per probe / gallery view ({result.metric})")
    fig.savefig(path, dpi=dpi)
    return path
