"""The layers of lesson 07's Glow: masks, the gated coupling network, the masked affine coupling.

Their inverses and log-determinants are checked in ``test_invertible_layers.py``.
"""

from __future__ import annotations

import normflows as nf
import pytest
import torch
from torch.distributions import MultivariateNormal

from course_utils.glow.layers import (
    GatedConvNet,
    MaskedAffineCoupling,
    SpectralGlowBase,
    base_from_noise,
    channel_mask,
    checkerboard,
    dct_matrix,
    glow_block,
    noise_from_latent,
)
from tests.oracles import perturb


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


def test_glow_block_lists_coupling_conv_and_actnorm_and_refuses_other_couplings() -> None:
    kinds = [type(f) for f in glow_block(4, hidden=8, layers=1)]
    assert kinds == [MaskedAffineCoupling, nf.flows.Invertible1x1Conv, nf.flows.ActNorm]
    first = glow_block(4, hidden=8, layers=1, coupling="normflows")[0]
    assert isinstance(first, nf.flows.AffineCouplingBlock)
    assert len(glow_block(1, hidden=8)) == 2  # one channel: nothing for a 1×1 conv to mix
    with pytest.raises(ValueError, match="coupling must be"):
        glow_block(4, 8, coupling="nope")


def _random_spectral_base(shape=(2, 3, 4)) -> SpectralGlowBase:
    torch.manual_seed(0)
    base = SpectralGlowBase(shape)
    with torch.no_grad():
        base.loc.normal_()
        base.log_scale.normal_(0, 0.5)
    return base


def test_spectral_base_is_the_gaussian_with_that_covariance() -> None:
    # Independently: z = (D_H ⊗ D_W)ᵀ c with c ~ N(loc, diag(scale²)), per channel.
    base = _random_spectral_base()
    rotation = torch.kron(dct_matrix(3), dct_matrix(4)).double().T
    z = torch.randn(5, 2, 3, 4)
    want = 0
    for c in range(2):
        mean = rotation @ base.loc[0, c].double().flatten()
        var = base.log_scale[0, c].double().exp().flatten() ** 2
        cov = rotation @ torch.diag(var) @ rotation.T
        want = want + MultivariateNormal(mean, cov).log_prob(z[:, c].double().flatten(1))
    torch.testing.assert_close(base.log_prob(z).double(), want, rtol=0, atol=1e-4)
    # Row 0 of the cosine basis is the mean: a constant image is one coefficient.
    flat = torch.einsum("ha,ab,wb->hw", dct_matrix(3), torch.ones(3, 4), dct_matrix(4))
    assert flat[0, 0] == pytest.approx(12**0.5) and flat.flatten()[1:].abs().max() < 1e-5


@pytest.mark.parametrize("temperature", [None, 0.5])
def test_spectral_base_samples_score_as_they_were_drawn(temperature) -> None:
    base = _random_spectral_base()
    base.temperature = temperature
    z, log_p = base(2000)
    torch.testing.assert_close(base.log_prob(z), log_p, rtol=0, atol=1e-3)
    # The draws have the stated mean and spread in the cosine basis.
    coeffs = torch.einsum("ha,ncab,wb->nchw", dct_matrix(3), z.detach(), dct_matrix(4))
    scale = base.log_scale.detach().exp() * (temperature or 1.0)
    error = float(4 * scale.max() / 2000**0.5)  # four standard errors of a mean of 2000
    torch.testing.assert_close(coeffs.mean(0), base.loc[0].detach(), rtol=0, atol=error)
    torch.testing.assert_close(coeffs.std(0), scale[0], rtol=0.1, atol=0)


def test_base_from_noise_draws_as_the_base_does() -> None:
    glow_base = nf.distributions.GlowBase((2, 3, 4))
    with torch.no_grad():
        for p in glow_base.parameters():
            p.normal_(0, 0.3)
    for base in (_random_spectral_base(), glow_base):
        torch.manual_seed(1)
        z, _ = base(3)
        torch.manual_seed(1)
        eps = torch.randn(3, 2, 3, 4)
        torch.testing.assert_close(base_from_noise(base, eps), z)
        base_from_noise(base, eps).sum().backward()  # gradients reach the base's parameters
        assert all(p.grad is not None for p in base.parameters())
    with pytest.raises(TypeError, match="not a Glow base"):
        base_from_noise(torch.nn.Linear(2, 2), eps)


def test_noise_from_latent_undoes_base_from_noise() -> None:
    glow_base = nf.distributions.GlowBase((2, 3, 4))
    with torch.no_grad():
        for p in glow_base.parameters():
            p.normal_(0, 0.3)
    eps = torch.randn(5, 2, 3, 4, generator=torch.Generator().manual_seed(2))
    for base in (_random_spectral_base(), glow_base):
        with torch.no_grad():
            torch.testing.assert_close(noise_from_latent(base, base_from_noise(base, eps)), eps)
    with pytest.raises(TypeError, match="not a Glow base"):
        noise_from_latent(torch.nn.Linear(2, 2), eps)
