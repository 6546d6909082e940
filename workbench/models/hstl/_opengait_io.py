"""Read HSTL weights and configs written by the public HSTL/OpenGait code (``_opengait_export`` writes them).

The workbench's module names are the public ones (``arme1``, ``astp2_fta``, ``Head0`` ...), so a
state dict maps key for key; only a ``module.`` prefix left by DataParallel/DDP is stripped. FTA after
a stage other than the second is a workbench extension named ``fta<k>`` / ``astp<k>_fta``.

A checkpoint's shapes give channels, region counts per stage, classes and parts, but not the
region heights of the ARME splits. ``spec_from_state_dict`` takes them from, in order: an exported
``model_cfg``, explicit ``splits``, a partition ``tree`` cut at the checkpoint's region counts, or the
one paper tree (``PAPER_TREES``) whose cuts have the checkpoint's regions per stage and part count,
with a ``GuessedSplitsWarning`` saying so; with none or several such trees it asks for one.
"""

from __future__ import annotations

import collections
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from workbench.models.hstl._model import HSTL, fta_name
from workbench.models.hstl._spec import HSTLSpec, SpecError, StageSpec

if TYPE_CHECKING:
    from workbench.hierarchy import PartitionTree

StateDict = Mapping[str, torch.Tensor]

#: The trees the public models were trained with; a checkpoint without its splits is matched against
#: these only (the uniform baselines would match too many checkpoints to be a useful guess).
PAPER_TREES = ("casia-b-paper", "oumvlp-paper", "gait3d-paper")


class GuessedSplitsWarning(UserWarning):
    """The split heights of a checkpoint were taken from a preset tree, not from the checkpoint."""


def _strip_prefix(state: StateDict) -> dict[str, torch.Tensor]:
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


def _require(state: StateDict, key: str, where: str) -> torch.Tensor:
    if key not in state:
        raise SpecError(f"{where}: no {key!r} in the state dict; is this an HSTL checkpoint?")
    return state[key]


def _count(state: StateDict, pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for key in state if (m := regex.fullmatch(key))})


def _structure(state: StateDict, where: str) -> dict[str, Any]:
    """What the tensor shapes say: channels, region counts, projections, FTA, parts, classes."""
    stem_keys = sorted((int(m.group(1)), k) for k in state if (m := re.fullmatch(r"arme1\.(\d+)\.conv3d\.weight", k)))
    if not stem_keys:
        raise SpecError(f"{where}: no stem weights 'arme1.<i>.conv3d.weight'; is this an HSTL checkpoint?")
    stem = [state[k] for _, k in stem_keys]
    head0 = _require(state, "Head0.fc_bin", where)
    head1 = _require(state, "Head1.fc_bin", where)
    stages: list[dict[str, Any]] = []
    number = 2
    while f"arme{number}.0.conv3d.0.conv3d.weight" in state:
        regions = _count(state, rf"arme{number}\.0\.conv3d\.(\d+)\.conv3d\.weight")
        conv1 = state[f"arme{number}.0.conv3d.0.conv3d.weight"]
        conv2 = _require(state, f"arme{number}.1.conv3d.0.conv3d.weight", where)
        stages.append(
            {
                "channels": (int(conv1.shape[0]), int(conv2.shape[0])),
                "regions": regions,
                "fta": f"{fta_name(number)}.mma.0.fcs.0.weight" in state,
                "project": f"astp{number}.proj.conv.weight" in state,
            }
        )
        number += 1
    if not stages:
        raise SpecError(f"{where}: no ARME stage weights 'arme2.0.conv3d.0.conv3d.weight'")
    first_regions = _count(state, r"astp1\.hpp\.(\d+)\.p")
    region_parts = first_regions + sum(s["regions"] * (2 if s["fta"] else 1) for s in stages)
    return {
        "in_channels": int(stem[0].shape[1]),
        "stem_channels": tuple(int(w.shape[0]) for w in stem),
        "first_regions": first_regions,
        "first_project": "astp1.proj.conv.weight" in state,
        "stages": stages,
        "astp_channels": int(head0.shape[1]),
        "parts": int(head0.shape[0]),
        "strips": int(head0.shape[0]) - region_parts,
        "num_classes": int(head1.shape[2]),
    }


def _matches(spec: HSTLSpec, shape: Mapping[str, Any]) -> bool:
    return (
        spec.in_channels == shape["in_channels"]
        and spec.stem_channels == shape["stem_channels"]
        and len(spec.first_split) == shape["first_regions"]
        and spec.first_project == shape["first_project"]
        and spec.astp_channels == shape["astp_channels"]
        and spec.strips == shape["strips"]
        and len(spec.stages) == len(shape["stages"])
        and all(
            st.channels == s["channels"] and len(st.split) == s["regions"] and st.fta == s["fta"]
            and st.project == s["project"]
            for st, s in zip(spec.stages, shape["stages"], strict=False)
        )
    )


def _regions(shape: Mapping[str, Any]) -> list[int]:
    return [s["regions"] for s in shape["stages"]]


def _tree_parts(tree: PartitionTree, shape: Mapping[str, Any]) -> int | None:
    """Parts of the model the tree's recorded cuts give with the checkpoint's FTA placement and strips = rows."""
    cuts = tree.paper_cuts
    if len(cuts) != len(shape["stages"]) + 1:
        return None
    stage_parts = sum(len(cut) * (2 if s["fta"] else 1) for cut, s in zip(cuts[1:], shape["stages"], strict=True))
    return len(cuts[0]) + stage_parts + tree.n_rows


def _guess_tree(shape: Mapping[str, Any], where: str) -> PartitionTree:
    from workbench.hierarchy import preset_tree

    counts = [shape["first_regions"], *_regions(shape)]
    trees = [preset_tree(name) for name in PAPER_TREES]
    found = [t for t in trees if [len(c) for c in t.paper_cuts] == counts and _tree_parts(t, shape) == shape["parts"]]
    if len(found) == 1:
        return found[0]
    listed = "; ".join(
        f"{t.name}: regions per stage {[len(c) for c in t.paper_cuts[1:]]}"
        + (f", {parts} parts" if (parts := _tree_parts(t, shape)) else "")
        for t in (found or trees)
    )
    problem = "match several preset trees" if found else "match no preset tree"
    raise SpecError(
        f"{where}: its regions per stage {_regions(shape)} and {shape['parts']} parts {problem} ({listed}); the "
        "split heights are not stored in the weights, so choose the tree with --tree (tree=): a preset name or a "
        "tree JSON file"
    )


def resolve_tree(state: StateDict, tree: PartitionTree | str | Path | None = None, *, where: str = "checkpoint"
                 ) -> PartitionTree:
    """The partition tree whose cuts give the split heights of a public-named HSTL state dict.

    ``tree`` (a ``PartitionTree``, a preset name or a tree JSON file) is loaded and returned; without it,
    the one tree of ``PAPER_TREES`` whose cuts have the checkpoint's regions per stage and part count,
    with a ``GuessedSplitsWarning`` naming it. None or several such trees raise ``SpecError``.
    """
    from workbench.hierarchy import load_tree

    if tree is not None:
        return load_tree(tree) if isinstance(tree, (str, Path)) else tree
    shape = _structure(_strip_prefix(state), where)
    found = _guess_tree(shape, where)
    warnings.warn(
        f"{where}: split heights are not stored in the weights; using tree {found.name!r}, the only preset tree "
        f"with regions per stage {_regions(shape)} and {shape['parts']} parts (splits "
        f"{[list(c) for c in found.paper_cuts[1:]]} at {found.n_rows} rows); pass --tree (tree=) with a preset "
        "name or a tree JSON file to choose another",
        GuessedSplitsWarning,
        stacklevel=2,
    )
    return found


def _differences(spec: HSTLSpec, shape: Mapping[str, Any]) -> str:
    built = _structure(_meta_state(spec), "spec")
    fields = [
        ("regions per stage", _regions(built), _regions(shape)),
        ("parts", spec.parts, shape["parts"]),
        ("final strips", built["strips"], shape["strips"]),
        ("stage channels", [list(s["channels"]) for s in built["stages"]], [list(s["channels"]) for s in shape["stages"]]),
        ("stem channels", list(built["stem_channels"]), list(shape["stem_channels"])),
        ("first regions", built["first_regions"], shape["first_regions"]),
        ("FTA stages", [s["fta"] for s in built["stages"]], [s["fta"] for s in shape["stages"]]),
        ("projections", [s["project"] for s in built["stages"]], [s["project"] for s in shape["stages"]]),
        ("ASTP channels", built["astp_channels"], shape["astp_channels"]),
        ("first ASTP projection", built["first_project"], shape["first_project"]),
        ("input channels", built["in_channels"], shape["in_channels"]),
        ("classes", spec.num_classes, shape["num_classes"]),
    ]
    return ", ".join(f"{name} {mine} vs the checkpoint's {theirs}" for name, mine, theirs in fields if mine != theirs)


def _meta_state(spec: HSTLSpec) -> dict[str, torch.Tensor]:
    # Meta tensors carry the shapes without allocating the weights.
    with torch.device("meta"):
        return HSTL(spec).state_dict()


def spec_from_state_dict(
    state: StateDict,
    *,
    splits: Sequence[Sequence[int]] | None = None,
    tree: PartitionTree | str | Path | None = None,
    model_cfg: Mapping[str, Any] | str | Path | None = None,
    input_height: int = 64,
    downsample_before: Sequence[int] | None = None,
    where: str = "checkpoint",
) -> HSTLSpec:
    """Rebuild the ``HSTLSpec`` of a public-named HSTL state dict (see the module notes for splits)."""
    state = _strip_prefix(state)
    shape = _structure(state, where)
    given = "the given model_cfg"
    if model_cfg is not None:
        spec = spec_from_model_cfg(model_cfg)
    else:
        counts = _regions(shape)
        down = downsample_before
        if down is None:
            # The public models halve the height once, right before the first ARME stage.
            halvings = max(0, (input_height // max(shape["strips"], 1)).bit_length() - 1)
            down = tuple(range(halvings))
        common: dict[str, Any] = {
            "stage_channels": [s["channels"] for s in shape["stages"]],
            "channels": (shape["stem_channels"][0],),
            "stem_convs": len(shape["stem_channels"]),
            "input_height": input_height,
            "downsample_before": down,
            "fta_stages": [i for i, s in enumerate(shape["stages"]) if s["fta"]],
            "project_last": shape["stages"][-1]["project"],
            "astp_channels": shape["astp_channels"],
            "num_classes": shape["num_classes"],
        }
        if splits is not None:
            if [len(s) for s in splits] != counts:
                raise SpecError(
                    f"{where}: splits {[list(s) for s in splits]} have {[len(s) for s in splits]} regions per stage, "
                    f"the checkpoint {counts}"
                )
            spec = HSTLSpec.from_splits(splits, **common)
            given = "the given splits"
        else:
            chosen = resolve_tree(state, tree, where=where)
            label = f"tree {chosen.name or chosen.tree_id!r} ({chosen.n_rows} rows)"
            try:
                spec = HSTLSpec.from_tree(chosen, counts, **common)
            except SpecError as exc:
                raise SpecError(
                    f"{where}: {label} does not fit the weights, which have regions per stage {counts}: {exc}; "
                    "choose another --tree"
                ) from exc
            given = f"{label}, cut at those counts,"
        spec = spec.replace(
            stem_channels=shape["stem_channels"],
            in_channels=shape["in_channels"],
            first_project=shape["first_project"],
            stages=tuple(
                StageSpec(st.channels, st.split, st.fta, s["project"]) for st, s in zip(spec.stages, shape["stages"], strict=True)
            ),
        )
    if not _matches(spec, shape) or spec.num_classes != shape["num_classes"] or spec.parts != shape["parts"]:
        fix = "; choose another --tree" if model_cfg is None and splits is None else ""
        raise SpecError(f"{where}: {given} describes a different network than the checkpoint's shapes: "
                        f"{_differences(spec, shape)}{fix}")
    return spec


def unpickling_refusal(path: str | Path, exc: BaseException) -> str | None:
    """The one-line error for a weights-only load of ``path`` that ``exc`` (or its cause) refused, else None.

    torch's own message advises loading the file with ``weights_only=False`` or allowlisting what it
    holds; the workbench does neither, so its message says what the file holds and what to pass instead.
    """
    refusal: BaseException | None = exc
    while refusal is not None and not isinstance(refusal, pickle.UnpicklingError):
        refusal = refusal.__cause__ or refusal.__context__
    if refusal is None:
        return None
    names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(refusal))))
    if not names:
        return (f"{path}: not a PyTorch checkpoint (damaged, or another kind of file); pass a .pt file written by "
                "`workbench train` or torch.save")
    return (f"{path}: refused: it holds pickled Python code or objects ({', '.join(names)}) that the workbench "
            "will not unpickle (loading them could run code); pass a checkpoint written by `workbench train`, or, "
            "in a Python session you trust, re-save only its tensors (torch.save(model.state_dict(), "
            "'weights.pt')) and pass that file")


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The dict in a checkpoint file, loaded with ``weights_only=True`` so that no code in it can run.

    OpenGait's scheduler state holds a ``collections.Counter``, the one class allowed beyond tensors and
    plain containers. Raises ``FileNotFoundError`` or ``SpecError`` naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals([collections.Counter]):
            loaded = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        refused = unpickling_refusal(path, exc)
        if refused is not None:
            raise SpecError(refused) from exc
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0] if lines else ''}"
        raise SpecError(f"{path}: not a PyTorch checkpoint (torch.load failed: {reason}); pass a .pt file "
                        "written by torch.save") from exc
    if not isinstance(loaded, dict):
        raise SpecError(f"{path}: holds a {type(loaded).__name__}, not a checkpoint dict")
    return loaded


def hstl_weights(loaded: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    """The public-named HSTL state dict in a loaded checkpoint (its ``model`` entry or itself), else None."""
    inner = loaded.get("model")
    state = _strip_prefix(inner if isinstance(inner, Mapping) else loaded)
    stem = re.compile(r"arme1\.\d+\.conv3d\.weight")
    if "Head0.fc_bin" in state and any(isinstance(k, str) and stem.fullmatch(k) for k in state):
        return state
    return None


def load_opengait_checkpoint(
    source: str | Path | StateDict, *, map_location: str | torch.device = "cpu", **hints: Any
) -> HSTL:
    """Build an ``HSTL`` from a public HSTL/OpenGait checkpoint (``torch.load(path)['model']``), loaded strictly.

    ``source`` is a checkpoint path, a checkpoint dict with a ``model`` key, or a bare state dict;
    ``hints`` go to :func:`spec_from_state_dict` (``splits``, ``tree``, ``model_cfg``, ``input_height``).
    """
    where = str(source) if isinstance(source, (str, Path)) else "checkpoint"
    loaded = read_checkpoint_file(source, map_location) if isinstance(source, (str, Path)) else source
    if not isinstance(loaded, Mapping):
        raise SpecError(f"{where}: expected a dict, got {type(loaded).__name__}")
    state = loaded["model"] if "model" in loaded and isinstance(loaded["model"], Mapping) else loaded
    state = _strip_prefix(state)
    spec = spec_from_state_dict(state, where=where, **hints)
    model = HSTL(spec)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise SpecError(
            f"{where}: keys do not match the rebuilt HSTL: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return model


def spec_from_model_cfg(model_cfg: Mapping[str, Any] | str | Path) -> HSTLSpec:
    """Read a ``model_cfg`` written by :func:`opengait_model_cfg` (a dict or a YAML file)."""
    where = "model_cfg"
    if isinstance(model_cfg, (str, Path)):
        import yaml

        where = str(model_cfg)
        data = yaml.safe_load(Path(model_cfg).read_text())
        model_cfg = data.get("model_cfg", data) if isinstance(data, dict) else data
    if not isinstance(model_cfg, Mapping) or model_cfg.get("model") != "HSTL":
        raise SpecError(f"{where}: expected a model_cfg mapping with 'model: HSTL'")
    try:
        stages = tuple(
            StageSpec(tuple(s["channels"]), tuple(s["split_param"]), bool(s["fta"]), bool(s["project"]))
            for s in model_cfg["stages"]
        )
        names = [f"arme{i + 2}" for i in range(len(stages))]
        spec = HSTLSpec(
            stages=stages,
            in_channels=int(model_cfg["in_channels"]),
            stem_channels=tuple(model_cfg["stem_channels"]),
            first_split=tuple(model_cfg["astp1"]["split_param"]),
            first_project=bool(model_cfg["astp1"]["project"]),
            downsample_before=tuple(names.index(n) for n in model_cfg["downsample_before"]),
            astp_channels=int(model_cfg["astp_channels"]),
            hpp_rows=int(model_cfg["bin_num"][0]),
            num_classes=int(model_cfg["class_num"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SpecError):
            raise SpecError(f"{where}: {exc}") from exc
        raise SpecError(f"{where}: missing or malformed field ({exc!r}); export it with `workbench export`") from exc
    return spec
