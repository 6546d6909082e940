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


def test_every_entry_point_that_runs_a_model_defaults_to_auto() -> None:
    # A GPU user who names no device gets the GPU, everywhere; a CPU machine gets the CPU.
    import inspect

    from workbench.cli import build_parser
    from workbench.cost import estimate_cost, measure_latency, measure_peak_memory
    from workbench.models import feature_map_reader
    from workbench.training import TrainConfig, load_for_inference

    for fn in (load_for_inference, feature_map_reader, estimate_cost, measure_latency, measure_peak_memory):
        assert inspect.signature(fn).parameters["device"].default == "auto", fn.__name__
    assert TrainConfig().device == "auto"
    parser = build_parser()
    for command in (["discover", "--data", "d", "--out", "t.json"], ["evaluate", "model.pt", "--data", "d"],
                    ["cost", "hstl-small"]):
        assert parser.parse_args(command).device == "auto", command


def test_a_feature_map_reader_on_auto_reads_where_the_model_went() -> None:
    from workbench.models import create_model, feature_map_reader

    reader = feature_map_reader(create_model("hstl-small"))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert torch.device(reader.device).type == expected
    assert next(reader.model.parameters()).device.type == expected
