"""``ArraySource``: in-memory sequences behave as a ``SequenceSource``."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.data import ArraySource, DataError, SequenceRecord, SequenceSource, TripletSampler


def _records(count: int) -> list[SequenceRecord]:
    return [SequenceRecord(f"{i // 2:03d}", f"nm-{i % 2 + 1:02d}", "090", ()) for i in range(count)]


def test_serves_the_arrays_it_holds_to_the_samplers() -> None:
    sequences = [np.full((3 + i, 8, 8), i, dtype=np.uint8) for i in range(4)]
    source = ArraySource(sequences, _records(4), name="camera")
    assert isinstance(source, SequenceSource)
    assert (len(source), source.source_name) == (4, "camera")
    assert source.load(2) is sequences[2]
    batch = next(iter(TripletSampler(source, (2, 2), seed=0)))
    assert sorted({source.records[i].id for i in batch}) == ["000", "001"]


def test_a_record_per_sequence_is_required() -> None:
    with pytest.raises(DataError, match=r"camera: 2 sequences but 3 records"):
        ArraySource([np.zeros((3, 8, 8), np.uint8)] * 2, _records(3), name="camera")
