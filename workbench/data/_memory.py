"""``ArraySource``: sequences already in memory served as a ``SequenceSource``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.data._errors import DataError
from workbench.data._records import SequenceRecord


class ArraySource:
    """A ``SequenceSource`` over in-memory sequences ``uint8 [frames, h, w]``, one record each.

    For arrays that never touched disk (a camera, another tool's output, tests): they embed,
    evaluate and train like a dataset folder. ``name`` is what error messages call the source.
    """

    def __init__(self, sequences: Sequence[np.ndarray], records: Sequence[SequenceRecord], name: str = "memory") -> None:
        if len(sequences) != len(records):
            raise DataError(f"{name}: {len(sequences)} sequences but {len(records)} records; give one record per sequence")
        self.sequences = list(sequences)
        self.records = list(records)
        self._name = name

    @property
    def source_name(self) -> str:
        """The name given at construction."""
        return self._name

    def __len__(self) -> int:
        return len(self.sequences)

    def load(self, index: int) -> np.ndarray:
        """Sequence ``index`` as given."""
        return self.sequences[index]
