"""A gallery index on a GPU, checked on the CPU: every tensor an evaluation combines with the distances
must sit on their device. ``SimulatedGpu`` stands in for the GPU (the CUDA runs are in the device check)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from workbench.evaluation import (
    GalleryIndex,
    cross_view_counts,
    nearest_neighbours,
    nearest_per_group,
    pairwise_distances,
    probe_scores,
    retrieval_scores,
)

GPU = torch.device("cuda", 0)  # only a name: nothing here asks CUDA for it
CPU = torch.device("cpu")
_DEVICE_OF = torch.Tensor.device.__get__
_MOVES = (torch.Tensor.to, torch.Tensor.cpu)
_INDEXING = (torch.Tensor.__getitem__, torch.Tensor.__setitem__)


def _tensors(value: object) -> list[torch.Tensor]:
    """The tensors in ``value``, looking into tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


class SimulatedGpu(TorchFunctionMode):
    """Tensors placed on ``GPU`` stay in CPU memory but are tracked, report ``GPU`` as their device and
    refuse what CUDA refuses: an op that mixes them with CPU tensors (other than CPU scalars), CPU
    tensors indexed by them, and ``numpy()``. Moves (``to``, ``cpu``, ``device=``) copy as a real
    device change does. Enough of CUDA's device rules to catch a tensor left behind on the CPU.
    """

    def __init__(self) -> None:
        super().__init__()
        self._on_gpu: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def holds(self, tensor: torch.Tensor) -> bool:
        """True when ``tensor`` is on the simulated GPU."""
        return tensor in self._on_gpu

    def _place(self, value: object, on_gpu: bool) -> None:
        for tensor in _tensors(value):
            if on_gpu:
                self._on_gpu[tensor] = True
            else:
                self._on_gpu.pop(tensor, None)

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func == _DEVICE_OF:
            return GPU if self.holds(args[0]) else func(*args)
        if func == torch.Tensor.numpy and self.holds(args[0]):
            raise TypeError(f"can't convert {GPU} device type tensor to numpy; use Tensor.cpu() first")
        if func in _MOVES or kwargs.get("device") is not None:
            return self._move(func, args, kwargs)
        tensors = _tensors((args, kwargs))
        if func in _INDEXING:
            self._check_indexing(args)
        elif func != torch.Tensor.copy_:
            self._check_one_device(func, tensors)
        out = func(*args, **kwargs)
        in_place = bool(args) and out is args[0]
        if not in_place and any(self.holds(t) for t in tensors):
            self._place(out, True)
        return out

    def _move(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        target: torch.device | None = CPU if func == torch.Tensor.cpu else None
        for value in (*args[1:], kwargs.get("device")):
            if isinstance(value, torch.Tensor):  # tensor.to(other): other's device and dtype
                target = GPU if self.holds(value) else CPU
            elif isinstance(value, (str, torch.device)):
                target = torch.device(value)
        on_gpu = target.type == "cuda" if target is not None else source is not None and self.holds(source)
        args = tuple(CPU if isinstance(a, (str, torch.device)) else a for a in args)
        if kwargs.get("device") is not None:
            kwargs = {**kwargs, "device": CPU}
        out = func(*args, **kwargs)
        if source is not None and out is source and on_gpu != self.holds(source):
            out = out.clone()  # the CPU returned the tensor itself; a real move copies it
        self._place(out, on_gpu)
        return out

    def _check_indexing(self, args: tuple) -> None:
        # CUDA takes CPU indices into a GPU tensor, never GPU indices into a CPU tensor; a value
        # written through plain slices is copied across, one written through index tensors is not.
        indexed, index = args[0], args[1]
        index_tensors = _tensors(index)
        if not self.holds(indexed) and any(self.holds(t) for t in index_tensors):
            raise RuntimeError("indices should be either on cpu or on the same device as the indexed tensor (cpu)")
        if len(args) > 2 and index_tensors:
            self._check_one_device(torch.Tensor.__setitem__, [indexed, *_tensors(args[2])])

    def _check_one_device(self, func: Callable[..., Any], tensors: list[torch.Tensor]) -> None:
        on_gpu = any(self.holds(t) for t in tensors)
        on_cpu = any(not self.holds(t) and t.dim() > 0 for t in tensors)
        if on_gpu and on_cpu:
            name = getattr(func, "__name__", str(func))
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"{GPU} and cpu! ({name})")


def test_the_simulated_gpu_refuses_what_cuda_refuses() -> None:
    with SimulatedGpu() as gpu:
        x = torch.arange(4.0, device=GPU)
        assert x.device == GPU and gpu.holds(x) and gpu.holds(x * 2)
        with pytest.raises(RuntimeError, match="same device"):
            _ = x + torch.ones(4)
        with pytest.raises(RuntimeError, match="same device"):
            x.index_select(0, torch.tensor([1, 2]))
        with pytest.raises(RuntimeError, match="indexed tensor"):
            _ = torch.ones(4)[torch.tensor([1], device=GPU)]
        with pytest.raises(TypeError, match="numpy"):
            x.numpy()
        assert (x + torch.tensor(1.0)).tolist() == [1.0, 2.0, 3.0, 4.0]  # a CPU scalar may join
        assert x[torch.tensor([3])].tolist() == [3.0]  # and CPU indices may index a GPU tensor
        back = x.cpu()
        assert back.device == CPU and gpu.holds(x) and not gpu.holds(back)
        assert back.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
        moved = torch.ones(2).to(x.device)
        assert gpu.holds(moved) and gpu.holds(torch.ones(2).to(x))


def _gallery_and_probes(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                             np.ndarray, np.ndarray]:
    """Embeddings ``[n, 6, 2]`` of 5 subjects in 3 views: (gallery, ids, views, probe, ids, views)."""
    ids = np.array([f"{i:03d}" for i in range(5)])
    views = np.array(["000", "090", "180"])
    gallery_ids, gallery_views = np.repeat(ids, 3), np.tile(views, 5)
    probe_ids, probe_views = np.repeat(ids, 3), np.tile(views, 5)
    centres = rng.normal(size=(5, 6, 2)).astype(np.float32)
    gallery = np.repeat(centres, 3, axis=0) + 0.3 * rng.normal(size=(15, 6, 2)).astype(np.float32)
    probe = np.repeat(centres, 3, axis=0) + 0.3 * rng.normal(size=(15, 6, 2)).astype(np.float32)
    return gallery, gallery_ids, gallery_views, probe, probe_ids, probe_views


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_an_index_on_the_gpu_scores_as_one_on_the_cpu(metric: str) -> None:
    # Labels and gallery groups are built on the CPU; on a GPU index they must follow the distances.
    gallery, gallery_ids, gallery_views, probe, probe_ids, probe_views = _gallery_and_probes(np.random.default_rng(0))
    probes = {"nm": (probe, probe_ids, probe_views)}
    views = ["000", "090", "180"]
    on_cpu = GalleryIndex(gallery, metric)
    want = retrieval_scores(probe, probe_ids, on_cpu, gallery_ids, metric, top_k=3, chunk_size=4)
    want_counts = cross_view_counts(on_cpu, gallery_ids, gallery_views, probes, views, metric, chunk_size=4)
    want_near = nearest_neighbours(probe, on_cpu, 2, metric, chunk_size=4)
    with SimulatedGpu() as gpu:
        index = GalleryIndex(gallery, metric, device=GPU)
        assert gpu.holds(index.distances(probe[:2]))
        got = retrieval_scores(probe, probe_ids, index, gallery_ids, metric, top_k=3, chunk_size=4)
        counts = cross_view_counts(index, gallery_ids, gallery_views, probes, views, metric, chunk_size=4)
        near = nearest_neighbours(probe, index, 2, metric, chunk_size=4)
        dist = pairwise_distances(probe, index, metric, chunk_size=4)
    assert got.top_rows is not None and want.top_rows is not None
    np.testing.assert_array_equal(got.top_rows, want.top_rows)
    for field in ("first_hit", "ap", "inp", "positives"):
        np.testing.assert_array_equal(getattr(got.scores, field), getattr(want.scores, field))
    np.testing.assert_array_equal(counts.subject_correct, want_counts.subject_correct)
    np.testing.assert_array_equal(counts.subject_valid, want_counts.subject_valid)
    assert want_counts.correct.sum() > 0, "the case should have hits to count"
    np.testing.assert_array_equal(near[0], want_near[0])
    np.testing.assert_allclose(dist, pairwise_distances(probe, on_cpu, metric), atol=1e-6)


def test_metrics_take_cpu_labels_and_groups_for_gpu_distances() -> None:
    row = [0.1, 0.5, 0.3, 0.2, 0.9]
    labels, gallery_labels = torch.tensor([0, 1, 3]), torch.tensor([0, 1, 0, 2, 1])
    groups = [torch.tensor([0, 1]), torch.tensor([2, 3, 4]), torch.tensor([], dtype=torch.int64)]
    with SimulatedGpu() as gpu:
        dist = torch.tensor([row, row, row], device=GPU)
        scores = probe_scores(dist, labels, gallery_labels)
        nearest = nearest_per_group(dist, groups)
        assert not gpu.holds(nearest), "the nearest columns come back to the CPU, where the labels are"
    assert scores.first_hit.tolist() == [1, 4, 0]
    assert nearest.tolist() == [[0, 3, -1]] * 3
