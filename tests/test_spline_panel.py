"""Lesson 03's panel: the rational-quadratic spline, its figure and its widgets, headless."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import normflows as nf
import numpy as np
import pytest
import torch

from course_utils.core.widgets import NOT_RUNNING_HINT, Panel
from course_utils.panels.spline import (
    knots_from_raw,
    random_knots,
    rq_log_slope,
    rq_spline,
    spline_figure,
    spline_panel,
)


@pytest.mark.parametrize(("n_bins", "bound", "seed"), [(1, 1.0, 0), (5, 2.5, 1), (16, 4.0, 2)])
def test_spline_matches_normflows_in_both_outputs(n_bins: int, bound: float, seed: int) -> None:
    knots = random_knots(n_bins, bound, seed, spread=1.5)
    z = torch.linspace(-bound - 2, bound + 2, 1001, dtype=torch.float64)
    n = len(z)
    want, want_log_det = nf.utils.splines.unconstrained_rational_quadratic_spline(
        z,
        knots.raw_widths.expand(n, -1),
        knots.raw_heights.expand(n, -1),
        knots.raw_derivatives.expand(n, -1),
        tail_bound=bound,
    )
    torch.testing.assert_close(rq_spline(z, knots.xs, knots.ys, knots.ds), want)
    torch.testing.assert_close(rq_log_slope(z, knots.xs, knots.ys, knots.ds), want_log_det)


def test_log_slope_is_autograds_and_the_spline_is_monotone() -> None:
    knots = random_knots(8, 3.0, seed=4, spread=2.0)
    z = torch.linspace(-5, 5, 2001, dtype=torch.float64, requires_grad=True)
    g = rq_spline(z, knots.xs, knots.ys, knots.ds)
    (slope,) = torch.autograd.grad(g.sum(), z)
    torch.testing.assert_close(rq_log_slope(z.detach(), knots.xs, knots.ys, knots.ds), slope.log())
    assert (g[1:] > g[:-1]).all()
    # through the knots, with the identity outside [-B, B]
    torch.testing.assert_close(rq_spline(knots.xs, knots.xs, knots.ys, knots.ds), knots.ys)
    outside = z.detach().abs() > 3.0
    torch.testing.assert_close(g.detach()[outside], z.detach()[outside])


def test_knots_are_valid_and_bad_input_is_refused() -> None:
    knots = random_knots(6, 2.0, seed=0)
    for edges in (knots.xs, knots.ys):
        assert (edges[1:] > edges[:-1]).all()
        assert edges[0].item() == -2.0 and edges[-1].item() == 2.0
    assert knots.ds[0].item() == knots.ds[-1].item() == pytest.approx(1.0)  # linear tails
    assert (knots.ds > 0).all() and knots.n_bins == 6
    with pytest.raises(ValueError, match="tail_bound must be"):
        random_knots(4, 0.0)
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
        random_knots(0, 1.0)
    with pytest.raises(ValueError, match="K, K and K - 1 numbers, got 3, 3, 3"):
        knots_from_raw(torch.zeros(3), torch.zeros(3), torch.zeros(3), 1.0)


def test_figure_draws_the_knots_and_a_density_that_integrates_to_one() -> None:
    fig = spline_figure(n_bins=5, tail_bound=2.0, seed=3)
    the_map, slope, density = fig.axes
    knots = random_knots(5, 2.0, 3)
    dots = [line for line in the_map.lines if line.get_marker() == "o"][0]
    np.testing.assert_allclose(dots.get_xdata(), knots.xs.numpy())
    np.testing.assert_allclose(dots.get_ydata(), knots.ys.numpy())
    assert "5 bins" in the_map.get_title() and len(the_map.get_xticklabels()) > 0
    xs, p = density.lines[-1].get_data()  # the density of g(z), drawn along z
    assert np.trapezoid(p, xs) == pytest.approx(
        math.erf(3.5 / math.sqrt(2)), abs=1e-3
    )  # the mass of z in the drawn window [-B - 1.5, B + 1.5]
    plt.close(fig)


def test_panel_redraws_when_a_slider_moves() -> None:
    p = spline_panel()
    assert isinstance(p, Panel) and p.runs == 1
    assert all(not w.continuous_update for w in p.controls.values())
    p.controls["n_bins"].value = 3
    p.controls["tail_bound"].value = 1.5
    assert p.runs == 3
    assert "3 bins on [−1.5, 1.5]" in p.last_figure.axes[0].get_title()
    p.controls["seed"].value = 7
    assert p.runs == 4
    assert p._repr_mimebundle_()["text/plain"] == NOT_RUNNING_HINT
    plt.close("all")
