"""The MLflow callback inside the real training loop: a tiny model, a pruner, a trial run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import torch
from torch import nn

from workbench.models import ModelOutput
from workbench.tracking import TAG_CHECKPOINT, MLflowTrainingCallback, StudyTracker, load_trials
from workbench.training import (
    DataConfig,
    DistributedContext,
    OptimizerConfig,
    TrainBatch,
    TrainConfig,
    Trainer,
    TrainingCallback,
)

IDS, PER_ID, FRAMES, SIZE = 2, 2, 4, 8


class BandData:
    """Endless batches of noise with one bright band per identity (depends only on seed and step)."""

    num_classes = IDS

    def batches(self, start_step: int, context: DistributedContext) -> Iterator[TrainBatch]:
        step = start_step
        while True:
            step += 1
            gen = torch.Generator().manual_seed(step)
            labels = torch.arange(IDS).repeat_interleave(PER_ID)
            seqs = torch.rand(len(labels), FRAMES, SIZE, SIZE, generator=gen) * 0.2
            for i, label in enumerate(labels.tolist()):
                seqs[i, :, label * 4 : label * 4 + 4] += 0.8
            yield TrainBatch(seqs, labels, None)


class StripModel(nn.Module):
    """Conv, temporal max, two horizontal strips, per-strip linear heads: the ``ModelOutput`` contract."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Parameter(torch.randn(2, 4, IDS) * 0.3)

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> ModelOutput:
        n, s, h, w = x.shape
        f = torch.relu(self.conv(x.reshape(n * s, 1, h, w))).reshape(n, s, 4, h, w).amax(dim=1)
        parts = torch.stack([p.mean(dim=(2, 3)) for p in f.chunk(2, dim=2)], dim=0)  # [p, n, c]
        logits = torch.bmm(parts, self.head).permute(1, 2, 0)
        emb = parts.permute(1, 2, 0).contiguous()
        return ModelOutput(emb, logits.contiguous(), emb)


class TrialPruned(Exception):
    """Stands in for optuna.TrialPruned."""


class PruneAt(TrainingCallback):
    """Raise ``TrialPruned`` at the first evaluation at or after ``step``, as the search layer's pruner does."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        if step >= self.step:
            raise TrialPruned(f"pruned at step {step}")


def _config(tmp_path: Path, iterations: int) -> TrainConfig:
    return TrainConfig(data=DataConfig(p=IDS, k=PER_ID, frames=FRAMES),
                       optimizer=OptimizerConfig(name="adam", lr=1e-2, weight_decay=0.0),
                       iterations=iterations, save_every=4, eval_every=4, device="cpu", seed=1,
                       output_dir=str(tmp_path / "run"))


def _evaluate(model: nn.Module, step: int) -> dict[str, float]:
    return {"rank1": min(1.0, 0.5 + step / 100), "mAP": 0.25}


def test_complete_and_pruned_trials_through_the_trainer(tracking_uri: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    tracker = StudyTracker(tracking_uri, "exp", "trainer")
    with tracker.start_trial(0, {"tree_id": "abc"}) as run:
        trainer = Trainer(_config(tmp_path / "t0", 8), data=BandData(), model=StripModel(), evaluator=_evaluate,
                          callbacks=[MLflowTrainingCallback(run, log_every=2)], progress=False)
        result = trainer.fit()
        run.log_metrics({"gflops": 0.01}, step=result.step)
    with pytest.raises(TrialPruned), tracker.start_trial(1, {"tree_id": "def"}) as run:
        trainer = Trainer(_config(tmp_path / "t1", 12), data=BandData(), model=StripModel(), evaluator=_evaluate,
                          callbacks=[MLflowTrainingCallback(run, log_every=3), PruneAt(8)], progress=False)
        trainer.fit()

    df = load_trials(tracking_uri, "exp").set_index("trial")
    assert list(df["state"]) == ["complete", "pruned"]
    assert df.loc[0, "metrics.rank1"] == pytest.approx(0.58) and df.loc[0, "metrics.gflops"] == 0.01
    assert df.loc[0, "tags.workbench.train.status"] == "completed"
    assert df.loc[0, "tags." + TAG_CHECKPOINT].endswith(".pt")
    assert df.loc[0, "params.config.optimizer.name"] == "adam"
    assert df.loc[0, "params.config.data.frames"] == str(FRAMES)
    history = tracker.client.get_metric_history(df.loc[0, "run_id"], "train/loss")
    assert [m.step for m in history] == [2, 4, 6, 8]
    # The pruned trial keeps its sampled losses up to the step where the pruner stopped it.
    pruned = tracker.client.get_metric_history(df.loc[1, "run_id"], "train/loss")
    assert [m.step for m in pruned] == [3, 6]
    assert [m.step for m in tracker.client.get_metric_history(df.loc[1, "run_id"], "rank1")] == [4, 8]
