"""Small stand-ins shared by the training tests: an in-memory sequence source and a tiny gait model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.data import ArraySource, SequenceRecord
from workbench.models import ModelOutput
from workbench.training import DataConfig, LossConfig, OptimizerConfig, TrainConfig


class MemorySource(ArraySource):
    """A ``SequenceSource`` of random silhouettes held in memory; each id has its own bright band."""

    def __init__(self, ids: int = 4, per_id: int = 3, frames: tuple[int, int] = (6, 9), size: int = 16,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        records, arrays = [], []
        for i in range(ids):
            for j in range(per_id):
                n = int(rng.integers(frames[0], frames[1] + 1))
                seq = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
                band = (i * size) // ids
                seq[:, band : band + max(1, size // ids)] += np.uint8(150)
                records.append(SequenceRecord(f"{i:03d}", f"nm-{j + 1:02d}", "090", (Path(f"{i}/{j}.pkl"),)))
                arrays.append(seq)
        super().__init__(arrays, records)


class ToyGaitModel(nn.Module):
    """A tiny model obeying the ``ModelOutput`` contract: conv, temporal max over ``seqL``, strip pooling."""

    def __init__(self, num_classes: int, channels: int = 4, parts: int = 2) -> None:
        super().__init__()
        self.parts = parts
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.fc = nn.Parameter(torch.randn(parts, channels, channels) * 0.3)
        self.classifier = nn.Parameter(torch.randn(parts, channels, num_classes) * 0.3)

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> ModelOutput:
        n, s, h, w = x.shape
        f = torch.relu(self.conv(x.reshape(n * s, 1, h, w))).reshape(n, s, -1, h, w)
        if seqL is not None:
            valid = torch.arange(s, device=x.device)[None, :] < seqL[:, None]
            f = f.masked_fill(~valid[:, :, None, None, None], float("-inf"))
        f = f.max(dim=1).values  # [n, c, h, w]
        strips = torch.stack([part.mean(dim=(2, 3)) for part in f.chunk(self.parts, dim=2)], dim=0)  # [p, n, c]
        emb = torch.bmm(strips, self.fc)  # [p, n, c]
        logits = torch.bmm(emb, self.classifier)  # [p, n, classes]
        emb_out = emb.permute(1, 2, 0).contiguous()
        return ModelOutput(emb_out, logits.permute(1, 2, 0).contiguous(), emb_out)


def toy_config(output_dir: Path, **changes: object) -> TrainConfig:
    """A TrainConfig for the toy pieces: 2 ids x 2 sequences, 4 frames, Adam 1e-2, no progress noise."""
    base = TrainConfig(
        data=DataConfig(p=2, k=2, frames=4),
        optimizer=OptimizerConfig(name="adam", lr=1e-2, weight_decay=0.0),
        loss=LossConfig(),
        iterations=6,
        save_every=3,
        device="cpu",
        # fp32 on every machine: these tests compare weights across runs, ranks and resumes to 1e-6, and
        # bf16 rounding (the default "auto" on a CPU with bf16 units) depends on how a batch is split.
        amp="off",
        seed=7,
        output_dir=str(output_dir),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def toy_data(config: TrainConfig, **source_options: int):
    """``SourceTrainData`` over a ``MemorySource``."""
    from workbench.training._data import SourceTrainData

    return SourceTrainData(MemorySource(**source_options), config.data, config.seed)


def toy_model(seed: int = 0, num_classes: int = 4) -> ToyGaitModel:
    """A ``ToyGaitModel`` with weights fixed by ``seed``."""
    torch.manual_seed(seed)
    return ToyGaitModel(num_classes)


class ViewHeadToy(nn.Module):
    """The toy model plus a view classifier whose logits only the view loss reads (as GaitGS's).

    ``offset`` shifts every logit and ``half`` returns them in fp16: 60000 each is finite in fp16 but
    their sum is not, the overflow an unused head meets under fp16 autocast.
    """

    def __init__(self, offset: float = 0.0, half: bool = False) -> None:
        super().__init__()
        self.body = toy_model()
        self.view_head = nn.Linear(4, 3)
        self.offset, self.half_logits = offset, half

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> ModelOutput:
        out = self.body(x, seqL)
        logits = self.view_head(out.embeddings.detach().mean(-1)) + self.offset
        return out._replace(view_logits=logits.half() if self.half_logits else logits)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of every state entry."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
