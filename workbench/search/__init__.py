"""Optuna studies over hierarchies: study files, search spaces, objectives, storages, workers, reports.

Example::

    from workbench.search import run_study
    summary = run_study("studies/quick-synthetic.toml")
"""

from __future__ import annotations

from workbench.search._config import (
    COST_METRICS,
    Budget,
    HierarchyCandidates,
    Objective,
    SearchSpace,
    StudyConfig,
    load_study_config,
)
from workbench.search._confirm import Confirmation, ConfirmationReport, confirm_trials
from workbench.search._heartbeat import Heartbeat, ReapResult, count_trials, is_stale, reap_stale_trials
from workbench.search._heldout import HeldOutReport, HeldOutTrial, score_on_test, select_trials
from workbench.search._objective import TrialResult, run_trial
from workbench.search._prepare import SYNTHETIC_SETS, PreparedStudy, prepare_study, synthetic_data
from workbench.search._replicates import PruningCallback, headline
from workbench.search._report import StudyReport, build_report, trial_label
from workbench.search._runner import (
    RunSummary,
    choose_storage_url,
    open_study,
    run_study,
    summarise,
    worker_loop,
)
from workbench.search._space import Candidate, TrialChoice, check_candidates, load_candidates, suggest
from workbench.search._storage import StorageError, default_storage_url, journal_path, open_storage

__all__ = [
    "COST_METRICS",
    "SYNTHETIC_SETS",
    "Budget",
    "Candidate",
    "Confirmation",
    "ConfirmationReport",
    "Heartbeat",
    "HeldOutReport",
    "HeldOutTrial",
    "HierarchyCandidates",
    "Objective",
    "PreparedStudy",
    "PruningCallback",
    "ReapResult",
    "RunSummary",
    "SearchSpace",
    "StorageError",
    "StudyConfig",
    "StudyReport",
    "TrialChoice",
    "TrialResult",
    "build_report",
    "check_candidates",
    "choose_storage_url",
    "confirm_trials",
    "count_trials",
    "default_storage_url",
    "headline",
    "is_stale",
    "journal_path",
    "load_candidates",
    "load_study_config",
    "open_storage",
    "open_study",
    "prepare_study",
    "reap_stale_trials",
    "run_study",
    "run_trial",
    "score_on_test",
    "select_trials",
    "suggest",
    "summarise",
    "synthetic_data",
    "trial_label",
    "worker_loop",
]
