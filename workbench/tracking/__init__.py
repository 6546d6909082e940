"""MLflow tracking: a parent run per study, a child run per trial, comparison tables and Pareto plots.

Everything goes through ``MlflowClient`` with explicit run ids (never MLflow's global active run),
so several threads or worker processes can log the same study at once.

Example::

    from workbench.tracking import StudyTracker, resolve_tracking_uri

    uri = resolve_tracking_uri(None, project_dir=".")        # sqlite:///<abs>/mlflow.db
    tracker = StudyTracker(uri, "hstl-search", "casia-b-trees")
    with tracker.start_trial(0, {"tree_id": "3f2a...", "stage3.split": [8, 32, 16, 8]}) as run:
        run.log_metrics({"rank1": 0.91, "gflops": 51.6})
    tracker.log_study_summary({"rank1": 0.91}, n_complete=1, n_pruned=0, n_failed=0)
"""

from __future__ import annotations

from workbench.tracking._callback import TAG_CHECKPOINT, TAG_CHECKPOINT_STEP, MLflowTrainingCallback
from workbench.tracking._compare import (
    TEST_METRIC_PREFIX,
    VALIDATION_METRIC_PREFIX,
    comparison_table,
    experiment_names,
    load_trials,
    numeric_column,
    resolve_column,
    run_label,
    tree_label,
)
from workbench.tracking._hierarchy import hierarchy_params, log_hierarchy
from workbench.tracking._pareto import (
    DEFAULT_OBJECTIVES,
    non_dominated,
    pareto_figure,
    pareto_front,
    pareto_mask,
    parse_objectives,
)
from workbench.tracking._runs import (
    TAG_ERROR,
    TAG_PARENT,
    TAG_RETRY_OF,
    TAG_ROLE,
    TAG_STATE,
    TAG_STEP,
    TAG_STUDY,
    TAG_TRIAL,
    StudyTracker,
    TrialOutcome,
    TrialRun,
    search_all_runs,
)
from workbench.tracking._store import (
    TrackingError,
    check_tracking_uri,
    default_artifact_location,
    redact_uri,
    resolve_tracking_uri,
    sqlite_file_problem,
    ui_hint,
    with_postgres_driver,
)
from workbench.tracking._trees import (
    CONFIRM_FOLDER,
    SPLIT_FOLDERS,
    compare_logged_trees,
    confirm_folder,
    replicate_folder,
    run_evaluations,
    seed_folders,
    split_evaluations,
    tree_groups,
    trial_run_folder,
)
from workbench.tracking._values import format_value, sanitize_key

__all__ = [
    "CONFIRM_FOLDER",
    "DEFAULT_OBJECTIVES",
    "SPLIT_FOLDERS",
    "TAG_CHECKPOINT",
    "TAG_CHECKPOINT_STEP",
    "TAG_ERROR",
    "TAG_PARENT",
    "TAG_RETRY_OF",
    "TAG_ROLE",
    "TAG_STATE",
    "TAG_STEP",
    "TAG_STUDY",
    "TAG_TRIAL",
    "TEST_METRIC_PREFIX",
    "VALIDATION_METRIC_PREFIX",
    "MLflowTrainingCallback",
    "StudyTracker",
    "TrackingError",
    "TrialOutcome",
    "TrialRun",
    "check_tracking_uri",
    "compare_logged_trees",
    "comparison_table",
    "confirm_folder",
    "default_artifact_location",
    "experiment_names",
    "format_value",
    "hierarchy_params",
    "load_trials",
    "log_hierarchy",
    "non_dominated",
    "numeric_column",
    "pareto_figure",
    "pareto_front",
    "pareto_mask",
    "parse_objectives",
    "redact_uri",
    "replicate_folder",
    "resolve_column",
    "resolve_tracking_uri",
    "run_evaluations",
    "run_label",
    "sanitize_key",
    "search_all_runs",
    "seed_folders",
    "split_evaluations",
    "sqlite_file_problem",
    "tree_groups",
    "tree_label",
    "trial_run_folder",
    "ui_hint",
    "with_postgres_driver",
]
