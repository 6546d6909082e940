"""HSTL layers: region isolation in ARME, GeM, FTA time reduction and masking, separate FCs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.models import ARME, ASTP, BasicConv3d, FTABlock, GeMHPP, SeparateFCs
from workbench.models._pooling import temporal_max, time_max_pool, time_pools, zero_padding_frames


def test_arme_regions_do_not_see_each_other() -> None:
    torch.manual_seed(0)
    arme = ARME(3, 4, [5, 3]).eval()
    x = torch.rand(2, 3, 6, 8, 5)
    changed = x.clone()
    changed[:, :, :, 5:] = torch.rand(2, 3, 6, 3, 5)  # only the lower region
    with torch.no_grad():
        a, b = arme(x), arme(changed)
    torch.testing.assert_close(a[:, :, :, :5], b[:, :, :, :5], atol=0.0, rtol=0.0)
    assert not torch.allclose(a[:, :, :, 5:], b[:, :, :, 5:])


def test_arme_is_a_zero_padded_conv_per_region_then_leaky_relu() -> None:
    torch.manual_seed(0)
    arme = ARME(2, 3, [4, 2])
    x = torch.randn(1, 2, 5, 6, 4)
    expected = torch.cat(
        [F.conv3d(x[:, :, :, :4], arme.conv3d[0].conv3d.weight, padding=1),
         F.conv3d(x[:, :, :, 4:], arme.conv3d[1].conv3d.weight, padding=1)], dim=3
    )
    torch.testing.assert_close(arme(x), F.leaky_relu(expected, 0.01), atol=1e-6, rtol=1e-5)


def test_gem_matches_its_formula_and_p_one_is_the_mean() -> None:
    x = torch.rand(2, 3, 4, 5) + 0.1
    gem = GeMHPP(bins=2)
    expected = x.reshape(2, 3, 2, 10).pow(6.5).mean(-1).pow(1 / 6.5)
    torch.testing.assert_close(gem(x), expected)
    with torch.no_grad():
        gem.p.fill_(1.0)
    torch.testing.assert_close(gem(x), x.reshape(2, 3, 2, 10).mean(-1))


def test_astp_pools_time_projects_and_pools_each_region() -> None:
    astp = ASTP([3, 5], in_channels=4, out_channels=6)
    x = torch.rand(2, 4, 7, 8, 3)
    out = astp(x)
    assert out.shape == (2, 6, 2)
    projected = astp.proj(x.max(dim=2).values)
    torch.testing.assert_close(out[:, :, 0], astp.hpp[0](projected[:, :, :3]).squeeze(-1))


def test_temporal_max_ignores_padding_frames() -> None:
    x = torch.rand(2, 3, 5, 4, 2)
    x[0, :, 2:] = 100.0
    out = temporal_max(x, torch.tensor([2, 5]))
    torch.testing.assert_close(out[0], x[0, :, :2].max(dim=1).values)
    torch.testing.assert_close(out[1], x[1].max(dim=1).values)


def test_fta_shrinks_time_to_a_third_and_tracks_lengths() -> None:
    fta = FTABlock([3, 5], channels=4)
    x = torch.rand(3, 4, 30, 8, 2)
    out, lengths = fta(x)
    assert out.shape == (3, 4, 10, 8, 2)
    assert lengths is None
    out, lengths = fta(x, torch.tensor([30, 3, 10]))
    assert lengths is not None and lengths.tolist() == [10, 1, 3]
    assert out[1, :, 1:].abs().sum() == 0  # past the shrunk length everything is zero
    alone, _ = fta(x[1:2, :, :3])
    torch.testing.assert_close(out[1:2, :, :1], alone)


def test_fta_mixes_the_two_pools_with_softmax_weights() -> None:
    fta = FTABlock([4], channels=2)
    with torch.no_grad():
        for fc in fta.mma[0].fcs:
            fc.weight.zero_()
            fc.bias.zero_()
    x = torch.rand(1, 2, 9, 4, 3)
    out, _ = fta(x)
    pooled3 = F.max_pool3d(x, (3, 1, 1), (3, 1, 1))
    pooled5 = F.max_pool3d(x, (5, 1, 1), (3, 1, 1), (1, 0, 0))
    torch.testing.assert_close(out, 0.5 * pooled3 + 0.5 * pooled5)


def test_separate_fcs_apply_one_matrix_per_part() -> None:
    fcs = SeparateFCs(parts=3, in_channels=4, out_channels=2)
    x = torch.rand(5, 4, 3)
    out = fcs(x)
    assert out.shape == (5, 2, 3)
    torch.testing.assert_close(out[:, :, 1], x[:, :, 1] @ fcs.fc_bin[1])


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("kernel", "padding"), [(3, 0), (5, 1)])
def test_time_max_pool_equals_max_pool3d_values_and_gradients(channels_last: bool, kernel: int, padding: int) -> None:
    torch.manual_seed(0)
    base = torch.randn(2, 3, 11, 4, 5)
    base[0, :, :, :2] = 0.0  # exact ties, as on a silhouette's empty background
    if channels_last:
        base = base.contiguous(memory_format=torch.channels_last_3d)
    mine = base.clone().requires_grad_()
    ref = base.clone().requires_grad_()
    out = time_max_pool(mine, kernel, 3, padding)
    expected = F.max_pool3d(ref, (kernel, 1, 1), (3, 1, 1), (padding, 0, 0))
    torch.testing.assert_close(out, expected, atol=0.0, rtol=0.0)
    weights = torch.randn_like(expected)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(mine.grad, ref.grad, atol=0.0, rtol=0.0)


def test_time_pools_with_max_share_one_gradient_and_match_separate_ops() -> None:
    torch.manual_seed(1)
    base = torch.randn(2, 3, 12, 4, 5).contiguous(memory_format=torch.channels_last_3d)
    base[1, :, :, 1:3] = 0.0
    mine = base.clone().requires_grad_()
    ref = base.clone().requires_grad_()
    pooled3, pooled5, maximum = time_pools(mine, [(3, 3, 0), (5, 3, 1)], with_max=True)
    expected = (
        F.max_pool3d(ref, (3, 1, 1), (3, 1, 1)),
        F.max_pool3d(ref, (5, 1, 1), (3, 1, 1), (1, 0, 0)),
        ref.max(dim=2).values,
    )
    for got, want in zip((pooled3, pooled5, maximum), expected, strict=True):
        torch.testing.assert_close(got, want, atol=0.0, rtol=0.0)
    weights = [torch.randn_like(t) for t in expected]
    sum((t * w).sum() for t, w in zip((pooled3, pooled5, maximum), weights, strict=True)).backward()
    sum((t * w).sum() for t, w in zip(expected, weights, strict=True)).backward()
    torch.testing.assert_close(mine.grad, ref.grad, atol=1e-6, rtol=1e-6)
    # an unused output still backpropagates the others
    only = base.clone().requires_grad_()
    time_pools(only, [(3, 3, 0), (5, 3, 1)], with_max=True)[0].sum().backward()
    assert only.grad is not None and only.grad.sum() == pooled3.numel()


def test_temporal_max_of_channels_last_maps_keeps_values_indices_and_gradients() -> None:
    torch.manual_seed(2)
    base = torch.randn(2, 3, 7, 4, 5)
    base[:, :, :, :2] = 0.0  # ties: the first frame must win, as in max(dim=2)
    fast = base.contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    plain = base.clone().requires_grad_()
    out = temporal_max(fast, None)
    expected = plain.max(dim=2).values
    torch.testing.assert_close(out, expected, atol=0.0, rtol=0.0)
    weights = torch.randn_like(expected)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(fast.grad, plain.grad, atol=0.0, rtol=0.0)


def test_padding_frames_are_zeroed_in_place_at_inference_and_copied_under_autograd() -> None:
    x = torch.rand(2, 3, 5, 4, 2).contiguous(memory_format=torch.channels_last_3d)
    lengths = torch.tensor([5, 2])
    with torch.no_grad():
        out = zero_padding_frames(x.clone(memory_format=torch.channels_last_3d), lengths)
    # Both paths keep the channels-last layout the convolutions read without a copy.
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    assert out[1, :, 2:].abs().sum() == 0 and torch.equal(out[1, :, :2], x[1, :, :2]) and torch.equal(out[0], x[0])
    tracked = x.clone().requires_grad_()
    filled = zero_padding_frames(tracked, lengths)
    assert filled is not tracked and filled.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(filled.detach(), out)
    filled.sum().backward()
    assert tracked.grad is not None
    assert tracked.grad[1, :, 2:].abs().sum() == 0 and tracked.grad[1, :, :2].eq(1).all()


def test_two_frame_convolutions_under_cpu_bf16_give_finite_weight_gradients() -> None:
    # Clips of 6-8 frames leave two frames after FTA; oneDNN's channels-last bf16 weight gradient over
    # exactly two frames is now and then non-finite, which would poison the weights a step later.
    torch.manual_seed(0)
    conv = BasicConv3d(4, 6)
    for _ in range(60):
        conv.zero_grad(set_to_none=True)
        x = torch.randn(4, 4, 2, 4, 4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        y.backward(torch.randn(y.shape, dtype=y.dtype))
        assert conv.conv3d.weight.grad is not None and torch.isfinite(conv.conv3d.weight.grad).all()
    with torch.no_grad():
        reference = F.conv3d(x, conv.conv3d.weight, padding=1)
        torch.testing.assert_close(conv(x), reference)


def test_bf16_time_pool_gradients_add_up_in_float32_and_come_back_in_bf16() -> None:
    torch.manual_seed(3)
    base = torch.randn(2, 3, 12, 4, 5).to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d)
    mine = base.clone().requires_grad_()
    outputs = time_pools(mine, [(3, 3, 0), (5, 3, 1)], with_max=True)
    weights = [torch.randn(t.shape).to(torch.bfloat16) for t in outputs]
    sum((t * w).float().sum() for t, w in zip(outputs, weights, strict=True)).backward()
    assert mine.grad is not None and mine.grad.dtype == torch.bfloat16
    assert mine.grad.is_contiguous(memory_format=torch.channels_last_3d)
    # The same pools and weights in float32: the bf16 gradient is their sum rounded once.
    ref = base.float().requires_grad_()
    expected = time_pools(ref, [(3, 3, 0), (5, 3, 1)], with_max=True)
    sum((t * w.float()).sum() for t, w in zip(expected, weights, strict=True)).backward()
    assert ref.grad is not None
    torch.testing.assert_close(mine.grad, ref.grad.to(torch.bfloat16), atol=0.0, rtol=0.0)
