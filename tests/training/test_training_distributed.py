"""Two gloo processes train together and end where one process training the whole batch ends."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from training_toys import ViewHeadToy, toy_config, toy_data, toy_model, weights

from workbench.training import (
    DistributedContext,
    LossConfig,
    OptimizerConfig,
    Trainer,
    gather_with_grad,
    list_checkpoints,
)
from workbench.training._distributed import all_true, any_true, gather_objects

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


def _view_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = toy_config(Path(out) / "views", iterations=3, save_every=3, optimizer=SGD,
                        loss=LossConfig(view_weight=0.0))
    trainer = Trainer(config, data=toy_data(config), model=ViewHeadToy(), progress=False,
                      context=DistributedContext(rank=rank, world_size=world, local_rank=rank))
    result = trainer.fit()
    assert trainer.model is not None
    torch.save({"weights": weights(trainer.model), "status": result.status}, Path(out) / f"views{rank}.pt")


@pytest.mark.slow
def test_a_view_head_without_view_loss_trains_under_ddp(tmp_path: Path) -> None:
    # With the view loss off the view head gets no gradient; DDP must not wait for one.
    mp.start_processes(_view_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    ranks = [torch.load(tmp_path / f"views{r}.pt", weights_only=True) for r in range(2)]
    assert [r["status"] for r in ranks] == ["completed", "completed"]
    assert torch.equal(ranks[0]["weights"]["view_head.weight"], ranks[1]["weights"]["view_head.weight"])


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


def _collectives_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    handed: list[torch.Tensor] = []

    def recording(real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            for arg in args:
                handed.extend(arg if isinstance(arg, list) else [arg] if isinstance(arg, torch.Tensor) else [])
            return real(*args, **kwargs)
        return call

    dist.all_reduce, dist.all_gather = recording(dist.all_reduce), recording(dist.all_gather)
    still_held, results = 0, []
    for i in range(150):
        handed.clear()
        results.append((all_true(i % 3 != rank, torch.device("cpu")), any_true(rank == 1, torch.device("cpu"))))
        x = torch.full((2, 3), float(rank), requires_grad=True)
        gathered = gather_with_grad(x)
        objects = gather_objects({"rank": rank, "pad": "x" * (rank * 7 + i % 5)}, torch.device("cpu"))
        results.append((gathered.shape == (4, 3), [o["rank"] for o in objects] == [0, 1]))
        # Whatever the group was handed, it has let go of by the time the call returns.
        still_held += sum(t._use_count() > 1 for t in handed)
    dist.barrier()
    dist.destroy_process_group()
    torch.save({"still_held": still_held, "results": results}, Path(out) / f"collectives{rank}.pt")


@pytest.mark.slow
def test_collectives_return_only_once_gloo_let_go_of_their_tensors(tmp_path: Path) -> None:
    # gloo drops a finished work a moment after the call returns. If that drop frees a tensor Python
    # already let go of, it needs the GIL, and during interpreter shutdown that aborts the rank.
    mp.start_processes(_collectives_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    for rank in range(2):
        saved = torch.load(tmp_path / f"collectives{rank}.pt", weights_only=True)
        assert saved["still_held"] == 0
        for i in range(150):
            assert saved["results"][2 * i] == (i % 3 not in (0, 1), True)
            assert saved["results"][2 * i + 1] == (True, True)


def test_gather_objects_without_process_group_is_a_list_of_one() -> None:
    assert gather_objects({"a": 1}, torch.device("cpu")) == [{"a": 1}]


def test_gather_without_process_group_is_identity() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
