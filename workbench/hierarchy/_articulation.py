"""``row-articulation``: motion coherence plus the coherence of each row's edge tilt (the default descriptor)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from workbench.hierarchy._descriptors import (
    SIGNALS,
    _SilhouetteDescriptor,
    register_descriptor,
    row_coherence,
)

TILT_SIGNALS = ("left-tilt", "right-tilt")


def subpixel_edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left and right silhouette edges ``[frames, h]`` in pixels, sub-pixel from the grey border pixels.

    ``x: [frames, h, w]`` coverage in [0, 1]. For a step edge rasterised by area coverage, the first
    pixel at >= 0.5 and its outer neighbour together fix the edge position to a fraction of a pixel;
    integer edges would make the tilt of a slowly leaning segment a staircase. Also returns which
    rows hold any pixel at >= 0.5 (``present``); edges of empty rows are 0.
    """
    frames, h, w = x.shape
    filled = x >= 0.5
    present: np.ndarray = np.asarray(filled.any(axis=2))
    first = filled.argmax(axis=2)
    last = w - 1 - filled[:, :, ::-1].argmax(axis=2)
    t_idx, r_idx = np.meshgrid(np.arange(frames), np.arange(h), indexing="ij")

    def grey(cols: np.ndarray, inside: np.ndarray) -> np.ndarray:
        return np.where(inside, x[t_idx, r_idx, np.clip(cols, 0, w - 1)], 0.0)

    # Pixel i covers [i, i + 1]; an edge at e leaves coverage i + 1 - e in pixel floor(e).
    left = first + 1.0 - x[t_idx, r_idx, first] - grey(first - 1, first > 0)
    right = last + x[t_idx, r_idx, last] + grey(last + 1, last < w - 1)
    return np.where(present, left, 0.0), np.where(present, right, 0.0), present


def edge_tilts(x: np.ndarray) -> np.ndarray:
    """Per-row tilt of the left and right edges ``[2, frames, h]``: edge shift per row, central difference.

    The rows of one rigid limb segment lean together, so they share this signal over time, and it
    changes where one segment hands over to the next (shoulder, hip, knee, ankle) even when the
    silhouette's width does not. Rows without a filled neighbour above and below get 0.
    """
    left, right, present = subpixel_edges(x)
    valid = np.zeros_like(present)
    valid[:, 1:-1] = present[:, :-2] & present[:, 2:]
    tilts = []
    for edge in (left, right):
        diff = np.zeros_like(edge)
        diff[:, 1:-1] = (edge[:, 2:] - edge[:, :-2]) / 2.0
        tilts.append(np.where(valid, diff, 0.0))
    return np.stack(tilts).astype(np.float64)


@register_descriptor
class RowArticulation(_SilhouetteDescriptor):
    """row-articulation: motion coherence of each row plus the coherence of its edges' tilt, equal weight.

    Two blocks of correlation profiles: ``motion`` is ``row-coherence`` (occupancy, edges, centroid,
    change); ``tilt`` correlates the lean of the left and right edges (sub-pixel, per row) with every
    other row's. Rows of one rigid segment lean together, so the tilt block marks the joints
    (shoulders, hips, knees, ankles) that the motion block blurs where an arm overlaps the torso.
    ``feature_groups()`` labels the blocks so clustering weighs them equally. Features: 7 x n_rows.
    """

    name: ClassVar[str] = "row-articulation"

    def _rows(self) -> int:
        if self.n_rows is None:
            raise ValueError("feature names are known once n_rows is set (or after the first sequence)")
        return self.n_rows

    def feature_names(self) -> list[str]:
        rows = range(self._rows())
        return [f"{s}:row{r}" for s in (*SIGNALS, *TILT_SIGNALS) for r in rows]

    def feature_groups(self) -> list[str]:
        n = self._rows()
        return ["motion"] * (len(SIGNALS) * n) + ["tilt"] * (len(TILT_SIGNALS) * n)

    def row_features(self, x: np.ndarray) -> np.ndarray:
        n = self._rows()
        return np.concatenate([row_coherence(self.signals(x), n), row_coherence(edge_tilts(x), n)], axis=1)


__all__ = ["TILT_SIGNALS", "RowArticulation", "edge_tilts", "subpixel_edges"]
