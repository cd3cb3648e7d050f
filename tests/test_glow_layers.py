"""The layers of lesson 07's Glow: masks, the gated coupling network, the masked affine coupling."""

from __future__ import annotations

import pytest
import torch

from course_utils.glow_layers import (
    GatedConvNet,
    MaskedAffineCoupling,
    channel_mask,
    checkerboard,
    glow_block,
)
from tests.oracles import assert_log_dets_match_autograd, assert_round_trip, perturb


def test_masks_cover_half_and_alternate() -> None:
    board = checkerboard(4, 6)
    assert board.shape == (1, 1, 4, 6)
    assert float(board.sum()) == 12
    torch.testing.assert_close(board + checkerboard(4, 6, invert=True), torch.ones(1, 1, 4, 6))
    # no two horizontal or vertical neighbours share a colour
    assert bool((board[..., 1:, :] != board[..., :-1, :]).all())
    assert bool((board[..., :, 1:] != board[..., :, :-1]).all())
    assert channel_mask(6).flatten().tolist() == [1, 1, 1, 0, 0, 0]
    assert channel_mask(6, invert=True).flatten().tolist() == [0, 0, 0, 1, 1, 1]


def test_gated_net_starts_at_zero_and_learns() -> None:
    net = GatedConvNet(2, 4, hidden=8, layers=2)
    x = torch.randn(3, 2, 5, 5)
    assert float(net(x).detach().abs().max()) == 0.0  # the coupling starts as the identity
    loss = (net(x) - 1).pow(2).mean()
    loss.backward()
    assert float(net.net[-1].weight.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    "mask,channels", [(checkerboard(4, 4), 1), (checkerboard(4, 4, True), 2), (channel_mask(4), 4)]
)
def test_masked_coupling_inverts_and_log_det_is_exact(rng, mask, channels) -> None:
    layer = perturb(MaskedAffineCoupling(mask, channels, hidden=8, layers=1).double())
    z = torch.randn(3, channels, 4, 4, generator=rng, dtype=torch.float64)
    assert_round_trip(layer, z)
    flat = MaskedAffineCoupling(mask, channels, hidden=8, layers=1).double()
    flat.load_state_dict(layer.state_dict())

    class Flat(torch.nn.Module):  # the oracles work on rows; this layer works on images
        def forward(self, v):
            x, ld = flat(v.view(-1, channels, 4, 4))
            return x.flatten(1), ld

        def inverse(self, v):
            x, ld = flat.inverse(v.view(-1, channels, 4, 4))
            return x.flatten(1), ld

    assert_log_dets_match_autograd(Flat(), z.flatten(1))


def test_masked_coupling_keeps_the_masked_values() -> None:
    mask = checkerboard(4, 4)
    layer = perturb(MaskedAffineCoupling(mask, 1, hidden=8, layers=1))
    x = torch.randn(2, 1, 4, 4)
    z, _ = layer.inverse(x)
    kept = mask.bool().expand_as(x)
    torch.testing.assert_close(z[kept], x[kept])
    assert not torch.allclose(z[~kept], x[~kept])


def test_log_scale_is_bounded() -> None:
    layer = MaskedAffineCoupling(channel_mask(2), 2, hidden=8, layers=1)
    with torch.no_grad():
        layer.net.net[-1].bias.fill_(1e6)  # an exploding network
    _, log_det = layer.inverse(torch.randn(1, 2, 3, 3))
    bound = float(layer.log_scale_bound.exp().max())
    assert torch.isfinite(log_det).all() and float(log_det.abs().max()) <= 9 * bound + 1e-4


@pytest.mark.parametrize("coupling", ["masked", "normflows"])
def test_glow_block_inverts(rng, coupling) -> None:
    layers = glow_block(4, hidden=8, layers=1, coupling=coupling)
    x = torch.randn(3, 4, 6, 6, generator=rng, dtype=torch.float64)
    layers = [perturb(f.double(), 0.05) for f in layers]
    z, log_det = x, torch.zeros(3, dtype=torch.float64)
    for f in reversed(layers):  # data -> latent
        z, ld = f.inverse(z)
        log_det = log_det + ld
    back = z
    for f in layers:  # latent -> data
        back, ld = f(back)
        log_det = log_det + ld
    torch.testing.assert_close(back, x)
    torch.testing.assert_close(log_det, torch.zeros(3, dtype=torch.float64), atol=1e-8, rtol=0)
    with pytest.raises(ValueError, match="coupling must be"):
        glow_block(4, 8, coupling="nope")
