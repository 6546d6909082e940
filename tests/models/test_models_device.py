"""``resolve_device``: the one reading of a device choice that training, evaluation and cost share."""

from __future__ import annotations

import pytest
import torch

from workbench.models import resolve_device


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu"), local_rank=3) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize(
    ("choice", "message"),
    [("gpu0", r"device='gpu0': expected cpu, cuda, cuda:N or auto"), ("meta", "only cpu and cuda are supported")],
)
def test_unusable_choices_name_the_fix(choice: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_device(choice)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_names_the_fix() -> None:
    with pytest.raises(ValueError, match="CUDA is not available on this machine; use --device cpu or auto"):
        resolve_device("cuda:1")


@pytest.mark.cuda
def test_a_torchrun_rank_gets_its_own_device() -> None:
    count = torch.cuda.device_count()
    assert resolve_device("cuda", local_rank=count - 1) == torch.device("cuda", count - 1)
    assert resolve_device("auto", local_rank=0) == torch.device("cuda", 0)
    assert resolve_device("cuda:0", local_rank=count - 1) == torch.device("cuda", 0)
    with pytest.raises(ValueError, match=f"LOCAL_RANK={count} but only {count} CUDA device"):
        resolve_device("cuda", local_rank=count)
