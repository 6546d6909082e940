"""The optimised HSTL (per-region tensors, in-place activations) equals the public code's plain recipe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.models import HSTL, HSTLSpec, create_model


def _gem(x: torch.Tensor, p: torch.Tensor, bins: int) -> torch.Tensor:
    n, c = x.shape[:2]
    z = x.view(n, c, bins, -1)
    return F.avg_pool2d(z.clamp(min=1e-6).pow(p), (1, z.shape[-1])).pow(1.0 / p).squeeze(-1)


def _astp(module: torch.nn.Module, x: torch.Tensor, split: tuple[int, ...]) -> torch.Tensor:
    x = torch.max(x, dim=2)[0]
    if module.proj is not None:
        x = F.conv2d(x, module.proj.conv.weight)
    return torch.cat([_gem(r, gem.p, 1) for gem, r in zip(module.hpp, x.split(split, 2), strict=True)], -1)


def _fta(module: torch.nn.Module, x: torch.Tensor, split: tuple[int, ...]) -> torch.Tensor:
    out = []
    for fta, r in zip(module.mma, x.split(split, 3), strict=True):
        a = F.max_pool3d(r, (3, 1, 1), (3, 1, 1))
        b = F.max_pool3d(r, (5, 1, 1), (3, 1, 1), (1, 0, 0))
        g = (a + b).mean(dim=(3, 4))
        w = torch.stack([F.conv1d(g, fc.weight, fc.bias) for fc in fta.fcs]).softmax(0)
        out.append((w[..., None, None] * torch.stack([a, b])).sum(0))
    return torch.cat(out, 3)


def plain_forward(model: HSTL, sils: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The public code's order of operations: split, convolve each region, concatenate, LeakyReLU."""
    spec = model.spec
    x = sils.unsqueeze(1)
    for conv in model.arme1.convs:
        x = F.leaky_relu(F.conv3d(x, conv.conv3d.weight, padding=1))
    parts = [_astp(model.astp1, x, spec.first_split)]
    for i, stage in enumerate(spec.stages):
        k = i + 2
        if i in spec.downsample_before:
            x = F.max_pool3d(x, (1, 2, 2), (1, 2, 2))
        for block in getattr(model, f"arme{k}"):
            regions = x.split(stage.split, 3)
            x = F.leaky_relu(torch.cat([F.conv3d(r, c.conv3d.weight, padding=1)
                                        for c, r in zip(block.conv3d, regions, strict=True)], 3))
        parts.append(_astp(getattr(model, f"astp{k}"), x, stage.split))
        if stage.fta:
            x = _fta(getattr(model, "fta" if k == 2 else f"fta{k}"), x, stage.split)
            parts.append(_astp(getattr(model, f"astp{k}_fta"), x, stage.split))
    parts.append(_gem(torch.max(x, 2)[0], model.HPP.p, spec.strips))
    feature = torch.cat(parts, -1)
    gait = torch.bmm(feature.permute(2, 0, 1), model.Head0.fc_bin).permute(1, 2, 0)
    bnft = model.Bn(gait)
    logits = torch.bmm(bnft.permute(2, 0, 1), model.Head1.fc_bin).permute(1, 2, 0)
    return bnft, logits


def _tiny(name: str) -> HSTL:
    with torch.device("meta"):
        spec = create_model(name).spec
    assert isinstance(spec, HSTLSpec)
    torch.manual_seed(0)
    model = create_model(
        name,
        stem_channels=[3] * len(spec.stem_channels),
        stages=[{"channels": [4, 5], "split": list(s.split), "fta": s.fta, "project": s.project} for s in spec.stages],
        astp_channels=5,
        num_classes=4,
    )
    assert isinstance(model, HSTL)
    return model


@pytest.mark.parametrize("name", ["hstl-casia-b", "hstl-oumvlp"])
def test_outputs_and_gradients_equal_the_plain_recipe(name: str) -> None:
    model = _tiny(name).train()
    x = torch.rand(4, 9, 64, 10)
    out = model(x)
    loss = out.embeddings.square().mean() + out.logits.logsumexp(1).mean()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    bnft, logits = plain_forward(model, x)
    torch.testing.assert_close(out.embeddings, bnft, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)
    plain_grads = torch.autograd.grad(bnft.square().mean() + logits.logsumexp(1).mean(), list(model.parameters()))
    for (key, _), mine, plain in zip(model.named_parameters(), grads, plain_grads, strict=True):
        torch.testing.assert_close(mine, plain, atol=1e-5, rtol=1e-4, msg=lambda m, key=key: f"{key}: {m}")


def test_full_size_casia_b_forward_equals_the_plain_recipe() -> None:
    torch.manual_seed(0)
    model = create_model("hstl-casia-b").eval()
    x = (torch.rand(1, 6, 64, 44) > 0.5).float()
    with torch.no_grad():
        out = model(x)
        bnft, logits = plain_forward(model, x)
    torch.testing.assert_close(out.embeddings, bnft, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)
