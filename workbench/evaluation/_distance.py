"""Chunked per-part distances between probe and gallery embeddings ``[N, c, p]``.

Euclidean: the per-part Euclidean distance averaged over parts (OpenGait's convention). Cosine:
one minus the per-part cosine similarity averaged over parts. Both are computed for one chunk of
probes at a time against a gallery prepared once (``GalleryIndex``), so memory grows with the
chunk, never with probes x gallery x parts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

METRICS: tuple[str, ...] = ("euclidean", "cosine")

# Elements of the [parts, probes, gallery] work buffer of one matmul step (64 MiB in float32):
# large enough to keep the matmul efficient, small enough to stay near the caches.
_WORK_ELEMENTS = 1 << 24
# Smallest squared distance kept (its root, 1e-15, is far below any float32 distance resolution).
_SQUARED_FLOOR = 1e-30
# Gallery sequences converted per step while building the index, to bound the temporary copies.
_BUILD_BLOCK = 512


def check_metric(metric: str) -> str:
    """Return ``metric`` if known, else raise naming the choices."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: expected one of {', '.join(METRICS)}")
    return metric


def check_embeddings(array: Any, name: str) -> None:
    """Raise unless ``array`` is a 3-d float array ``[n, c, p]``."""
    shape = tuple(getattr(array, "shape", ()))
    if len(shape) != 3:
        raise ValueError(f"{name}: expected embeddings [n, channels, parts], got shape {list(shape)}")
    dtype = getattr(array, "dtype", None)
    is_float = (isinstance(dtype, torch.dtype) and dtype.is_floating_point) or (
        isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.floating)
    )
    if not is_float:
        raise ValueError(f"{name}: expected floating-point embeddings, got dtype {dtype}")


def _block(array: Any, start: int, stop: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Rows ``start:stop`` of a numpy array / memmap / tensor as a ``dtype`` tensor on ``device``."""
    part = array[start:stop]
    tensor = part if isinstance(part, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(part))
    return tensor.to(device=device, dtype=dtype)


class GalleryIndex:
    """A gallery ``[G, c, p]`` laid out once for fast chunked distance queries.

    Euclidean: each part's vectors are centred on the gallery mean (distances do not change, but
    the ``|x|^2 + |y|^2 - 2 x.y`` expansion loses far less precision) and augmented with their
    squared norm, so one batched matmul yields squared distances. Cosine: parts are normalised and
    flattened, so one matmul yields the summed similarities.

    Example::

        index = GalleryIndex(gallery, "euclidean")
        d = index.distances(probe[:256])  # [256, G]
    """

    def __init__(
        self,
        gallery: np.ndarray | torch.Tensor,
        metric: str = "euclidean",
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        check_metric(metric)
        check_embeddings(gallery, "gallery")
        size, channels, parts = (int(v) for v in gallery.shape)
        if size == 0:
            raise ValueError("gallery: no sequences; the protocol selected an empty gallery")
        self.metric, self.dtype, self.device = metric, dtype, torch.device(device)
        self.size, self.channels, self.parts = size, channels, parts
        if metric == "euclidean":
            # The mean is accumulated in float64; the rest runs in ``dtype`` (float32 is plenty once
            # the values are centred).
            self._mean = self._gallery_mean(gallery).to(dtype)
            # [p, G, c + 2]: rows (-2 (y - m), 1, |y - m|^2) so that x' . y' = |x - y|^2.
            self._table = torch.empty((parts, size, channels + 2), dtype=dtype, device=self.device)
            for start in range(0, size, _BUILD_BLOCK):
                stop = min(size, start + _BUILD_BLOCK)
                block = (_block(gallery, start, stop, dtype, self.device) - self._mean).permute(2, 0, 1)
                self._table[:, start:stop, :channels] = block
                self._table[:, start:stop, :channels] *= -2.0
                self._table[:, start:stop, channels] = 1.0
                self._table[:, start:stop, channels + 1] = block.square().sum(-1)
        else:
            self._table = torch.empty((size, channels * parts), dtype=dtype, device=self.device)
            for start in range(0, size, _BUILD_BLOCK):
                stop = min(size, start + _BUILD_BLOCK)
                block = torch.nn.functional.normalize(_block(gallery, start, stop, dtype, self.device), dim=1)
                self._table[start:stop] = block.reshape(stop - start, -1)

    def _gallery_mean(self, gallery: np.ndarray | torch.Tensor) -> torch.Tensor:
        total = torch.zeros((self.channels, self.parts), dtype=torch.float64, device=self.device)
        for start in range(0, self.size, _BUILD_BLOCK):
            stop = min(self.size, start + _BUILD_BLOCK)
            total += _block(gallery, start, stop, torch.float64, self.device).sum(0)
        return total / self.size

    def default_chunk(self) -> int:
        """Probes per chunk: enough to reuse each gallery tile many times, few enough to bound memory."""
        if self.metric == "euclidean":
            # Gallery tiles shrink as chunks grow (see ``distances``), so the chunk is fixed.
            return 512
        return int(max(64, min(2048, _WORK_ELEMENTS // self.size)))

    def distances(self, probe: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Distances of a probe chunk to every gallery sequence: ``probe: [b, c, p]`` -> ``[b, G]``."""
        check_embeddings(probe, "probe")
        if tuple(probe.shape[1:]) != (self.channels, self.parts):
            raise ValueError(
                f"probe: embeddings [b, {probe.shape[1]}, {probe.shape[2]}] do not match the gallery's "
                f"[G, {self.channels}, {self.parts}]; extract both with the same model"
            )
        count = int(probe.shape[0])
        if self.metric == "cosine":
            x = torch.nn.functional.normalize(_block(probe, 0, count, self.dtype, self.device), dim=1)
            similarity = x.reshape(count, -1) @ self._table.T
            return similarity.mul_(-1.0 / self.parts).add_(1.0)
        centred = (_block(probe, 0, count, self.dtype, self.device) - self._mean).permute(2, 0, 1)  # [p, b, c]
        x = torch.empty((self.parts, count, self.channels + 2), dtype=self.dtype, device=self.device)
        x[..., : self.channels] = centred
        x[..., self.channels] = centred.square().sum(-1)
        x[..., self.channels + 1] = 1.0
        out = torch.empty((count, self.size), dtype=self.dtype, device=self.device)
        # Gallery tiles bound the [p, b, tile] buffer whatever the gallery size; the buffer is reused
        # because a fresh allocation this large is a fresh mmap (page faults and zeroing) every tile.
        tile = max(1, min(self.size, _WORK_ELEMENTS // max(1, self.parts * count)))
        buffer = torch.empty((self.parts, count, tile), dtype=self.dtype, device=self.device)
        for start in range(0, self.size, tile):
            stop = min(self.size, start + tile)
            squared = buffer if stop - start == tile else buffer[:, :, : stop - start]
            torch.bmm(x, self._table[:, start:stop].transpose(1, 2), out=squared)
            # Rounding can push a squared distance below zero. The floor is a tiny positive rather
            # than 0 because sqrt of exact zeros takes a ~10x slower path on CPU (torch 2.13, AVX512).
            squared.clamp_(min=_SQUARED_FLOOR).sqrt_()
            torch.sum(squared, dim=0, out=out[:, start:stop])
        return out.div_(self.parts)


def as_index(gallery: np.ndarray | torch.Tensor | GalleryIndex, metric: str) -> GalleryIndex:
    """``gallery`` itself if it is a ``GalleryIndex`` for ``metric``, else a new index over it."""
    if isinstance(gallery, GalleryIndex):
        if gallery.metric != metric:
            raise ValueError(f"metric={metric!r} but the GalleryIndex was built for {gallery.metric!r}")
        return gallery
    return GalleryIndex(gallery, metric)


def iter_distances(
    probe: np.ndarray | torch.Tensor,
    gallery: np.ndarray | torch.Tensor | GalleryIndex,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, d)`` with ``d: [b, G]`` the distances of probes ``start:start+b``, chunk by chunk."""
    check_embeddings(probe, "probe")
    index = as_index(gallery, metric)
    chunk = chunk_size or index.default_chunk()
    if chunk < 1:
        raise ValueError(f"chunk_size={chunk_size}: must be at least 1")
    for start in range(0, int(probe.shape[0]), chunk):
        yield start, index.distances(probe[start : start + chunk])


def pairwise_distances(
    probe: np.ndarray | torch.Tensor,
    gallery: np.ndarray | torch.Tensor | GalleryIndex,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> np.ndarray:
    """The full distance matrix ``float32 [P, G]`` (only for sizes that fit; protocols never build it)."""
    index = as_index(gallery, metric)
    out = np.empty((int(probe.shape[0]), index.size), dtype=np.float32)
    for start, dist in iter_distances(probe, index, metric, chunk_size):
        out[start : start + dist.shape[0]] = dist.cpu().numpy()
    return out


def nearest_neighbours(
    probe: np.ndarray | torch.Tensor,
    gallery: np.ndarray | torch.Tensor | GalleryIndex,
    k: int,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest gallery rows per probe, nearest first: ``(indices int64 [P, k], distances [P, k])``.

    Equal distances keep gallery order (the lower index ranks first).
    """
    index = as_index(gallery, metric)
    if not 1 <= k <= index.size:
        raise ValueError(f"k={k}: must be between 1 and the gallery size {index.size}")
    indices = np.empty((int(probe.shape[0]), k), dtype=np.int64)
    values = np.empty((int(probe.shape[0]), k), dtype=np.float32)
    for start, dist in iter_distances(probe, index, metric, chunk_size):
        top_idx, top_val = top_k_stable(dist, k)
        indices[start : start + len(dist)] = top_idx.cpu().numpy()
        values[start : start + len(dist)] = top_val.cpu().numpy()
    return indices, values


def top_k_stable(dist: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest entries per row of ``dist: [b, G]``, ties broken by column index."""
    # topk does not promise which of several equal values it keeps, so take a margin of candidates,
    # sort them stably by column then value, and fall back to a full stable sort for the rare rows
    # whose ties reach past the margin.
    wide = min(dist.shape[1], k + 16)
    values, cols = torch.topk(dist, wide, dim=1, largest=False, sorted=False)
    order = torch.argsort(cols, dim=1)
    values, cols = values.gather(1, order), cols.gather(1, order)
    order = torch.argsort(values, dim=1, stable=True)
    values, cols = values.gather(1, order), cols.gather(1, order)
    if wide < dist.shape[1]:
        ambiguous = torch.nonzero(values[:, k - 1] == values[:, wide - 1]).flatten()
        if len(ambiguous):
            full = torch.argsort(dist[ambiguous], dim=1, stable=True)[:, :wide]
            cols[ambiguous] = full
            values[ambiguous] = dist[ambiguous].gather(1, full)
    return cols[:, :k], values[:, :k]
