"""``workbench cost``: parameters, FLOPs, latency and peak memory of a model, a spec or a tree."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from workbench.cli._choices import AMP

_SPEC_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cost`` command."""
    p = subparsers.add_parser(
        "cost",
        help="parameters, forward FLOPs, latency and peak memory of a model, spec or partition tree",
        description="Count parameters and forward FLOPs (on the meta device: no data runs) and optionally "
        "time a step and measure its peak memory. SPEC_OR_TREE is a registered model name (see "
        "`workbench models list`), a spec file (.toml/.yaml/.json with a family's spec fields, at the top "
        "level or under [spec]; `family = NAME` picks the family, HSTL when absent), or a partition tree "
        "(preset name, name in ./hierarchies, or hierarchy "
        "JSON) from which an HSTL spec is built with --cuts and --channels. FLOPs count 2 per "
        "multiply-add and cover convolutions and matrix products only (pooling is not counted).",
    )
    p.add_argument("target", metavar="SPEC_OR_TREE", help="model name, spec file, or tree name/file")
    p.add_argument("--frames", type=int, default=30, help="frames per sequence (default 30)")
    p.add_argument("--height", type=int, default=64, help="silhouette height (default 64)")
    p.add_argument("--width", type=int, default=44, help="silhouette width (default 44)")
    p.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto: CUDA if available)")
    p.add_argument("--latency", action="store_true", help="also time the step (median, p10, p90)")
    p.add_argument("--memory", action="store_true",
                   help="also measure the step's peak memory (CPU: in a fresh process; CUDA: allocator peak)")
    p.add_argument("--mode", choices=["inference", "train"], default="inference",
                   help="step to time and measure: inference forward, or train forward+backward (default inference)")
    p.add_argument("--warmup", type=int,
                   help="untimed steps before timing (default 3: the CPU kernels and allocator settle first)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps (default 5)")
    p.add_argument("--amp", choices=AMP, default="off", metavar="AMP",
                   help="%(choices)s: time latency and memory under autocast: bf16 (CUDA, or a CPU with bf16 units) or fp16 "
                   "(CUDA) (default off)")
    p.add_argument("--threads", type=int, help="torch CPU threads for the measurements (default: torch's)")
    p.add_argument("--cuts", type=int, nargs="+", metavar="K",
                   help="trees only: region count per stage, coarse to fine (default 2 4)")
    p.add_argument("--channels", type=int, nargs="+", metavar="C",
                   help="trees only: widths [stem, stage1, stage2, ...], one more than --cuts (default 32 64 128)")
    p.add_argument("--stage-channels", nargs="+", metavar="A,B",
                   help="trees only: (conv1, conv2) widths per stage instead of --channels' stage widths; "
                        "the public CASIA-B model is --cuts 2 4 --stage-channels 32,64 128,128")
    p.add_argument("--num-classes", type=int, help="classes of the logits head (default: the model's or spec's)")
    p.add_argument("--json", action="store_true", help="print the flat report as JSON instead of a table")
    p.set_defaults(func=cost)


def cost(args: argparse.Namespace) -> int:
    """Handler of ``workbench cost``."""
    from tqdm import tqdm

    from workbench.cli import CLIError
    from workbench.cost import estimate_cost

    for name in ("frames", "height", "width", "batch", "repeats"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup is not None and args.warmup < 0:
        raise CLIError(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    source = resolve_target(args)
    measure = ["params", "flops"] + (["latency"] if args.latency else []) + (["memory"] if args.memory else [])
    bar = tqdm(total=len(measure), desc="cost", unit="figure", leave=False, disable=None)

    started: list[str] = []

    def advance(name: str) -> None:
        if started:
            bar.update(1)
        started.append(name)
        bar.set_postfix_str(name)

    try:
        report = estimate_cost(
            source,
            frames=args.frames,
            height=args.height,
            width=args.width,
            batch=args.batch,
            device=args.device,
            measure=measure,
            mode=args.mode,
            **({} if args.warmup is None else {"warmup": args.warmup}),
            repeats=args.repeats,
            threads=args.threads,
            progress=advance,
            amp=args.amp,
        )
        bar.update(1)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CLIError(f"{args.target}: {exc}") from exc
    finally:
        bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())
    return 0


def resolve_target(args: argparse.Namespace) -> Any:
    """A ``ModelRecipe`` for SPEC_OR_TREE: registry name, spec file, or tree built into a spec."""
    from workbench.cli import CLIError
    from workbench.cost import ModelRecipe
    from workbench.models import list_models

    target = str(args.target)
    tree_options = args.cuts is not None or args.channels is not None or args.stage_channels is not None
    if target in list_models():
        if tree_options:
            raise CLIError(f"--cuts/--channels/--stage-channels build a spec from a tree; {target!r} is a registered model")
        overrides = {} if args.num_classes is None else {"num_classes": args.num_classes}
        return ModelRecipe.from_name(target, **overrides)
    path = Path(target)
    if path.is_file() and path.suffix.lower() in _SPEC_SUFFIXES:
        spec_fields = _read_spec_fields(path)
        if spec_fields is not None:
            if tree_options:
                raise CLIError(f"--cuts/--channels/--stage-channels build a spec from a tree; {path} is a spec file")
            return ModelRecipe.from_spec(_spec_from_fields(*spec_fields, path, args.num_classes), label=path.stem)
    return _spec_from_tree(target, args)


def _read_spec_fields(path: Path) -> tuple[Any, dict[str, Any]] | None:
    """The family and spec fields of a spec file, or ``None`` when the file is not a spec (e.g. a hierarchy JSON).

    ``family = NAME`` (top level) names the model family; without it the file is read as a spec of the
    default model's family (HSTL), recognised by its ``stages``.
    """
    from workbench.cli import CLIError
    from workbench.config import ConfigError, read_mapping
    from workbench.models import get_family, model_family
    from workbench.training import ModelConfig

    try:
        data = dict(read_mapping(path))
        family = get_family(str(data.pop("family"))) if "family" in data else None
    except (ConfigError, ValueError) as exc:
        raise CLIError(f"{path}: {exc}") from exc
    default = model_family(ModelConfig().name)
    if isinstance(data.get("spec"), dict):
        return family or default, dict(data["spec"])
    if family is not None:
        return family, data
    if "stages" in data:
        return default, data
    if path.suffix.lower() == ".json":
        return None  # a hierarchy file; the tree branch reads it
    raise CLIError(
        f"{path}: not a model spec: expected {default.spec_type.__name__} fields (stages, stem_channels, first_split "
        "...) at the top level or under [spec], or `family = NAME` with that family's spec fields"
    )


def _spec_from_fields(family: Any, fields: dict[str, Any], path: Path, num_classes: int | None) -> Any:
    from workbench.cli import CLIError
    from workbench.config import ConfigError

    if num_classes is not None:
        fields = {**fields, "num_classes": num_classes}
    try:
        return family.spec_type.from_dict(fields)
    except (ConfigError, ValueError, TypeError) as exc:
        raise CLIError(f"{path}: {exc}") from exc


def _spec_from_tree(target: str, args: argparse.Namespace) -> Any:
    from workbench.cli import CLIError
    from workbench.cost import ModelRecipe
    from workbench.hierarchy import list_presets, load_tree
    from workbench.models import TreeCut, list_models, model_family
    from workbench.training import ModelConfig

    try:
        tree = load_tree(target)
    except FileNotFoundError as exc:
        raise CLIError(
            f"{target!r} is not a registered model ({', '.join(list_models())}), a spec file, or a tree "
            f"(presets: {', '.join(list_presets())}; or a hierarchy JSON path)"
        ) from exc
    except ValueError as exc:
        message = str(exc)
        raise CLIError(message if message.startswith(str(target)) else f"{target}: {message}") from exc
    name = ModelConfig().name
    family = model_family(name)
    cuts = tuple(args.cuts) if args.cuts is not None else family.default_cuts
    options: dict[str, Any] = {}
    if args.stage_channels is not None:
        options["stage_channels"] = _stage_pairs(args.stage_channels, len(cuts))
    channels = tuple(args.channels) if args.channels is not None else family.paper_channels
    try:
        spec = family.cut(name, TreeCut(tree=tree, cuts=cuts or None, channels=channels), args.num_classes, options)
    except ValueError as exc:
        raise CLIError(f"{target} cut at {list(cuts)}: {exc} (set --cuts and --channels)") from exc
    name = Path(target).stem if target.endswith(".json") else target
    return ModelRecipe.from_spec(spec, label=f"{name} cuts {'-'.join(str(k) for k in cuts)}")


def _stage_pairs(values: list[str], stages: int) -> tuple[tuple[int, int], ...]:
    """``["32,64", "128,128"]`` -> ``((32, 64), (128, 128))``, one pair per stage."""
    from workbench.cli import CLIError

    pairs = []
    for value in values:
        parts = value.split(",")
        if len(parts) != 2 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
            raise CLIError(f"--stage-channels {value!r}: give each stage as CONV1,CONV2 positive widths, e.g. 32,64")
        pairs.append((int(parts[0]), int(parts[1])))
    if len(pairs) != stages:
        raise CLIError(f"--stage-channels has {len(pairs)} pairs for {stages} stages (--cuts); give one per stage")
    return tuple(pairs)
