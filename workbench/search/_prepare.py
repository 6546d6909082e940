"""Work a study does once before any trial: render synthetic data, discover candidate trees, load them."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from workbench.search._config import StudyConfig
from workbench.search._space import Candidate, check_candidates, load_candidates

log = logging.getLogger(__name__)

#: Synthetic data sets a study can ask for by name (``data.synthetic``), as SynthConfig overrides.
#: ``quick`` is sized so that an 8-trial CPU study finishes in minutes: 16 subjects (10 train, 6 test),
#: the types the synthetic protocol needs, five views, 24-32 frames.
SYNTHETIC_SETS: dict[str, dict[str, object]] = {
    "tiny": {
        "subjects": 6, "views": (0, 90, 180), "frames": (16, 20),
        "types": ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "bg-01", "cl-01"),
    },
    "quick": {
        "subjects": 16, "views": (0, 45, 90, 135, 180), "frames": (24, 32),
        "types": ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "cl-01"),
    },
    "default": {},
}

_DONE_MARKER = ".complete"


@dataclass(frozen=True)
class PreparedStudy:
    """Inputs every worker shares: the data path and the candidate trees."""

    data_path: Path
    candidates: tuple[Candidate, ...]
    discovered: tuple[Path, ...]

    def candidate_map(self) -> dict[str, Candidate]:
        return {c.name: c for c in self.candidates}


def synthetic_data(project_dir: Path, name: str, seed: int = 0, progress: bool = True) -> Path:
    """Render the named synthetic set under ``project_dir/data`` once; later calls reuse it."""
    from workbench.data.synth import SynthConfig, render_dataset

    if name not in SYNTHETIC_SETS:
        raise ValueError(f"data.synthetic {name!r} is unknown; choose one of {sorted(SYNTHETIC_SETS)}")
    out = project_dir / "data" / f"synthetic-{name}-seed{seed}"
    if (out / _DONE_MARKER).exists():
        return out
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    config = SynthConfig.default(seed=seed, **SYNTHETIC_SETS[name])
    render_dataset(tmp, config, progress=progress)
    (tmp / _DONE_MARKER).write_text("rendered\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def discover_candidates(config: StudyConfig, data_path: Path, progress: bool = True) -> list[Path]:
    """Discover one tree per descriptor x linkage on the training subset; reuse files already written."""
    from workbench.hierarchy import discover_tree

    settings = config.hierarchies.discover
    out_dir = config.project_dir / "hierarchies"
    paths: list[Path] = []
    for descriptor in settings.descriptors:
        for linkage in settings.linkages:
            path = out_dir / f"{config.study.name}-{descriptor}-{linkage}.json"
            if not path.exists():
                result = discover_tree(
                    data_path, descriptor=descriptor, linkage=linkage, metric=settings.metric,
                    subset="train", max_sequences=settings.max_sequences, progress=progress,
                    name=path.stem,
                )
                result.tree.save(path)
                log.info("discovered %s: cuts %s", path.name, result.tree.cuts([2, 4]))
            paths.append(path)
    return paths


def prepare_study(config: StudyConfig, progress: bool = True) -> PreparedStudy:
    """Data path, discovered trees and the checked list of candidates."""
    project = config.project_dir
    project.mkdir(parents=True, exist_ok=True)
    if config.data.is_synthetic:
        data_path = synthetic_data(project, config.data.synthetic, seed=config.train.seed, progress=progress)
    else:
        data_path = Path(config.data.source).expanduser().resolve()
        if not data_path.exists():
            raise FileNotFoundError(f"data.source {config.data.source}: no such dataset directory")
    discovered = discover_candidates(config, data_path, progress) if config.hierarchies.discover.descriptors else []
    candidates = load_candidates(config, discovered)
    problems = check_candidates(candidates, config.space)
    if problems:
        raise ValueError("the search space cannot be built:\n  " + "\n  ".join(problems))
    return PreparedStudy(data_path=data_path, candidates=tuple(candidates), discovered=tuple(discovered))
