"""Work a study does once before any trial: render synthetic data, discover candidate trees, load them."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench._locks import file_lock
from workbench.search._config import StudyConfig
from workbench.search._space import Candidate, check_candidates, load_candidates

if TYPE_CHECKING:
    from workbench.data.synth import SynthConfig

log = logging.getLogger(__name__)

#: Synthetic data sets a study can ask for by name (``data.synthetic``), as SynthConfig overrides.
#: ``quick`` is sized so that the demo's studies finish in minutes on a CPU yet decide something: 60
#: subjects (30 train, of which a study holds some out for validation, and 30 test), the types the
#: synthetic protocol needs, five views, 24-32 frames.
#: ``small`` is the least a study runs on: six subjects, the types the synthetic protocol needs, three
#: views (larger than ``SynthConfig.tiny``, training's ``data.synthetic = "tiny"``, which a study cannot split).
SYNTHETIC_SETS: dict[str, dict[str, object]] = {
    "small": {
        "subjects": 6, "views": (0, 90, 180), "frames": (16, 20),
        "types": ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "bg-01", "cl-01"),
    },
    "quick": {
        "subjects": 60, "train_fraction": 0.5, "views": (0, 45, 90, 135, 180), "frames": (24, 32),
        "types": ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "cl-01"),
    },
    "default": {},
}

_DONE_MARKER = ".complete"

#: Subject resamples behind the per-node support of a discovered tree (they reuse the descriptor sums:
#: seconds, not another pass over the data).
DISCOVERY_RESAMPLES = 100

#: Lock file in the project directory under which a process prepares a study.
PREPARE_LOCK = ".prepare.lock"


@dataclass(frozen=True)
class PreparedStudy:
    """Inputs every worker shares: the data path, the split, the validation protocol and the candidate trees.

    ``split_path`` is the partition file trials use (``TRAIN_SET``: training subjects, ``TEST_SET``:
    validation subjects); ``test_partition`` is the dataset's own partition, read only by the test step.
    """

    data_path: Path
    candidates: tuple[Candidate, ...]
    discovered: tuple[Path, ...]
    split_path: Path
    test_partition: Path
    validation_protocol: Any

    def candidate_map(self) -> dict[str, Candidate]:
        return {c.name: c for c in self.candidates}


def synthetic_config(name: str, seed: int = 0, test_subjects: int | None = None,
                     validation_subjects: int | None = None) -> SynthConfig:
    """The ``SynthConfig`` of the named set; ``test_subjects`` replaces its number of test subjects and
    keeps its training subjects (the first ones, seeded one by one, so they render exactly as before);
    ``validation_subjects`` renders that many more after the test subjects, to be held out."""
    from workbench.data.synth import SynthConfig

    if name not in SYNTHETIC_SETS:
        raise ValueError(f"data.synthetic {name!r} is unknown; choose one of {sorted(SYNTHETIC_SETS)}")
    config = SynthConfig.default(seed=seed, **SYNTHETIC_SETS[name])
    if test_subjects is None and validation_subjects is None:
        return config
    train = config.train_count
    test = config.subjects - train if test_subjects is None else test_subjects
    held = validation_subjects or 0
    # train_count rounds train_fraction * (subjects - held) to the nearest whole number: exactly ``train``.
    return config.replace(subjects=train + test + held, train_fraction=train / (train + test),
                          validation_subjects=held)


def synthetic_data(project_dir: Path, name: str, seed: int = 0, progress: bool = True,
                   test_subjects: int | None = None, validation_subjects: int | None = None) -> Path:
    """Render the named synthetic set under ``project_dir/data`` once; later calls reuse it."""
    from workbench.data.synth import render_dataset

    config = synthetic_config(name, seed, test_subjects, validation_subjects)
    wide = "" if test_subjects is None else f"-test{test_subjects}"
    wide += "" if validation_subjects is None else f"-val{validation_subjects}"
    out = project_dir / "data" / f"synthetic-{name}{wide}-seed{seed}"
    if (out / _DONE_MARKER).exists():
        return out
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    render_dataset(tmp, config, progress=progress)
    (tmp / _DONE_MARKER).write_text("rendered\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def dataset_partition(config: StudyConfig, data_path: Path) -> Path:
    """The dataset's own partition file: ``data.partition``, else ``partition.json`` in the dataset."""
    path = Path(config.data.partition).expanduser() if config.data.partition else data_path / "partition.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"data.partition: {path} does not exist; a study needs the dataset's TRAIN_SET/TEST_SET file "
            "(set data.partition to its path)"
        )
    return path.resolve()


def validation_split(config: StudyConfig, data_path: Path) -> tuple[Path, Any]:
    """Write (or check) the study's validation split; return its path and the protocol that scores it.

    The split file lives at ``project_dir/splits/<study>.json``; every worker and every resume derives
    the same split and finds it already there.
    """
    from workbench.data import open_source, read_partition, split_validation
    from workbench.evaluation import validation_protocol

    partition = read_partition(dataset_partition(config, data_path))
    records = open_source(data_path).records
    train_ids = set(partition.train)
    protocol = validation_protocol(config.data.protocol, {r.type for r in records if r.id in train_ids})
    requested = config.data.validation
    if config.data.validation_subjects is not None:
        fraction, ids = None, tuple(synthetic_config(config.data.synthetic, config.data.synthetic_seed,
                                                     config.data.test_subjects,
                                                     config.data.validation_subjects).validation_ids)
    elif isinstance(requested, tuple):
        fraction, ids = None, requested
    else:
        fraction, ids = config.data.validation_fraction, None
    split = split_validation(partition, fraction=fraction, ids=ids, seed=config.data.validation_seed,
                             records=records, probe_per_subject=protocol.needs_probe_flags)
    from workbench.search._checks import check_objectives, raise_problems

    held_out = set(split.validation)
    raise_problems(check_objectives(config, protocol, [r for r in records if r.id in held_out], split.probe),
                   config.study.name)
    path = split.save(config.project_dir / "splits" / f"{config.study.name}.json")
    log.info("validation split %s: %d training, %d validation, %d test subjects (test unread until "
             "`workbench study test`)", path, len(split.train), len(split.validation), len(split.test))
    return path, protocol


def discover_candidates(config: StudyConfig, data_path: Path, progress: bool = True,
                        partition: Path | None = None) -> list[Path]:
    """Discover one tree per descriptor x linkage on the training subjects; reuse files already written.

    ``partition`` is the study's split, so discovery never reads validation or test subjects.
    """
    from workbench.hierarchy import PAPER_CUTS, discover_tree

    settings = config.hierarchies.discover
    out_dir = config.project_dir / "hierarchies"
    paths: list[Path] = []
    for descriptor in settings.descriptors:
        for linkage in settings.linkages:
            path = out_dir / f"{config.study.name}-{descriptor}-{linkage}.json"
            if not path.exists():
                result = discover_tree(
                    data_path, descriptor=descriptor, linkage=linkage, metric=settings.metric,
                    subset="train", partition=partition, max_sequences=settings.max_sequences,
                    progress=progress, name=path.stem, bootstrap=DISCOVERY_RESAMPLES,
                )
                result.tree.save(path)
                log.info("discovered %s: cuts %s", path.name, result.tree.cuts(PAPER_CUTS))
            paths.append(path)
    return paths


def prepare_study(config: StudyConfig, progress: bool = True) -> PreparedStudy:
    """Data path, discovered trees and the checked list of candidates.

    Every name the study file uses is checked first, before any data is rendered; the objectives are
    checked against the validation protocol's figures before any tree is discovered.
    """
    from workbench.search._checks import check_names, check_widths, raise_problems

    raise_problems(check_names(config) or check_widths(config), config.study.name)
    project = config.project_dir
    project.mkdir(parents=True, exist_ok=True)
    # Processes started together on one project (two terminals, or --workers) take turns: the first
    # renders, splits and discovers; the others find the files made.
    with file_lock(project / PREPARE_LOCK):
        return _prepare(config, project, progress)


def _prepare(config: StudyConfig, project: Path, progress: bool) -> PreparedStudy:
    if config.data.is_synthetic:
        data_path = synthetic_data(project, config.data.synthetic, seed=config.data.synthetic_seed,
                                   progress=progress, test_subjects=config.data.test_subjects,
                                   validation_subjects=config.data.validation_subjects)
    else:
        data_path = Path(config.data.source).expanduser().resolve()
        if not data_path.exists():
            raise FileNotFoundError(f"data.source {config.data.source}: no such dataset directory")
    split_path, protocol = validation_split(config, data_path)
    discovered = (discover_candidates(config, data_path, progress, split_path)
                  if config.hierarchies.discover.descriptors else [])
    candidates = load_candidates(config, discovered)
    problems = check_candidates(candidates, config.space)
    if problems:
        raise ValueError("the search space cannot be built:\n  " + "\n  ".join(problems))
    return PreparedStudy(data_path=data_path, candidates=tuple(candidates), discovered=tuple(discovered),
                         split_path=split_path, test_partition=dataset_partition(config, data_path),
                         validation_protocol=protocol)
