"""The importance-weighted dequantization bound of lesson 07, against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.core.metrics import bits_per_dim
from course_utils.glow.measure import dequantization_bounds, importance_weighted_log_prob

pytestmark = pytest.mark.usefixtures("rng")


@pytest.fixture
def learned_noise_glow(make_tiny_glow):
    model = make_tiny_glow(dequantizer=2)
    with torch.no_grad():  # away from the identity start, so q(v|k) is not uniform
        for p in model.dequantizer.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    return model


def _digits(n: int = 5) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(7)).to(
        torch.uint8
    )


def test_the_bounds_are_the_models_one_draw_bounds_in_order(learned_noise_glow) -> None:
    k = _digits()
    got = dequantization_bounds(learned_noise_glow, k, 3, torch.Generator().manual_seed(0), 2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        want = [
            torch.cat([learned_noise_glow.dequantized_log_prob(p, generator) for p in k.split(2)])
            for _ in range(3)
        ]
    torch.testing.assert_close(got, torch.stack(want))


def test_the_importance_weighted_bound_is_a_log_mean_exp_by_hand(learned_noise_glow) -> None:
    bounds = dequantization_bounds(learned_noise_glow, _digits(), 4, torch.Generator())
    got = importance_weighted_log_prob(bounds)
    for i in range(bounds.shape[1]):
        column = [float(b) for b in bounds[:, i]]
        top = max(column)
        by_hand = top + math.log(sum(math.exp(b - top) for b in column) / len(column))
        assert got[i].item() == pytest.approx(by_hand, rel=1e-6, abs=1e-3)
        # Jensen: the log of a mean is at least the mean of the logs, at most the largest one
        assert sum(column) / len(column) - 1e-3 <= got[i].item() <= top + 1e-3
    # and in bits/dim the K-draw bound is never looser than the one-draw bounds' mean
    d = learned_noise_glow.num_dims
    assert bits_per_dim(got, d) <= bits_per_dim(bounds.flatten(), d) + 1e-6


def test_one_draw_is_the_one_draw_bound() -> None:
    bounds = torch.randn(1, 6)
    torch.testing.assert_close(importance_weighted_log_prob(bounds), bounds[0])


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="bounds must be a \\(K, batch\\)"):
        importance_weighted_log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match="samples"):
        dequantization_bounds(None, _digits(), 0)
