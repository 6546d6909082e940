"""The paper's hierarchies and uniform baselines: the source of truth for ``hierarchies/*.json``."""

from __future__ import annotations

from workbench.hierarchy._tree import PartitionTree

#: Region counts per level, coarse to fine, that the HSTL paper's CASIA-B model cuts (two, then four): what
#: a model is cut at and a dendrogram coloured at when no cuts are given.
PAPER_CUTS: tuple[int, ...] = (2, 4)


def _uniform_levels(n_rows: int) -> list[list[int]]:
    """Halving levels down to 4-row regions: ``[[64], [32, 32], [16] * 4, ...]``."""
    levels = [[n_rows]]
    while max(levels[-1]) > 4:
        levels.append([half for s in levels[-1] for half in ((s + 1) // 2, s // 2) if half > 0])
    return levels


# name -> (rows, levels coarse to fine, the cuts the paper's model used, description)
_PRESETS: dict[str, tuple[int, list[list[int]], list[list[int]], str]] = {
    "casia-b-paper": (
        64,
        [[64], [40, 24], [8, 32, 16, 8]],
        [[64], [40, 24], [8, 32, 16, 8]],
        "HSTL's CASIA-B hierarchy: whole body, upper/lower body, four parts (64 rows)",
    ),
    "oumvlp-paper": (
        32,
        [[32], [4, 24, 4], [4, 4, 12, 8, 4], [4, 4, 12, 4, 4, 4]],
        [[32], [4, 24, 4], [4, 4, 12, 8, 4], [4, 4, 12, 4, 4, 4]],
        "HSTL's OUMVLP hierarchy after the height-halving pool (32 rows; first split ternary)",
    ),
    "gait3d-paper": (
        32,
        [[32], [20, 12], [4, 16, 8, 4], [4, 4, 12, 8, 4]],
        [[32], [20, 12], [4, 16, 8, 4], [4, 4, 12, 8, 4]],
        "HSTL's Gait3D/GREW hierarchy after the height-halving pool (32 rows)",
    ),
    "uniform-64": (
        64,
        _uniform_levels(64),
        [[64], [32, 32], [16] * 4],
        "uniform baseline: every region halves (64 rows)",
    ),
    "uniform-32": (
        32,
        _uniform_levels(32),
        [[32], [16, 16], [8] * 4],
        "uniform baseline: every region halves (32 rows)",
    ),
}


def list_presets() -> list[str]:
    """Names of the built-in hierarchies."""
    return list(_PRESETS)


def preset_description(name: str) -> str:
    """One line describing a preset."""
    return _PRESETS[name][3]


def preset_tree(name: str) -> PartitionTree:
    """The built-in tree ``name`` (see ``list_presets``), with its paper cuts recorded."""
    if name not in _PRESETS:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(_PRESETS)}")
    n_rows, levels, cuts, description = _PRESETS[name]
    provenance = {"source": "preset", "description": description, "levels": levels}
    return PartitionTree.from_levels(n_rows, levels, name=name, provenance=provenance, paper_cuts=cuts)


def uniform_tree(n_rows: int) -> PartitionTree:
    """A halving tree over ``n_rows`` rows (the baseline discovered trees are compared with)."""
    levels = _uniform_levels(n_rows)
    return PartitionTree.from_levels(
        n_rows, levels, name=f"uniform-{n_rows}", provenance={"source": "uniform", "levels": levels}
    )


__all__ = ["list_presets", "preset_description", "preset_tree", "uniform_tree"]
