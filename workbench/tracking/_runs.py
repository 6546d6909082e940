"""One MLflow parent run per study, one nested child run per trial, all through explicit run ids.

Nothing here touches MLflow's fluent "active run" state, so several threads or worker processes can
log trials of the same study at once; children point at their parent with the ``mlflow.parentRunId``
tag, which is what the MLflow UI nests by.
"""

from __future__ import annotations

import contextlib
import enum
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from workbench._locks import sqlite_creation_lock
from workbench.tracking._store import default_artifact_location, make_client
from workbench.tracking._values import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_LENGTH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_LENGTH,
    chunks,
    clip,
    flat_params,
    format_value,
    metric_value,
    sanitize_key,
)

TAG_PARENT = "mlflow.parentRunId"
TAG_STUDY = "workbench.study"
#: MLflow's description of a run or an experiment (shown in its UI).
NOTE_TAG = "mlflow.note.content"
#: MLflow 3's experiment kind: the UI opens an experiment of this kind on its runs, not on traces.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"
TAG_ROLE = "workbench.role"
TAG_TRIAL = "workbench.trial"
TAG_RETRY_OF = "workbench.retry_of"
TAG_STATE = "workbench.state"
TAG_ERROR = "workbench.error"
#: Training step of a trial's figures: its last iteration when complete, the pruning step when pruned.
TAG_STEP = "workbench.step"
ROLE_STUDY = "study"
ROLE_TRIAL = "trial"
_PAGE = 1000


class TrialOutcome(enum.StrEnum):
    """How a trial ended, as recorded in the ``workbench.state`` tag."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"

    @classmethod
    def parse(cls, state: Any) -> TrialOutcome:
        """Accept a ``TrialOutcome``, its name or value in any case, or an Optuna ``TrialState``."""
        if isinstance(state, cls):
            return state
        text = str(getattr(state, "name", state)).strip().lower()
        aliases = {"complete": cls.COMPLETE, "completed": cls.COMPLETE, "pruned": cls.PRUNED,
                   "failed": cls.FAILED, "fail": cls.FAILED}
        if text not in aliases:
            raise ValueError(f"trial state {state!r} is not one of COMPLETE, PRUNED, FAILED")
        return aliases[text]


def _quoted(value: str, what: str) -> str:
    # MLflow filter strings have no escape for quotes, so names carrying them cannot be searched.
    if not value or "'" in value or '"' in value or "`" in value:
        raise ValueError(f"{what} {value!r} must be non-empty and contain no quote characters")
    return f"'{value}'"


def search_all_runs(client: Any, experiment_ids: Sequence[str], filter_string: str = "",
                    order_by: Sequence[str] = ()) -> list[Any]:
    """Every active run matching ``filter_string``, following MLflow's result pages."""
    runs: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_runs(list(experiment_ids), filter_string=filter_string,
                                  max_results=_PAGE, order_by=list(order_by) or None, page_token=token)
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


def get_or_create_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    """The id of the experiment ``name``: created if missing, restored if deleted."""
    from mlflow.exceptions import MlflowException

    if not name or not name.strip():
        raise ValueError("experiment name must be a non-empty string")
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException:
            # Another worker created it between our lookup and our create.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


class TrialRun:
    """The MLflow child run of one trial; log params, metrics and artifacts, then ``finish``.

    Usable as a context manager: a clean exit finishes COMPLETE, an exception FAILED (PRUNED when
    its class is named ``TrialPruned``, as Optuna's is); the exception still propagates.
    """

    def __init__(self, client: Any, run_id: str, trial_number: int, experiment_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.trial_number = trial_number
        self.experiment_id = experiment_id
        self.outcome: TrialOutcome | None = None
        self._flush_hooks: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"TrialRun(trial={self.trial_number}, run_id={self.run_id!r}, outcome={self.outcome})"

    @property
    def finished(self) -> bool:
        """Whether ``finish`` has been called."""
        return self.outcome is not None

    def add_flush_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` before the run is finished (buffered loggers flush there)."""
        self._flush_hooks.append(hook)

    def log_params(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Log params (nested mappings flattened with dots); lists become ``"[8, 32, 16, 8]"``.

        Values longer than MLflow's 6000-character limit are cut in the param and stored whole as
        the artifact ``params/<key>.txt``. Returns what was logged.
        """
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        flat = flat_params(params)
        long = {k: v for k, v in flat.items() if len(v) > MAX_PARAM_LENGTH}
        entries = [Param(k, clip(v, MAX_PARAM_LENGTH)) for k, v in flat.items()]
        for part in chunks(entries, MAX_PARAMS_PER_BATCH):
            try:
                self.client.log_batch(self.run_id, params=list(part))
            except MlflowException as exc:
                raise ValueError(
                    f"trial {self.trial_number} (run {self.run_id}): could not log params: {exc.message}. "
                    "MLflow params are write-once; log a changed value under a new key or as a tag"
                ) from exc
        for key, value in long.items():
            self._log_text(value, f"{key.replace('/', '_')}.txt", "params")
        return {p.key: p.value for p in entries}

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics at ``step`` (0 when None) in one batched call."""
        self.log_metric_entries((key, value, step or 0) for key, value in metrics.items())

    def log_metric_entries(self, entries: Iterable[tuple[str, Any, int]]) -> None:
        """Log ``(key, value, step)`` triples, several steps at once, in as few calls as possible."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(sanitize_key(k), metric_value(k, v), now, int(s)) for k, v, s in entries]
        for part in chunks(metrics, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=list(part))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (mutable, unlike params); values are stringified and cut to MLflow's limit."""
        set_run_tags(self.client, self.run_id, tags)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or a whole directory under ``artifact_path`` of the run."""
        upload(self.client, self.run_id, path, artifact_path)

    def _log_text(self, text: str, name: str, artifact_path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / name
            file.write_text(text)
            self.log_artifact(file, artifact_path)

    def flush(self) -> None:
        """Run the flush hooks (buffered metrics reach the store)."""
        for hook in self._flush_hooks:
            hook()

    def finish(self, state: Any = TrialOutcome.COMPLETE, error: str | BaseException | None = None) -> None:
        """End the run: COMPLETE and PRUNED as FINISHED, FAILED as FAILED, with ``workbench.state``.

        A failure's message goes to the ``workbench.error`` tag. Only the first call has an effect.
        """
        if self.outcome is not None:
            return
        outcome = TrialOutcome.parse(state)
        tags: dict[str, Any] = {TAG_STATE: outcome.value}
        if error is not None:
            tags[TAG_ERROR] = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        try:
            self.flush()
        finally:
            self.outcome = outcome
            self.set_tags(tags)
            if outcome is not TrialOutcome.COMPLETE:
                # The runs table shows names and a finished/failed status: a pruned trial would look complete.
                self.client.update_run(self.run_id, name=f"trial-{self.trial_number} ({outcome.value})")
            status = "FAILED" if outcome is TrialOutcome.FAILED else "FINISHED"
            self.client.set_terminated(self.run_id, status=status)

    def __enter__(self) -> TrialRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.finish(TrialOutcome.COMPLETE)
        elif exc_type is not None and exc_type.__name__ == "TrialPruned":
            self.finish(TrialOutcome.PRUNED, error=None)
        else:
            self.finish(TrialOutcome.FAILED, error=exc)


def set_run_tags(client: Any, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set sanitised, stringified, length-limited tags on a run in batched calls."""
    from mlflow.entities import RunTag

    entries = [RunTag(sanitize_key(k), clip(format_value(v), MAX_TAG_LENGTH)) for k, v in tags.items()]
    for part in chunks(entries, MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=list(part))


def upload(client: Any, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Upload a file or directory to a run's artifacts; a missing path is an error naming it."""
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"artifact {source} does not exist; write it before logging it")
    if source.is_dir():
        client.log_artifacts(run_id, str(source), artifact_path)
    else:
        client.log_artifact(run_id, str(source), artifact_path)


#: Seconds a creator of a study's parent run waits before its last look for a rival's (stores other than SQLite).
PARENT_SETTLE_SECONDS = 0.5


class StudyTracker:
    """The MLflow side of one Optuna study: a parent run that every worker shares, child runs per trial.

    The experiment is created if missing. The parent run is found again by its tags
    (``workbench.study=<study_name>``, ``workbench.role=study``), so a resumed study or a second
    worker process logs under the same parent; if two workers raced and both created one, everyone
    keeps the earliest (by start time, then run id) and the loser deletes its own.

    Args:
        tracking_uri: a resolved URI (see ``resolve_tracking_uri``).
        experiment_name: MLflow experiment holding the study.
        study_name: Optuna study name; no quote characters.
        artifact_location: for a new experiment; default ``mlartifacts/`` beside a SQLite database.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, study_name: str, *,
                 artifact_location: str | None = None) -> None:
        _quoted(study_name, "study name")
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.study_name = study_name
        # On SQLite every process is on this machine: under a lock beside the database, exactly one creates
        # MLflow's tables (two at once on a fresh file collide) and the study's parent run, and the others
        # find them made. A server has no such lock: creators of the parent settle it afterwards.
        sqlite = tracking_uri.startswith("sqlite:///")
        database = tracking_uri[len("sqlite:///"):].partition("?")[0]
        with sqlite_creation_lock(database) if sqlite else contextlib.nullcontext():
            self.client = make_client(tracking_uri)
            location = artifact_location or default_artifact_location(tracking_uri)
            self.experiment_id = get_or_create_experiment(self.client, experiment_name, location)
            self.parent_run_id = self._get_or_create_parent(settle=0.0 if sqlite else PARENT_SETTLE_SECONDS)

    def __repr__(self) -> str:
        return (f"StudyTracker(study={self.study_name!r}, experiment={self.experiment_name!r}, "
                f"parent_run_id={self.parent_run_id!r})")

    def _parent_candidates(self) -> list[Any]:
        query = (f"tags.`{TAG_STUDY}` = {_quoted(self.study_name, 'study name')} "
                 f"AND tags.`{TAG_ROLE}` = '{ROLE_STUDY}'")
        runs = search_all_runs(self.client, [self.experiment_id], query)
        return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def _get_or_create_parent(self, settle: float) -> str:
        runs = self._parent_candidates()
        if runs:
            parent = runs[0]
            if parent.info.status != "RUNNING":
                self.client.update_run(parent.info.run_id, status="RUNNING")
            return str(parent.info.run_id)
        created = self.client.create_run(
            self.experiment_id, run_name=self.study_name,
            tags={TAG_STUDY: self.study_name, TAG_ROLE: ROLE_STUDY},
        )
        mine = str(created.info.run_id)
        # Look again: a worker that started at the same moment may have created one too. Its run may become
        # visible only after this look, so without a lock look once more after ``settle`` seconds: every
        # creator then sees the same runs and keeps the same, the earliest.
        winner = self._earliest_parent(mine)
        if winner == mine and settle > 0:
            time.sleep(settle)
            winner = self._earliest_parent(mine)
        if winner != mine:
            self.client.delete_run(mine)
        return winner

    def _earliest_parent(self, default: str) -> str:
        runs = self._parent_candidates()
        return str(runs[0].info.run_id) if runs else default

    def start_trial(self, trial_number: int, params: Mapping[str, Any] | None = None,
                    tags: Mapping[str, Any] | None = None, *, retry_of: int | None = None) -> TrialRun:
        """Create the child run ``trial-<n>`` under the study's parent run and log ``params``.

        A retried trial (Optuna gives it a new number) gets a new run tagged
        ``workbench.retry_of=<old number>``.
        """
        if isinstance(trial_number, bool) or not isinstance(trial_number, int) or trial_number < 0:
            raise ValueError(f"trial_number must be a non-negative int, got {trial_number!r}")
        all_tags: dict[str, Any] = dict(tags or {})
        all_tags.update({TAG_PARENT: self.parent_run_id, TAG_STUDY: self.study_name,
                         TAG_ROLE: ROLE_TRIAL, TAG_TRIAL: trial_number})
        if retry_of is not None:
            all_tags[TAG_RETRY_OF] = int(retry_of)
        first = {sanitize_key(k): clip(format_value(v), MAX_TAG_LENGTH) for k, v in all_tags.items()}
        created = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_number}", tags=first)
        run = TrialRun(self.client, str(created.info.run_id), trial_number, self.experiment_id)
        if params:
            run.log_params(params)
        return run

    def trial_runs(self) -> list[Any]:
        """Every active child run of the parent (MLflow ``Run`` objects), by trial number."""
        runs = search_all_runs(self.client, [self.experiment_id],
                               f"tags.`{TAG_PARENT}` = '{self.parent_run_id}'")
        return sorted(runs, key=lambda r: (int(r.data.tags.get(TAG_TRIAL, -1)), r.info.start_time or 0))

    def log_study_params(self, params: Mapping[str, Any]) -> list[str]:
        """Log the study definition (search space, budget, objectives) as params of the parent run.

        A resumed study logs again: keys already there with the same value are skipped, and a key
        whose value changed (MLflow params are write-once) is recorded as the tag
        ``workbench.changed.<key>`` instead. Returns the changed keys.
        """
        from mlflow.entities import Param

        existing = dict(self.client.get_run(self.parent_run_id).data.params)
        flat = {k: clip(v, MAX_PARAM_LENGTH) for k, v in flat_params(params).items()}
        changed = sorted(k for k, v in flat.items() if k in existing and existing[k] != v)
        entries = [Param(k, v) for k, v in flat.items() if k not in existing]
        for part in chunks(entries, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.parent_run_id, params=list(part))
        if changed:
            set_run_tags(self.client, self.parent_run_id, {f"workbench.changed.{k}": flat[k] for k in changed})
        return changed

    def describe(self, description: str) -> None:
        """Show ``description`` on the experiment and the study's run, and mark the experiment as model training.

        Without the kind tag, MLflow 3 opens a new experiment in its GenAI view (traces), where a
        study's runs do not appear.
        """
        self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND_TRAINING)
        if description:
            self.client.set_experiment_tag(self.experiment_id, NOTE_TAG, description)
            set_run_tags(self.client, self.parent_run_id, {NOTE_TAG: description})

    def set_study_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags on the parent run."""
        set_run_tags(self.client, self.parent_run_id, tags)

    def log_study_summary(self, best_values: Mapping[str, float] | Sequence[float] | float,
                          n_complete: int, n_pruned: int, n_failed: int) -> dict[str, float]:
        """Log the study's best objective values and trial counts on the parent run.

        ``best_values`` maps objective names to their best value (a list is named ``objective<i>``);
        metrics are ``best.<name>``, ``n_complete``, ``n_pruned``, ``n_failed``, ``n_trials``, logged
        at step ``n_trials`` so repeated summaries draw a curve. Returns what was logged.
        """
        if isinstance(best_values, Mapping):
            named = dict(best_values)
        elif isinstance(best_values, (int, float)):
            named = {"value": best_values}
        else:
            named = {f"objective{i}": v for i, v in enumerate(best_values)}
        counts = {"n_complete": n_complete, "n_pruned": n_pruned, "n_failed": n_failed}
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a non-negative int, got {value!r}")
        total = n_complete + n_pruned + n_failed
        metrics = {f"best.{k}": metric_value(f"best.{k}", v) for k, v in named.items()}
        metrics.update({k: float(v) for k, v in counts.items()})
        metrics["n_trials"] = float(total)
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(sanitize_key(k), v, now, total) for k, v in metrics.items()]
        self.client.log_batch(self.parent_run_id, metrics=batch)
        return metrics

    def log_study_artifact(self, path: str | Path, artifact_path: str | None = "report") -> None:
        """Upload a report file or directory (figures, tables) to the parent run."""
        upload(self.client, self.parent_run_id, path, artifact_path)

    def log_study_json(self, data: Any, name: str, artifact_path: str | None = "report") -> None:
        """Write ``data`` as ``<name>`` (JSON) among the parent run's artifacts."""
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / name
            file.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
            self.log_study_artifact(file, artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        """Mark the parent run ended (``FINISHED``, ``FAILED`` or ``KILLED``); a resume reopens it."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
        self.client.set_terminated(self.parent_run_id, status=status)
