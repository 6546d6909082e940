"""Two gloo processes train together and end where one process training the whole batch ends."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from training_toys import toy_config, toy_data, toy_model, weights

from workbench.training import (
    DistributedContext,
    OptimizerConfig,
    Trainer,
    gather_with_grad,
    list_checkpoints,
)

# Plain SGD turns any mis-scaled gradient (e.g. DDP's averaging of the gathered triplet loss) into a
# visible weight difference; Adam would normalise much of it away.
SGD = OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = toy_config(Path(out) / "ddp", iterations=4, save_every=2, optimizer=SGD)
    trainer = Trainer(config, data=toy_data(config), model=toy_model(), progress=False,
                      context=DistributedContext(rank=rank, world_size=world, local_rank=rank))
    result = trainer.fit()
    assert trainer.model is not None
    torch.save({"weights": weights(trainer.model), "status": result.status}, Path(out) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_gloo_ranks_match_single_process(tmp_path: Path) -> None:
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["status"] for r in ranks] == ["completed", "completed"]

    config = toy_config(tmp_path / "single", iterations=4, save_every=2, optimizer=SGD)
    single = Trainer(config, data=toy_data(config), model=toy_model(), progress=False,
                     context=DistributedContext())
    single.fit()
    assert single.model is not None
    expected = weights(single.model)
    for key, value in expected.items():
        assert torch.equal(ranks[0]["weights"][key], ranks[1]["weights"][key]), f"ranks differ in {key}"
        assert torch.allclose(ranks[0]["weights"][key], value, atol=1e-6), f"DDP differs from one process in {key}"
    # Only rank 0 writes: one set of checkpoints, one config, one log.
    assert [p.name for p in list_checkpoints(tmp_path / "ddp")] == ["checkpoint-00000002.pt", "checkpoint-00000004.pt"]
    assert (tmp_path / "ddp" / "config.toml").is_file()


def test_gather_without_process_group_is_identity() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
