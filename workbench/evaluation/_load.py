"""``load_result``: read an evaluation folder written by ``result.save`` back into a result."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from workbench.evaluation._metrics import ProbeScores
from workbench.evaluation._rank_result import RankResult
from workbench.evaluation._results import SUBJECT_SCORES, CrossViewResult, EvaluationResult

_SUMMARY_KEYS = ("protocol", "metric", "primary_metric", "resamples", "seed", "summary")
_CROSS_VIEW = ("views", "conditions", "correct", "total", "valid", "exclude_identical", "report_excluded")
_RANK = ("ranks", "rank_values", "n_probes", "n_evaluated", "valid_only")
_PROBES = ("probe_subjects", "first_hit", "ap", "inp", "positives")
_SUBJECTS = ("subjects", "subject_correct", "subject_total", "subject_valid")


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); write the folder again with result.save") from exc
    missing = [k for k in _SUMMARY_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise ValueError(f"{path}: missing {missing}; it predates subject statistics, evaluate the model again")
    return payload


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz ({exc}); write the folder again with result.save") from exc


def _need(arrays: dict[str, np.ndarray], names: tuple[str, ...], path: Path, optional: bool = False) -> bool:
    missing = [n for n in names if n not in arrays]
    if optional and len(missing) == len(names):
        return False
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}; write the folder again with result.save")
    return True


def _strings(values: np.ndarray) -> tuple[str, ...]:
    return tuple(str(v) for v in values.tolist())


def _build(meta: dict[str, Any], arrays: dict[str, np.ndarray], path: Path) -> EvaluationResult:
    kind = str(arrays["kind"]) if "kind" in arrays else ""
    protocol, metric, primary = str(meta["protocol"]), str(meta["metric"]), str(meta["primary_metric"])
    resamples, seed = int(meta["resamples"]), int(meta["seed"])
    if kind == CrossViewResult.kind:
        _need(arrays, _CROSS_VIEW, path)
        per_subject = _need(arrays, _SUBJECTS, path, optional=True)
        return CrossViewResult(
            views=_strings(arrays["views"]), conditions=_strings(arrays["conditions"]),
            correct=arrays["correct"], total=arrays["total"], valid=arrays["valid"],
            exclude_identical=bool(arrays["exclude_identical"]), report_excluded=bool(arrays["report_excluded"]),
            subjects=_strings(arrays["subjects"]) if per_subject else None,
            subject_correct=arrays.get("subject_correct"), subject_total=arrays.get("subject_total"),
            subject_valid=arrays.get("subject_valid"), protocol=protocol, metric=metric,
            primary_metric=primary, resamples=resamples, seed=seed,
        )
    if kind == RankResult.kind:
        _need(arrays, _RANK, path)
        per_probe = _need(arrays, _PROBES, path, optional=True)
        scores = ProbeScores(arrays["first_hit"], arrays["ap"], arrays["inp"], arrays["positives"]) if per_probe else None
        ranks = {int(k): float(v) for k, v in zip(arrays["ranks"].tolist(), arrays["rank_values"].tolist(), strict=True)}
        return RankResult(
            ranks=ranks, n_probes=int(arrays["n_probes"]), n_evaluated=int(arrays["n_evaluated"]),
            map=float(arrays["map"]) if "map" in arrays else None,
            minp=float(arrays["minp"]) if "minp" in arrays else None,
            scores=scores, probe_subjects=arrays["probe_subjects"] if per_probe else None,
            valid_only=bool(arrays["valid_only"]), protocol=protocol, metric=metric, primary_metric=primary,
            resamples=resamples, seed=seed,
        )
    raise ValueError(f"{path}: unknown result kind {kind!r}; expected {CrossViewResult.kind!r} or "
                     f"{RankResult.kind!r}")


def has_saved_result(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a result written by ``result.save`` (its per-subject scores are the last file)."""
    return (Path(out_dir) / SUBJECT_SCORES).is_file()


def load_result(out_dir: str | Path) -> EvaluationResult:
    """Read ``summary.json`` and ``subject_scores.npz`` written by ``result.save(out_dir)``.

    The result has the same ``summary()`` and ``resampled(weights)`` as the one saved, so that
    evaluations saved by separate runs can be compared with ``paired_results``. GREW's top-k ids are
    not kept (``submission.csv`` holds them).
    """
    folder = Path(out_dir)
    summary_path, scores_path = folder / "summary.json", folder / SUBJECT_SCORES
    for path in (summary_path, scores_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; write the evaluation folder with result.save(out_dir) "
                                    "or `workbench evaluate --out`")
    meta = _read_summary(summary_path)
    try:
        result = _build(meta, _read_arrays(scores_path), scores_path)
    except (ValueError, TypeError, KeyError) as exc:
        if str(scores_path) in str(exc):
            raise
        raise ValueError(f"{scores_path}: {exc}") from exc
    recorded = meta["summary"]
    for key, value in result._headline().items():
        saved = recorded.get(key, "absent") if isinstance(recorded, dict) else "absent"
        saved_value = math.nan if saved is None else saved
        same = isinstance(saved_value, int | float) and (
            math.isclose(saved_value, value, rel_tol=1e-9, abs_tol=1e-9)
            or (math.isnan(saved_value) and math.isnan(value)))
        if not same:
            raise ValueError(f"{summary_path}: {key} is {saved}, but {SUBJECT_SCORES} gives {value}; the two files "
                             "come from different evaluations, write the folder again")
    return result
