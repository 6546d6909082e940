"""``workbench models ...`` (list and show registered models) and ``workbench export`` (to OpenGait)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` and ``export`` commands."""
    models = subparsers.add_parser("models", help="list registered models with their parts and parameters")
    models_sub = models.add_subparsers(title="models commands", metavar="MODELS_COMMAND")
    listing = models_sub.add_parser("list", help="registered models: parts, parameters, description")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=list_command)
    show = models_sub.add_parser("show", help="the full spec of a registered model")
    show.add_argument("name", help="registered model name (see `workbench models list`)")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="spec override, e.g. --set num_classes=10 (repeatable)")
    show.set_defaults(func=show_command)
    models.set_defaults(func=list_command, json=False)

    export = subparsers.add_parser(
        "export",
        help="write an HSTL model as an OpenGait checkpoint plus a YAML model_cfg",
        description="Write {'model', 'optimizer', 'scheduler', 'iteration'} with the public HSTL key names "
        "(OUT/NAME-ITER.pt) and an OpenGait-style model_cfg with the split list of every stage (OUT/NAME.yaml), "
        "so a discovered hierarchy can be trained or evaluated in an OpenGait fork. The model comes from a "
        "workbench training checkpoint (weights included), a registered model name, an HSTL spec file, or a "
        "partition tree with --cuts (freshly initialised weights).",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a checkpoint written by `workbench train`")
    source.add_argument("--model", help="a registered model name (see `workbench models list`)")
    source.add_argument("--spec", type=Path, help="an HSTL spec file (.toml/.yaml/.json, fields at the top or under [spec])")
    source.add_argument("--tree", help="a partition tree: preset name, name in ./hierarchies, or JSON file")
    export.add_argument("--cuts", type=int, nargs="+", metavar="K", help="with --tree: regions per stage (default 2 4)")
    export.add_argument("--channels", type=int, nargs="+", metavar="C",
                        help="with --tree: widths [stem, stage1, ...] (default 32 64 128)")
    export.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override for --model/--spec/--tree, e.g. --set num_classes=10 (repeatable)")
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument("--overwrite", action="store_true", help="replace a checkpoint or model_cfg already in --out")
    export.add_argument("--name", default="HSTL", help="file name stem, OpenGait's save_name (default HSTL)")
    export.add_argument("--iteration", type=int, help="iteration recorded in the checkpoint (default: the checkpoint's, else 0)")
    export.set_defaults(func=export_command)


def _parse_overrides(texts: list[str]) -> dict[str, Any]:
    from workbench.cli import CLIError
    from workbench.config import ConfigError, parse_override

    overrides: dict[str, Any] = {}
    for text in texts:
        try:
            keys, value = parse_override(text)
        except ConfigError as exc:
            raise CLIError(str(exc)) from exc
        if len(keys) != 1:
            raise CLIError(f"--set {text!r}: give a top-level spec field, e.g. num_classes=10")
        overrides[keys[0]] = value
    return overrides


def _build(name: str, overrides: dict[str, Any]) -> Any:
    from workbench.cli import CLIError
    from workbench.models import create_model

    try:
        return create_model(name, **overrides)
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc)) from exc


def list_command(args: argparse.Namespace) -> int:
    """Handler of ``workbench models list``."""
    import torch
    from tqdm import tqdm

    from workbench.models import get_model_factory, list_models

    rows = []
    for name in tqdm(list_models(), desc="models", unit="model", leave=False, disable=None):
        # Meta tensors have shapes but no storage: counting 89M parameters costs nothing.
        with torch.device("meta"):
            model = get_model_factory(name)()
        spec = getattr(model, "spec", None)
        doc = (get_model_factory(name).__doc__ or "").strip().splitlines()
        rows.append(
            {
                "name": name,
                "parts": getattr(spec, "parts", None),
                "parameters": sum(p.numel() for p in model.parameters()),
                "classes": getattr(spec, "num_classes", None),
                "description": doc[0] if doc else "",
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<14} {'parts':>5} {'parameters':>12} {'classes':>7}  description")
    for row in rows:
        print(f"{row['name']:<14} {row['parts'] or '-':>5} {row['parameters']:>12,} {row['classes'] or '-':>7}  "
              f"{row['description']}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    """Handler of ``workbench models show``."""
    import torch

    from workbench.cli import CLIError

    with torch.device("meta"):
        model = _build(args.name, _parse_overrides(args.overrides))
    spec = getattr(model, "spec", None)
    if spec is None:
        raise CLIError(f"model {args.name!r} has no spec to show")
    print(json.dumps({"name": args.name, "parts": spec.parts, "split_lists": spec.split_lists(),
                      "spec": spec.to_dict()}, indent=2))
    return 0


def _spec_file(path: Path) -> Any:
    from workbench.cli import CLIError
    from workbench.config import ConfigError, read_mapping
    from workbench.models import get_family, model_family
    from workbench.training import ModelConfig

    try:
        data = dict(read_mapping(path))
        family = get_family(str(data.pop("family"))) if "family" in data else model_family(ModelConfig().name)
        return family.spec_type.from_dict(data.get("spec", data))  # type: ignore[attr-defined]
    except (ConfigError, ValueError) as exc:
        raise CLIError(f"{path}: {exc}") from exc


def export_command(args: argparse.Namespace) -> int:
    """Handler of ``workbench export``."""
    from tqdm import tqdm

    from workbench.cli import CLIError, checkpoint_error
    from workbench.models import TreeCut, build_model, family_of, get_family, list_families, model_family
    from workbench.training import ModelConfig

    if (args.cuts or args.channels) and not args.tree:
        raise CLIError("--cuts and --channels go with --tree")
    overrides = _parse_overrides(args.overrides)
    if args.checkpoint and overrides:
        raise CLIError("--set cannot change a trained checkpoint's network; drop --set")
    optimizer_state = scheduler_state = None
    iteration = 0
    with tqdm(total=2, desc="export", unit="step", disable=None) as progress:
        if args.checkpoint:
            from workbench.training import CheckpointError, load_checkpoint, load_for_inference

            try:
                model, _ = load_for_inference(args.checkpoint, "cpu")  # exported from the CPU, as traced
                state = load_checkpoint(args.checkpoint)
            except CheckpointError as exc:
                raise checkpoint_error(args.checkpoint, exc) from exc
            optimizer_state, scheduler_state = state.get("optimizer"), state.get("scheduler")
            iteration = int(state.get("iteration", 0))
        elif args.model:
            model = _build(args.model, overrides)
        else:
            try:
                if args.spec:
                    spec = _spec_file(args.spec)
                else:
                    name = ModelConfig().name
                    tree_family = model_family(name)
                    channels = args.channels or tree_family.paper_channels
                    cut = TreeCut(tree=args.tree, cuts=tuple(args.cuts) if args.cuts else None,
                                  channels=tuple(channels) if channels else None)
                    spec = tree_family.cut(name, cut, None, {})
                model = build_model(spec.merge(overrides))
            except ValueError as exc:
                raise CLIError(str(exc)) from exc
        try:
            family = family_of(getattr(model, "spec", None))
        except TypeError:
            family = None
        if family is None or family.export is None:
            exporting = [name for name in list_families() if get_family(name).export is not None]
            raise CLIError(f"export writes models of the {' and '.join(exporting)} family only (those with an OpenGait "
                           f"exporter), got {type(model).__name__}")
        progress.update()
        if args.iteration is not None:
            iteration = args.iteration
        ckpt = args.out / f"{args.name}-{iteration:0>5}.pt"
        cfg = args.out / f"{args.name}.yaml"
        existing = [str(p) for p in (ckpt, cfg) if p.exists()]
        if existing and not args.overwrite:
            raise CLIError(f"{', '.join(existing)}: already exist(s); pass --overwrite to replace them with these "
                           "weights, or choose another --out or --name")
        family.export(model, ckpt, cfg, iteration=iteration, optimizer_state=optimizer_state,
                      scheduler_state=scheduler_state)
        progress.update()
    written: Any = model.spec
    print(f"checkpoint: {ckpt}\nmodel_cfg:  {cfg}\nparts: {written.parts}, splits: {written.split_lists()}")
    return 0
