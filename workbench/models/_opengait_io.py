"""Move HSTL weights and configs to and from the public HSTL/OpenGait code.

The workbench's module names are the public ones (``arme1``, ``astp2_fta``, ``Head0`` ...), so a
state dict maps key for key; only a ``module.`` prefix left by DataParallel/DDP is stripped. FTA after
a stage other than the second is a workbench extension named ``fta<k>`` / ``astp<k>_fta``.

A checkpoint's shapes give channels, region counts per stage, classes and parts, but not the
region heights of the ARME splits. ``spec_from_state_dict`` takes them from, in order: explicit
``splits``, a partition ``tree`` cut at the checkpoint's region counts, an exported ``model_cfg``, or
the registered preset with the same structure (CASIA-B, OUMVLP, Gait3D); otherwise it asks for one.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from workbench.models._hstl import HSTL, fta_name
from workbench.models._presets import PRESET_SPECS
from workbench.models._spec import HSTLSpec, SpecError, StageSpec

StateDict = Mapping[str, torch.Tensor]


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


def spec_from_state_dict(
    state: StateDict,
    *,
    splits: Sequence[Sequence[int]] | None = None,
    tree: Any = None,
    model_cfg: Mapping[str, Any] | str | Path | None = None,
    input_height: int = 64,
    downsample_before: Sequence[int] | None = None,
    where: str = "checkpoint",
) -> HSTLSpec:
    """Rebuild the ``HSTLSpec`` of a public-named HSTL state dict (see the module notes for splits)."""
    state = _strip_prefix(state)
    shape = _structure(state, where)
    if model_cfg is not None:
        spec = spec_from_model_cfg(model_cfg)
    elif splits is not None or tree is not None:
        counts = [s["regions"] for s in shape["stages"]]
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
        else:
            spec = HSTLSpec.from_tree(tree, counts, **common)
        spec = spec.replace(
            stem_channels=shape["stem_channels"],
            in_channels=shape["in_channels"],
            first_project=shape["first_project"],
            stages=tuple(
                StageSpec(st.channels, st.split, st.fta, s["project"]) for st, s in zip(spec.stages, shape["stages"], strict=True)
            ),
        )
    else:
        candidates = [
            (name, preset.replace(num_classes=shape["num_classes"]))
            for name, preset in PRESET_SPECS.items()
            if _matches(preset, shape)
        ]
        if not candidates:
            raise SpecError(
                f"{where}: its structure (stem {list(shape['stem_channels'])}, regions per stage "
                f"{[s['regions'] for s in shape['stages']]}, channels {[list(s['channels']) for s in shape['stages']]}) "
                "matches no preset; pass splits=[[...], ...], tree=<PartitionTree> or the exported model_cfg YAML"
            )
        spec = candidates[0][1]
    if not _matches(spec, shape) or spec.num_classes != shape["num_classes"] or spec.parts != shape["parts"]:
        raise SpecError(f"{where}: the given splits/config describe a different network than the checkpoint's shapes")
    return spec


def load_opengait_checkpoint(
    source: str | Path | StateDict, *, map_location: str | torch.device = "cpu", **hints: Any
) -> HSTL:
    """Build an ``HSTL`` from a public HSTL/OpenGait checkpoint (``torch.load(path)['model']``), loaded strictly.

    ``source`` is a checkpoint path, a checkpoint dict with a ``model`` key, or a bare state dict;
    ``hints`` go to :func:`spec_from_state_dict` (``splits``, ``tree``, ``model_cfg``, ``input_height``).
    """
    where = str(source) if isinstance(source, (str, Path)) else "checkpoint"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        # OpenGait's scheduler state holds a Counter of milestones; everything else is tensors and dicts.
        with torch.serialization.safe_globals([collections.Counter]):
            loaded = torch.load(path, map_location=map_location, weights_only=True)
    else:
        loaded = source
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


def opengait_state_dict(model: HSTL) -> dict[str, torch.Tensor]:
    """The model's weights under the public key names (detached CPU tensors)."""
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}


def opengait_channels(spec: HSTLSpec) -> list[int]:
    """OpenGait-style ``channels``: the stem width, then each stage's output width."""
    return [spec.stem_channels[-1], *(stage.channels[1] for stage in spec.stages)]


def opengait_model_cfg(spec: HSTLSpec) -> dict[str, Any]:
    """An OpenGait-style ``model_cfg`` for ``spec`` (``model: HSTL``, channels, class_num, split lists)."""
    return {
        "model": "HSTL",
        "channels": opengait_channels(spec),
        "class_num": spec.num_classes,
        "parts_num": spec.parts,
        "in_channels": spec.in_channels,
        "stem_channels": list(spec.stem_channels),
        "astp_channels": spec.astp_channels,
        "astp1": {"split_param": list(spec.first_split), "project": spec.first_project},
        "downsample_before": [f"arme{i + 2}" for i in spec.downsample_before],
        "stages": [
            {
                "name": f"arme{i + 2}",
                "channels": list(stage.channels),
                "split_param": list(stage.split),
                "fta": stage.fta,
                "project": stage.project,
            }
            for i, stage in enumerate(spec.stages)
        ],
        "bin_num": [spec.strips],
    }


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


def export_opengait(
    model: HSTL,
    checkpoint_path: str | Path,
    config_path: str | Path | None = None,
    *,
    iteration: int = 0,
    optimizer_state: Mapping[str, Any] | None = None,
    scheduler_state: Mapping[str, Any] | None = None,
) -> tuple[Path, Path | None]:
    """Write ``{'model', 'optimizer', 'scheduler', 'iteration'}`` with public key names, and a YAML model_cfg.

    Without an optimizer state the checkpoint's optimizer/scheduler entries are empty, so restore it
    in OpenGait with ``optimizer_reset: true`` and ``scheduler_reset: true``.
    """
    checkpoint_path = Path(checkpoint_path)
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": opengait_state_dict(model),
        "optimizer": dict(optimizer_state or {}),
        "scheduler": dict(scheduler_state or {}),
        "iteration": int(iteration),
    }
    torch.save(payload, checkpoint_path)
    if config_path is None:
        return checkpoint_path, None
    import yaml

    config_path = Path(config_path)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"model_cfg": opengait_model_cfg(model.spec)}, sort_keys=False, default_flow_style=None)
    config_path.write_text(text)
    return checkpoint_path, config_path
