"""course_utils.core.metrics: NLL and bits per dimension against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.core.metrics import bits_per_dim, nll


def test_nll_is_minus_the_mean() -> None:
    assert nll(torch.tensor([-1.0, -3.0])) == 2.0
    assert nll(torch.tensor([0.5])) == -0.5
    assert isinstance(nll(torch.tensor([1.0, 2.0])), float)


def test_nll_of_a_gaussian(rng: torch.Generator) -> None:
    x = torch.randn(1000, 3, generator=rng, dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, 1.0)
    log_prob = normal.log_prob(x).sum(-1)
    by_hand = sum(0.5 * float(v @ v) + 1.5 * math.log(2 * math.pi) for v in x) / len(x)
    assert nll(log_prob) == pytest.approx(by_hand, rel=1e-12)


def test_nll_of_a_tensor_that_needs_grad() -> None:
    """A metric of a model's output works without detaching first."""
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    assert nll(-w) == 1.5


@pytest.mark.parametrize("num_dims", [1, 2, 784, 3 * 32 * 32])
def test_uniform_density_is_8_bits(num_dims: int) -> None:
    """p(u) = 1 on [0, 1)^D: each of 256 levels has probability 1/256, i.e. 8 bits."""
    assert bits_per_dim(torch.zeros(5), num_dims) == pytest.approx(8.0, abs=1e-12)
    # With 16 levels (4-bit images) the same density is worth 4 bits.
    assert bits_per_dim(torch.zeros(5), num_dims, n_bins=16) == pytest.approx(4.0, abs=1e-12)


def test_one_bit_per_dim_below_uniform() -> None:
    """log p(u) = -D log 2 costs one more bit per dimension: 9 bpd."""
    D = 784
    log_prob = torch.full((3,), -D * math.log(2), dtype=torch.float64)
    assert bits_per_dim(log_prob, D) == pytest.approx(9.0, abs=1e-12)


def test_gaussian_bits_per_dim_by_hand() -> None:
    """A known value: log N(u; 0.5, 0.1^2 I) at u = (0.3, 0.6, 0.5, 0.9), D = 4."""
    u = torch.tensor([0.3, 0.6, 0.5, 0.9], dtype=torch.float64)
    normal = torch.distributions.Normal(torch.tensor(0.5, dtype=torch.float64), 0.1)
    log_p = normal.log_prob(u).sum()
    # By hand: sum of -(u-0.5)^2 / (2 * 0.01) - log(0.1) - 0.5 log(2 pi)
    squares = (0.2**2 + 0.1**2 + 0.0 + 0.4**2) / (2 * 0.01)  # = 10.5
    log_p_hand = -squares - 4 * math.log(0.1) - 2 * math.log(2 * math.pi)
    assert float(log_p) == pytest.approx(log_p_hand, rel=1e-12)
    bpd_hand = (-log_p_hand + 4 * math.log(256)) / (4 * math.log(2))
    assert bits_per_dim(log_p.reshape(1), 4) == pytest.approx(bpd_hand, rel=1e-12)
    assert bpd_hand == pytest.approx(-log_p_hand / (4 * math.log(2)) + 8, rel=1e-12)


def test_bits_per_dim_averages_over_the_batch() -> None:
    log_prob = torch.tensor([-100.0, -300.0], dtype=torch.float64)
    expected = (200.0 + 10 * math.log(256)) / (10 * math.log(2))
    assert bits_per_dim(log_prob, 10) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "bad", [torch.zeros(4, 1), torch.zeros(2, 3), torch.tensor(1.0), torch.zeros(0)]
)
def test_shape_errors(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"log_prob must have shape \(batch,\)") as info:
        nll(bad)
    assert str(tuple(bad.shape)) in str(info.value)
    with pytest.raises(ValueError, match="log_prob"):
        bits_per_dim(bad, 784)


@pytest.mark.parametrize("num_dims", [0, -784])
def test_num_dims_must_be_positive(num_dims: int) -> None:
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(torch.zeros(2), num_dims)


def test_n_bins_must_be_positive() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        bits_per_dim(torch.zeros(2), 4, n_bins=0)


@pytest.mark.parametrize("num_dims", [784.5, "784", True])
def test_num_dims_must_be_an_integer(num_dims) -> None:
    with pytest.raises(ValueError, match="num_dims must be an integer >= 1"):
        bits_per_dim(torch.zeros(2), num_dims)


def test_bits_per_dim_of_a_list_and_of_integers() -> None:
    assert bits_per_dim([0.0, 0.0], 784) == pytest.approx(8.0)  # like nll, any sequence
    with pytest.raises(ValueError, match="log_prob must be floating point, got int64"):
        nll(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
        bits_per_dim(torch.zeros(2), 784, n_bins=2.5)
