"""The 2-D conditional coupling flow of lesson 11: ``p(x | c)`` from couplings that see ``c``."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.flows2d.conditional import (
    ConditionalAffineCoupling,
    ConditionalFlow,
    check_context,
    conditional_realnvp,
)
from course_utils.flows2d.flows import Permutation, StandardNormal

pytestmark = pytest.mark.usefixtures("rng")


def _perturbed(module: torch.nn.Module, scale: float = 0.5) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return module


def test_coupling_is_the_formula_with_the_context_beside_the_kept_coordinates() -> None:
    layer = _perturbed(ConditionalAffineCoupling([1, 0], context_dim=2, hidden=8))
    z, c = torch.randn(5, 2), torch.randn(5, 2)
    out = layer.net(torch.cat([z * layer.mask, c], 1))
    s = layer.s_scale * torch.tanh(out[:, :2]) * (1 - layer.mask)
    t = out[:, 2:] * (1 - layer.mask)
    x, log_det = layer(z, c)
    torch.testing.assert_close(x, z * s.exp() + t)
    torch.testing.assert_close(log_det, s.sum(1))
    assert torch.equal(x[:, 0], z[:, 0])  # the kept coordinate passes unchanged
    back, log_det_back = layer.inverse(x, c)
    torch.testing.assert_close(back, z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(log_det_back, -log_det)
    # the context changes the map
    assert not torch.allclose(layer(z, c + 1)[0], x)


def test_flow_log_prob_is_base_plus_log_dets_and_a_shared_context_broadcasts() -> None:
    flow = _perturbed(conditional_realnvp(2, context_dim=1, n_couplings=3, hidden=8), 0.3)
    x = torch.randn(6, 2)
    z, log_det = flow.inverse(x, [0.4])
    by_hand = -0.5 * (z**2).sum(1) - math.log(2 * math.pi) + log_det
    torch.testing.assert_close(flow.log_prob(x, [0.4]), by_hand)
    torch.testing.assert_close(flow.log_prob(x, torch.full((6, 1), 0.4)), by_hand)
    torch.testing.assert_close(flow.log_prob(x, 0.4), by_hand)
    back, _ = flow.forward(z, [0.4])
    torch.testing.assert_close(back, x, atol=1e-5, rtol=1e-5)
    # each point may have its own context: row k is scored under context k
    contexts = torch.linspace(-1, 1, 6)[:, None]
    rowwise = flow.log_prob(x, contexts)
    for k in (0, 5):
        torch.testing.assert_close(rowwise[k], flow.log_prob(x[k : k + 1], contexts[k])[0])
    assert flow.sample(7, [0.1]).shape == (7, 2)


def test_a_trained_conditional_flow_draws_what_each_context_asks_for() -> None:
    # x | c is a small blob centred at c · (2, -1): the context moves the data
    torch.manual_seed(0)
    flow = conditional_realnvp(2, context_dim=1, n_couplings=4, hidden=32)
    opt = torch.optim.Adam(flow.parameters(), lr=5e-3)
    for _ in range(300):
        c = torch.randint(0, 2, (128, 1)).float() * 2 - 1
        x = c * torch.tensor([2.0, -1.0]) + 0.2 * torch.randn(128, 2)
        loss = flow.forward_kld(x, c)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for c in (-1.0, 1.0):
        draws = flow.sample(2000, [c], generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(draws.mean(0), c * torch.tensor([2.0, -1.0]), atol=0.2, rtol=0)
    point = torch.tensor([[2.0, -1.0]])
    with torch.no_grad():
        assert float(flow.log_prob(point, [1.0])) > float(flow.log_prob(point, [-1.0])) + 5


def test_careless_contexts_and_layers_are_refused() -> None:
    flow = conditional_realnvp(2, context_dim=2, n_couplings=2, hidden=4)
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="context is missing"):
        flow.log_prob(x, None)
    with pytest.raises(ValueError, match=r"\(3, 2\).*got \(3, 1\)"):
        flow.log_prob(x, torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"got \(2, 2\)"):
        flow.log_prob(x, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="NaN"):
        flow.log_prob(x, [float("nan"), 0.0])
    with pytest.raises(ValueError, match="context_dim"):
        ConditionalAffineCoupling([1, 0], context_dim=0)
    with pytest.raises(ValueError, match="mask"):
        ConditionalAffineCoupling([1, 1], context_dim=1)
    with pytest.raises(ValueError, match="at least one ConditionalAffineCoupling"):
        ConditionalFlow(StandardNormal(2), [Permutation(2)])
    with pytest.raises(ValueError, match="same context_dim"):
        ConditionalFlow(
            StandardNormal(2),
            [ConditionalAffineCoupling([1, 0], 1), ConditionalAffineCoupling([0, 1], 2)],
        )
    assert check_context(3, 2, 1).shape == (2, 1)
