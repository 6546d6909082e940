"""Validation subjects held out from a partition's training subjects, written as a partition file.

A study trains on ``TRAIN_SET`` minus the validation subjects and scores, prunes and selects on the
validation subjects; the test subjects stay unread until a configuration has been chosen. The split
is a pure function of the training ids, the request and the seed, so every worker and every resume
of a study derives the same one, and the file records how it was made so that a changed request is
caught instead of silently mixing two splits in one study.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.data._errors import DataError
from workbench.data._records import Partition, SequenceRecord

#: Fewest validation subjects a split may hold: with one, rank-1 is trivially 100 %.
MIN_VALIDATION_SUBJECTS = 2
#: Fewest training subjects a split may leave: the triplet loss needs two ids per batch.
MIN_TRAINING_SUBJECTS = 2


@dataclass(frozen=True)
class ValidationSplit:
    """Three subject-disjoint id lists: ``train`` (trials learn on), ``validation`` (select on), ``test``.

    ``probe`` lists validation sequence keys (``id-type-view``) for protocols that read probes from a
    ``PROBE_SET`` (Gait3D style); ``request`` says how the split was asked for (fraction or id list).
    """

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    probe: tuple[str, ...]
    seed: int
    request: str
    source: str

    def partition(self) -> Partition:
        """The partition trials use: ``TRAIN_SET`` = training, ``TEST_SET`` = validation subjects."""
        return Partition(train=self.train, test=self.validation, probe=self.probe)

    def to_json(self) -> dict[str, object]:
        """The partition file's content: OpenGait keys plus a ``VALIDATION_SPLIT`` record."""
        payload: dict[str, object] = {"TRAIN_SET": list(self.train), "TEST_SET": list(self.validation)}
        if self.probe:
            payload["PROBE_SET"] = list(self.probe)
        payload["VALIDATION_SPLIT"] = {"seed": self.seed, "request": self.request, "source": self.source,
                                       "held_out_test_subjects": len(self.test)}
        return payload

    def save(self, path: str | Path) -> Path:
        """Write the partition file, or check that the one already there holds this very split.

        A different split under the same path means the study's request changed between runs;
        that raises instead of overwriting, because trials already trained on the old split. Where the
        dataset's partition file lies (``source``) is not compared: a project folder that moved, or a
        study record copied to another machine, holds the same split under another path.
        """
        path = Path(path)
        payload = self.to_json()
        text = json.dumps(payload, indent=1) + "\n"
        if path.exists():
            if not _same_split(path, payload):
                raise DataError(
                    f"{path}: holds a different validation split than this study now asks for "
                    f"({self.request}, seed {self.seed}); trials of one study must share one split. "
                    "Restore the study's [data] validation settings, or start a new study name"
                )
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path


def _same_split(path: Path, payload: dict[str, object]) -> bool:
    """Whether the partition file at ``path`` holds ``payload``'s split, wherever its source lay."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return False

    def without_source(content: object) -> object:
        if not isinstance(content, dict):
            return content
        record = content.get("VALIDATION_SPLIT")
        if isinstance(record, dict):
            content = {**content, "VALIDATION_SPLIT": {k: v for k, v in record.items() if k != "source"}}
        return content

    return without_source(saved) == without_source(payload)


def split_validation(
    partition: Partition,
    *,
    fraction: float | None = None,
    ids: Sequence[str] | None = None,
    seed: int = 0,
    records: Sequence[SequenceRecord] | None = None,
    probe_per_subject: bool = False,
) -> ValidationSplit:
    """Hold out validation subjects from ``partition.train``: a ``fraction`` of them, or the listed ``ids``.

    The fraction is drawn with ``numpy.random.default_rng(seed)`` from the sorted training ids,
    rounded to the nearest count and never under two subjects. ``probe_per_subject`` (with
    ``records``) picks one sequence of each validation subject as its probe, the rest forming the
    gallery, as Gait3D's ``PROBE_SET`` does for its test subjects.

    Raises ``DataError`` when the split would leave fewer than two training or validation subjects,
    names ids that are not training subjects, or asks for both or neither of ``fraction`` and ``ids``.
    """
    where = str(partition.path) if partition.path is not None else "the partition"
    train = sorted(set(partition.train))
    if (fraction is None) == (ids is None):
        raise DataError("data.validation: give either a fraction of the training subjects or a list of ids")
    if ids is not None:
        chosen = sorted({str(i) for i in ids})
        unknown = [i for i in chosen if i not in set(train)]
        if unknown:
            raise DataError(
                f"data.validation: ids {unknown[:5]} are not training subjects of {where} "
                f"(TRAIN_SET has {len(train)} ids, e.g. {train[:3]}); list ids from TRAIN_SET"
            )
        request = f"ids {chosen}"
    else:
        assert fraction is not None
        if not 0.0 < fraction < 1.0:
            raise DataError(f"data.validation = {fraction}: a fraction must lie strictly between 0 and 1")
        count = max(MIN_VALIDATION_SUBJECTS, math.floor(fraction * len(train) + 0.5))
        rng = np.random.default_rng(seed)
        picks = rng.permutation(len(train))[:count] if count < len(train) else np.arange(len(train))
        chosen = sorted(train[i] for i in picks)
        request = f"fraction {fraction:g}"
    remaining = [i for i in train if i not in set(chosen)]
    if len(chosen) < MIN_VALIDATION_SUBJECTS or len(remaining) < MIN_TRAINING_SUBJECTS:
        raise DataError(
            f"data.validation ({request}): {where} has {len(train)} training subjects, which leaves "
            f"{len(remaining)} to train on and {len(chosen)} to validate on; a split needs at least "
            f"{MIN_TRAINING_SUBJECTS} of each. Use a dataset with more training subjects "
            "(e.g. data.synthetic = 'quick' or 'default') or list the validation ids explicitly"
        )
    probe: tuple[str, ...] = ()
    if probe_per_subject:
        if records is None:
            raise ValueError("probe_per_subject needs the dataset's records to pick probe sequences from")
        probe = _one_probe_each(records, chosen, seed, where)
    return ValidationSplit(
        train=tuple(remaining), validation=tuple(chosen), test=tuple(sorted(set(partition.test))),
        probe=probe, seed=seed, request=request, source=str(partition.path or ""),
    )


def _one_probe_each(records: Sequence[SequenceRecord], subjects: Sequence[str], seed: int, where: str) -> tuple[str, ...]:
    keys: dict[str, list[str]] = {s: [] for s in subjects}
    for record in records:
        if record.id in keys:
            keys[record.id].append(record.key)
    short = [s for s, k in keys.items() if len(k) < 2]
    if short:
        raise DataError(
            f"data.validation: subjects {short[:5]} of {where} have fewer than two sequences, so none can "
            "be both probe and gallery; list validation ids that have at least two sequences each"
        )
    rng = np.random.default_rng(seed)
    return tuple(sorted(sorted(k)[int(rng.integers(len(k)))] for _, k in sorted(keys.items())))
