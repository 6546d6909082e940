"""``workbench train CONFIG``: train one model from a TOML/YAML config, with evaluation and resume."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser(
        "train",
        help="train a model from a config (TOML or YAML); resumable, torchrun-aware",
        description="Train one model. The built-in synthetic set is rendered into the output directory "
        "when data.path is 'synthetic' or absent. Under torchrun every process trains its share (DDP); "
        "without it, nproc_per_node = K in the config starts K processes here (one GPU each on CUDA).",
    )
    parser.add_argument("config", type=Path, help="training config (.toml, .yaml); see docs/examples/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optimizer.lr=0.001 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in output_dir (starts fresh if there is none)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override the config's device")
    parser.add_argument("--protocol", help="evaluation protocol at eval_every (default: 'synthetic' for the "
                        "built-in data, none otherwise)")
    parser.add_argument("--no-eval", action="store_true", help="do not evaluate during training")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run_train)


class _LazyEvaluator:
    """Opens the evaluation data on first use: the built-in set exists only once training rendered it."""

    def __init__(self, data: Path, protocol: str, partition: str | None, amp: str) -> None:
        self.data, self.protocol, self.partition, self.amp = data, protocol, partition, amp
        self._inner: Callable[[Any, int], Mapping[str, float]] | None = None

    def __call__(self, model: Any, step: int) -> Mapping[str, float]:
        if self._inner is None:
            from workbench.evaluation import make_evaluator

            self._inner = make_evaluator(self.data, self.protocol, partition=self.partition, progress=False,
                                         amp=self.amp)
        return self._inner(model, step)


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``workbench train``."""
    from workbench.cli import EXIT_FAILED, CLIError
    from workbench.config import ConfigError
    from workbench.training import (
        CheckpointError,
        NonFiniteLossError,
        RankFailedError,
        RankTask,
        Trainer,
        builtin_data_dir,
        launch_ranks,
        load_train_config,
    )

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f'device="{args.device}"')
    try:
        config = load_train_config(args.config, overrides)
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc
    protocol = args.protocol or ("synthetic" if config.data.is_builtin else None)
    evaluator = None
    if protocol and not args.no_eval:
        data = builtin_data_dir(config.output_dir) if config.data.is_builtin else Path(config.data.path)
        # Evaluations run in the precision training runs in (config.amp).
        evaluator = _LazyEvaluator(data, protocol, config.data.partition, config.amp)
    if config.nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:  # torchrun, when it runs, chose the ranks
        try:
            result = launch_ranks(config, config.nproc_per_node, task=RankTask(evaluator), resume=args.resume,
                                  progress=not args.no_progress).result
        except RankFailedError as exc:
            raise CLIError(str(exc), exit_code=EXIT_FAILED) from exc
    else:
        trainer = Trainer(config, evaluator=evaluator, progress=not args.no_progress)
        try:
            result = trainer.fit(resume=args.resume)
        except CheckpointError as exc:
            raise CLIError(str(exc)) from exc
        except NonFiniteLossError as exc:
            raise CLIError(str(exc), exit_code=EXIT_FAILED) from exc
        if trainer.context is None or not trainer.context.is_main:
            return 0
    if result.status != "completed":
        return 0
    if result.checkpoint is not None:
        print(f"trained {result.step} iterations in {result.seconds:.1f} s; checkpoint: {result.checkpoint}")
    if result.evaluations:
        step, scores = result.evaluations[-1]
        shown = ", ".join(f"{k}={v:.2f}" for k, v in scores.items())
        print(f"evaluation at step {step}: {shown}")
    return 0
