"""The presets reproduce the public HSTL code: parameter counts, FLOPs, state-dict names and shapes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from workbench.models import create_model

# Figures of the public code (REFERENCE.md section 1).
PUBLIC_FIGURES = {
    "hstl-casia-b": (4_745_834, 73),
    "hstl-oumvlp": (89_103_603, 50),
    "hstl-gait3d": (54_719_087, 46),
}

# The public CASIA-B checkpoint's 41 state-dict entries and their shapes, written out by hand.
CASIA_B_KEYS = {
    "arme1.0.conv3d.weight": (32, 1, 3, 3, 3),
    "astp1.hpp.0.p": (1,),
    "astp1.proj.conv.weight": (128, 32, 1, 1),
    **{f"arme2.0.conv3d.{r}.conv3d.weight": (32, 32, 3, 3, 3) for r in range(2)},
    **{f"arme2.1.conv3d.{r}.conv3d.weight": (64, 32, 3, 3, 3) for r in range(2)},
    **{f"astp2.hpp.{r}.p": (1,) for r in range(2)},
    "astp2.proj.conv.weight": (128, 64, 1, 1),
    **{f"fta.mma.{r}.fcs.{i}.weight": (64, 64, 1) for r in range(2) for i in range(2)},
    **{f"fta.mma.{r}.fcs.{i}.bias": (64,) for r in range(2) for i in range(2)},
    **{f"astp2_fta.hpp.{r}.p": (1,) for r in range(2)},
    "astp2_fta.proj.conv.weight": (128, 64, 1, 1),
    **{f"arme3.0.conv3d.{r}.conv3d.weight": (128, 64, 3, 3, 3) for r in range(4)},
    **{f"arme3.1.conv3d.{r}.conv3d.weight": (128, 128, 3, 3, 3) for r in range(4)},
    **{f"astp3.hpp.{r}.p": (1,) for r in range(4)},
    "HPP.p": (1,),
    "Head0.fc_bin": (73, 128, 128),
    "Bn.weight": (128,),
    "Bn.bias": (128,),
    "Bn.running_mean": (128,),
    "Bn.running_var": (128,),
    "Bn.num_batches_tracked": (),
    "Head1.fc_bin": (73, 128, 74),
}


@pytest.mark.parametrize("name", sorted(PUBLIC_FIGURES))
def test_parameter_counts_and_parts_match_the_public_code(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    params, parts = PUBLIC_FIGURES[name]
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.spec.parts == parts
    assert model.Head0.fc_bin.shape[0] == parts


def test_casia_b_parameter_breakdown() -> None:
    with torch.device("meta"):
        model = create_model("hstl-casia-b")
    heads = {"Head0", "Bn", "Head1"}
    backbone = sum(p.numel() for k, p in model.named_parameters() if k.split(".")[0] not in heads)
    assert backbone == 2_858_090
    assert model.Head0.fc_bin.numel() == 1_196_032
    assert model.Head1.fc_bin.numel() == 691_456


def test_casia_b_state_dict_names_and_shapes_are_the_public_ones() -> None:
    with torch.device("meta"):
        model = create_model("hstl-casia-b")
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert len(CASIA_B_KEYS) == 41
    assert shapes == CASIA_B_KEYS


def test_casia_b_forward_flops_for_one_30_frame_sequence() -> None:
    with torch.device("meta"):
        model = create_model("hstl-casia-b").eval()
        x = torch.rand(1, 30, 64, 44)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert round(counter.get_total_flops() / 1e9, 2) == 51.65


def test_casia_b_flops_scale_with_frames() -> None:
    with torch.device("meta"):
        model = create_model("hstl-casia-b").eval()
        x = torch.rand(1, 100, 64, 44)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert round(counter.get_total_flops() / 1e9, 1) == 170.6
