"""The moons with a noise level per point: lesson 11's data with a context."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.flows2d.models2d import moons_log_prob
from course_utils.flows2d.targets import noisy_moons


def test_shapes_and_the_drawn_noise_levels(rng) -> None:
    x, c = noisy_moons(500, noise_range=(0.05, 0.2), generator=rng)
    assert x.shape == (500, 2) and c.shape == (500, 1)
    assert x.dtype == c.dtype == torch.float32
    assert float(c.min()) >= 0.05 and float(c.max()) <= 0.2
    assert c.std() > 0.03  # drawn, not fixed
    x, c = noisy_moons(7, noise=0.1)
    assert torch.equal(c, torch.full((7, 1), 0.1))


def test_without_noise_the_points_lie_on_the_moons_arcs(rng) -> None:
    x, _ = noisy_moons(400, noise=0.0, generator=rng)
    upper = (x.norm(dim=1) - 1).abs() < 1e-5
    lower = ((x - torch.tensor([1.0, 0.5])).norm(dim=1) - 1).abs() < 1e-5
    assert bool((upper | lower).all())
    assert 150 < int(upper.sum()) < 250  # half on each moon
    assert bool((x[upper, 1] >= -1e-6).all() and (x[lower, 1] <= 0.5 + 1e-6).all())


@pytest.mark.parametrize("sigma", [0.05, 0.2])
def test_the_points_follow_the_moons_density_of_their_noise(rng, sigma) -> None:
    # the mean log-density under the exact moons density of the same noise beats a wrong noise
    x, _ = noisy_moons(2000, noise=sigma, generator=rng)
    right = moons_log_prob(x, noise=sigma).mean()
    for other in (sigma / 2, sigma * 2):
        assert right > moons_log_prob(x, noise=other).mean()


def test_the_spread_grows_with_the_noise(rng) -> None:
    spreads = []
    for sigma in (0.02, 0.1, 0.3):
        x, _ = noisy_moons(3000, noise=sigma, generator=rng)
        # distance to the nearer arc: its root mean square is about sigma
        d = torch.minimum(
            (x.norm(dim=1) - 1).abs(), ((x - torch.tensor([1.0, 0.5])).norm(dim=1) - 1).abs()
        )
        spreads.append(float(d.pow(2).mean().sqrt()))
    assert spreads == sorted(spreads)
    assert spreads[0] == pytest.approx(0.02, rel=0.2)
    assert not math.isclose(spreads[1], spreads[2], rel_tol=0.3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be"),
        ({"n": 5, "noise": -0.1}, "noise"),
        ({"n": 5, "noise_range": (0.3, 0.1)}, "low <= high"),
        ({"n": 5, "noise_range": (-0.1, 0.1)}, "noise_range low"),
        ({"n": 5, "noise_range": (0.1, float("inf"))}, "noise_range high"),
        ({"n": 5, "noise_range": (0.1,)}, r"\(low, high\)"),
    ],
)
def test_bad_settings_are_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        noisy_moons(**kwargs)
