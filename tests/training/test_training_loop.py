"""The training loop: outputs on disk, hooks, evaluation, exact resume, NaN policy, AMP choices."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from training_toys import toy_config, toy_data, toy_model, weights

from workbench.config import load_config
from workbench.training import (
    CheckpointError,
    DistributedContext,
    NonFiniteLossError,
    OptimizerConfig,
    ProgressBar,
    TrainBatch,
    TrainConfig,
    Trainer,
    TrainInfo,
    TrainingCallback,
    TrainResult,
    list_checkpoints,
    load_checkpoint,
    logged_evaluations,
    training_seconds,
)


class Recorder(TrainingCallback):
    """Records every hook call in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_train_start(self, info: TrainInfo) -> None:
        self.events.append(("start", info.start_step))

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("step", step))
        assert {"loss", "lr", "sequences_per_second"} <= set(metrics)

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("eval", step))

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.events.append(("ckpt", step))
        assert path.is_file()

    def on_train_end(self, result: TrainResult) -> None:
        self.events.append(("end", result.step))


def _fit(config: TrainConfig, resume: bool = False, **kwargs: object) -> tuple[Trainer, TrainResult]:
    kwargs.setdefault("model", toy_model())
    trainer = Trainer(config, data=toy_data(config), progress=False, **kwargs)  # type: ignore[arg-type]
    return trainer, trainer.fit(resume=resume)


def test_run_writes_config_checkpoints_log_and_calls_hooks(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run", iterations=4, save_every=2, eval_every=3, log_every=2)
    seen_steps: list[int] = []

    def evaluator(model: torch.nn.Module, step: int) -> dict[str, float]:
        assert not model.training and not torch.is_grad_enabled()
        seen_steps.append(step)
        return {"rank1": step / 10}

    recorder = Recorder()
    trainer, result = _fit(config, evaluator=evaluator, callbacks=[recorder])
    assert result.status == "completed" and result.step == 4
    assert seen_steps == [3, 4]
    assert result.evaluations == [(3, {"rank1": 0.3}), (4, {"rank1": 0.4})]
    assert recorder.events == [
        ("start", 0), ("step", 1), ("step", 2), ("ckpt", 2), ("step", 3), ("eval", 3),
        ("step", 4), ("ckpt", 4), ("eval", 4), ("end", 4),
    ]
    assert load_config(TrainConfig, tmp_path / "run" / "config.toml") == config
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["checkpoint-00000002.pt", "checkpoint-00000004.pt"]
    state = load_checkpoint(result.checkpoint)  # type: ignore[arg-type]
    assert state["iteration"] == 4 and state["num_classes"] == 4
    assert state["config"]["data"]["p"] == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [2, 4]
    assert [r["rank1"] for r in records if r["event"] == "evaluation"] == [0.3, 0.4]
    assert [(r["event"], r["step"]) for r in records if r["event"] in ("start", "end")] == [("start", 0), ("end", 4)]
    assert training_seconds(tmp_path / "run" / "metrics.jsonl") == pytest.approx(result.seconds)
    assert trainer.model is not None and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_training_lowers_the_loss(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run", iterations=30, save_every=0, log_every=1,
                        optimizer=OptimizerConfig(lr=0.05, weight_decay=0.0))
    _fit(config)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "step"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5


def test_keep_last_rotates_checkpoints(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run", iterations=5, save_every=1, keep_last=2)
    _fit(config)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["checkpoint-00000004.pt", "checkpoint-00000005.pt"]


def test_resumed_run_matches_uninterrupted_run(tmp_path: Path) -> None:
    straight_cfg = toy_config(tmp_path / "straight", iterations=6, save_every=3)
    straight, _ = _fit(straight_cfg)

    first_cfg = toy_config(tmp_path / "split", iterations=3, save_every=3)
    _fit(first_cfg)
    # A fresh process would rebuild everything: new data object, a differently initialised model.
    resumed, result = _fit(replace(first_cfg, iterations=6), resume=True, model=toy_model(seed=123))
    assert result.step == 6
    assert straight.model is not None and resumed.model is not None
    a, b = weights(straight.model), weights(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_existing_checkpoints_need_resume(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run", iterations=2, save_every=1)
    _fit(config)
    with pytest.raises(CheckpointError, match="--resume"):
        _fit(config)
    _, result = _fit(config, resume=True)  # already complete: nothing more to do
    assert result.step == 2


def test_resume_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    _, result = _fit(toy_config(tmp_path / "run", iterations=2), resume=True)
    assert result.step == 2 and result.status == "completed"


class Pruned(Exception):
    pass


class PruneAt(TrainingCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        if step >= self.step:
            raise Pruned(f"pruned at {step}")


def test_callback_exception_propagates_with_checkpoint_safe(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run", iterations=8, save_every=2, eval_every=2)
    with pytest.raises(Pruned):
        _fit(config, evaluator=lambda m, s: {"rank1": 0.0}, callbacks=[PruneAt(4)])
    latest = list_checkpoints(tmp_path / "run")[-1]
    assert latest.name == "checkpoint-00000004.pt"
    assert load_checkpoint(latest)["iteration"] == 4
    _, result = _fit(config, resume=True, evaluator=lambda m, s: {"rank1": 0.0})
    assert result.step == 8


class NaNAt:
    """Wraps a TrainData; the batch of one step carries NaN frames."""

    def __init__(self, inner: object, bad_step: int) -> None:
        self.inner, self.bad_step = inner, bad_step

    @property
    def num_classes(self) -> int:
        return self.inner.num_classes  # type: ignore[attr-defined,no-any-return]

    def batches(self, start_step: int, context: DistributedContext) -> Iterator[TrainBatch]:
        for step, batch in enumerate(self.inner.batches(start_step, context), start=start_step + 1):  # type: ignore[attr-defined]
            if step == self.bad_step:
                batch = TrainBatch(torch.full_like(batch.seqs, float("nan")), batch.labels, batch.seqL)
            yield batch


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run", iterations=5, save_every=1)
    trainer = Trainer(config, data=NaNAt(toy_data(config), 3), model=toy_model(), progress=False)
    with pytest.raises(NonFiniteLossError, match="step 3"):
        trainer.fit()
    paths = list_checkpoints(tmp_path / "run")
    assert paths[-1].name == "checkpoint-00000002.pt"
    state = load_checkpoint(paths[-1])
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_nan_policy_skip_drops_the_batch(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run", iterations=4, nan_policy="skip")
    trainer = Trainer(config, data=NaNAt(toy_data(config), 2), model=toy_model(), progress=False)
    result = trainer.fit()
    assert result.status == "completed" and result.skipped_steps == 1
    assert trainer.model is not None and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_amp_choices_on_cpu(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fp16"):
        _fit(toy_config(tmp_path / "fp16", iterations=1, amp="fp16"))
    _, result = _fit(toy_config(tmp_path / "bf16", iterations=2, amp="bf16"))
    assert result.status == "completed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_device_without_cuda_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        _fit(toy_config(tmp_path / "run", device="cuda"))


def test_progress_bar_shows_loss_and_evaluation(tmp_path: Path) -> None:
    stream = io.StringIO()
    config = toy_config(tmp_path / "run", iterations=3, eval_every=3)
    _fit(config, evaluator=lambda m, s: {"rank1": 0.75}, callbacks=[ProgressBar(file=stream, disable=False)])
    text = stream.getvalue()
    assert "3/3" in text and "loss=" in text and "seq/s" in text and "rank1=0.75" in text


def test_auto_precision_is_bf16_only_where_the_hardware_has_bf16_units(tmp_path: Path, monkeypatch) -> None:
    from workbench.models import _precision, resolve_amp

    for native, expected in ((True, "bf16"), (False, "off")):
        monkeypatch.setattr(_precision, "native_bf16", lambda device, native=native: native)
        assert resolve_amp("auto", "cpu") == expected
        assert resolve_amp("bf16", "cpu") == "bf16" and resolve_amp("off", "cpu") == "off"
        seen: list[torch.dtype] = []
        model = toy_model()
        model.conv.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.dtype))
        _, result = _fit(toy_config(tmp_path / f"auto-{native}", iterations=1, amp="auto"), model=model)
        assert result.status == "completed" and seen
        assert set(seen) == {torch.bfloat16 if native else torch.float32}


def test_resuming_from_a_weights_only_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    # What `workbench import` and `export` write holds weights, not an optimizer to resume.
    config = toy_config(tmp_path / "run", iterations=2)
    _, result = _fit(config)
    assert result.checkpoint is not None
    state = load_checkpoint(result.checkpoint)
    weights_only = {k: v for k, v in state.items() if k not in ("optimizer", "scheduler", "scaler", "rng")}
    path = tmp_path / "imported.pt"
    torch.save(weights_only, path)
    with pytest.raises(CheckpointError, match="weights only"):
        _fit(replace(config, output_dir=str(tmp_path / "again"), iterations=4), resume=path)  # type: ignore[arg-type]


class _Payload:
    def __reduce__(self):
        return (print, ("this code must not run",))


def test_a_checkpoint_with_pickled_code_is_refused_without_torchs_advice(tmp_path: Path, capsys) -> None:
    (tmp_path / "run").mkdir()
    hostile = tmp_path / "run" / "checkpoint-00000001.pt"
    torch.save({"model": {}, "payload": _Payload()}, hostile)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(hostile)
    message = str(caught.value)
    assert str(hostile) in message and "refused" in message
    assert "weights_only" not in message and "safe_globals" not in message
    assert "this code must not run" not in capsys.readouterr().out


def test_training_seconds_count_every_run_of_a_resumed_log(tmp_path: Path) -> None:
    """Each run from its start to its end; a killed run to its last record; old logs first to last."""
    log = tmp_path / "metrics.jsonl"
    assert training_seconds(log) is None  # no log yet
    lines = [
        {"event": "start", "step": 0, "time": 100.0},
        {"event": "step", "step": 10, "time": 130.0},
        {"event": "checkpoint", "step": 10, "path": "c", "time": 131.0},  # killed here: 31 s
        {"event": "start", "step": 10, "time": 500.0},
        {"event": "step", "step": 20, "time": 540.0},
        {"event": "end", "step": 20, "status": "completed", "seconds": 42.5, "time": 542.5},
    ]
    log.write_text("\n".join(json.dumps(r) for r in lines) + '\n{"event": "st')  # a line cut short
    assert training_seconds(log) == pytest.approx(31.0 + 42.5)
    old = tmp_path / "old.jsonl"
    old.write_text("\n".join(json.dumps({"event": "step", "step": s, "time": 10.0 * s}) for s in (1, 2, 5)))
    assert training_seconds(old) == pytest.approx(40.0)


def test_logged_evaluations_keep_the_last_figures_of_a_step_a_resumed_run_evaluated_again(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    assert logged_evaluations(log) == {}
    lines = [
        {"event": "start", "step": 0, "time": 1.0},
        {"event": "evaluation", "step": 20, "rank1": 60.0, "rank1_ci_low": 55.0, "time": 2.0},
        {"event": "evaluation", "step": 40, "rank1": 70.0, "time": 3.0},  # killed before the checkpoint at 40
        {"event": "start", "step": 20, "time": 4.0},
        {"event": "evaluation", "step": 40, "rank1": 71.0, "time": 5.0},
    ]
    log.write_text("\n".join(json.dumps(r) for r in lines) + '\n{"event": "evalu')  # a line cut short
    assert logged_evaluations(log) == {20: {"rank1": 60.0, "rank1_ci_low": 55.0}, 40: {"rank1": 71.0}}
