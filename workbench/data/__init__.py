"""Gait data: OpenGait pkl datasets (safe unpickling), pretreatment, packed stores, samplers, collate.

Every reader implements ``SequenceSource`` (``records``, ``__len__``, ``load(i) -> uint8 [frames, h, w]``,
``source_name``); samplers and loaders only see that protocol. Torch is imported only where batches
are built. The synthetic renderer lives in ``workbench.data.synth``.
"""

from __future__ import annotations

from workbench.data._collate import Batch, Sample, collate, cut_frames, cut_width
from workbench.data._errors import CorruptFileError, DataError, UnsafePickleError
from workbench.data._loader import SequenceDataset, build_loader
from workbench.data._memory import ArraySource
from workbench.data._open import open_source
from workbench.data._opengait import OpenGaitDataset, scan_records
from workbench.data._pack import pack_dataset
from workbench.data._packed import PackedStore, is_packed_store
from workbench.data._pickle import load_pickle, loads_pickle, save_pickle
from workbench.data._pretreat import (
    default_min_pixel_sum,
    pretreat_frame,
    pretreat_frames,
    pretreat_gif,
    read_frame,
    read_gif,
)
from workbench.data._pretreat_dataset import PretreatSummary, find_raw_sequences, pretreat_dataset
from workbench.data._records import (
    Partition,
    SequenceRecord,
    SequenceSource,
    check_sequence,
    label_map,
    read_partition,
    select_records,
    source_labels,
)
from workbench.data._sampling import InferenceSampler, TripletSampler, sample_frame_indices
from workbench.data._validation import ValidationSplit, split_validation

__all__ = [
    "ArraySource",
    "Batch",
    "CorruptFileError",
    "DataError",
    "InferenceSampler",
    "OpenGaitDataset",
    "PackedStore",
    "Partition",
    "PretreatSummary",
    "Sample",
    "SequenceDataset",
    "SequenceRecord",
    "SequenceSource",
    "TripletSampler",
    "UnsafePickleError",
    "ValidationSplit",
    "build_loader",
    "check_sequence",
    "collate",
    "cut_frames",
    "cut_width",
    "default_min_pixel_sum",
    "find_raw_sequences",
    "is_packed_store",
    "label_map",
    "load_pickle",
    "loads_pickle",
    "open_source",
    "pack_dataset",
    "pretreat_dataset",
    "pretreat_frame",
    "pretreat_frames",
    "pretreat_gif",
    "read_frame",
    "read_gif",
    "read_partition",
    "sample_frame_indices",
    "save_pickle",
    "scan_records",
    "select_records",
    "source_labels",
    "split_validation",
]
