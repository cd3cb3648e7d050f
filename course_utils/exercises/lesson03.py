"""Lesson 03's exercises: one rational-quadratic spline and its log-slope.

The oracles: the spline must pass through its knots with the slopes ``d_k``
there (checked by finite differences), be the identity outside ``[-B, B]``,
and agree with ``normflows.utils.splines``, which turns the same raw numbers
into the same knots; the log-slope must match autograd's derivative of the
course's spline.
"""

from __future__ import annotations

import normflows as nf
import torch

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close
from course_utils.panels.spline import random_knots, rq_log_slope, rq_spline

Tensor = torch.Tensor


def _bins(z, xs):
    return (torch.searchsorted(xs, z.detach().contiguous(), right=True) - 1).clamp(0, len(xs) - 2)


# ---------------------------------------------------------------- 03.1 the spline


def _spline_linear(z, xs, ys, ds):
    """Joins the knots by straight lines: monotone, but not the rational-quadratic curve."""
    k = _bins(z, xs)
    xi = ((z - xs[k]) / (xs[k + 1] - xs[k])).clamp(0, 1)
    inside = (z >= xs[0]) & (z <= xs[-1])
    return torch.where(inside, ys[k] + (ys[k + 1] - ys[k]) * xi, z)


def _spline_no_tails(z, xs, ys, ds):
    """Forgets the tails: clamps z to [-B, B], so the map is flat outside, not the identity."""
    return rq_spline(z.clamp(xs[0], xs[-1]), xs, ys, ds)


def _spline_left_slope_twice(z, xs, ys, ds):
    """Takes d_k for d_(k+1) too: the slopes at the right knots of the bins come out wrong."""
    k = _bins(z, xs)
    w, h = xs[k + 1] - xs[k], ys[k + 1] - ys[k]
    s, d0 = h / w, ds[k]
    xi = ((z - xs[k]) / w).clamp(0, 1)
    mixed = xi * (1 - xi)
    g = ys[k] + h * (s * xi**2 + d0 * mixed) / (s + (2 * d0 - 2 * s) * mixed)
    return torch.where((z >= xs[0]) & (z <= xs[-1]), g, z)


@exercise(
    "03.1",
    "a rational-quadratic spline",
    reference=rq_spline,
    wrong=[_spline_linear, _spline_no_tails, _spline_left_slope_twice],
    hint=(
        "First find each point's bin: `k = torch.searchsorted(xs, z, right=True) - 1`, "
        "clamped to `0 … K - 1` so that the right edge belongs to the last bin. Then gather "
        "`xs[k]`, `xs[k + 1]`, `ys[k]`, `ys[k + 1]`, `ds[k]`, `ds[k + 1]` and compute `w`, `h`, "
        "`s = h / w` and `ξ = (z - xs[k]) / w`.\n\n"
        "Write the formula with `ξ (1 - ξ)` computed once. Outside `[xs[0], xs[-1]]` the map is "
        "the identity: `torch.where(inside, g, z)`."
    ),
    answer=(
        "`k = (searchsorted(xs, z, right=True) - 1).clamp(0, K - 1)`; `w = xs[k+1] - xs[k]`, "
        "`h = ys[k+1] - ys[k]`, `s = h / w`, `ξ = ((z - xs[k]) / w).clamp(0, 1)`; "
        "`g = ys[k] + h (s ξ² + d_k ξ(1-ξ)) / (s + (d_{k+1} + d_k - 2s) ξ(1-ξ))`; return "
        "`torch.where((z >= xs[0]) & (z <= xs[-1]), g, z)`."
    ),
)
def _check_spline(fn) -> None:
    for n_bins, bound, seed in ((4, 2.0, 0), (8, 3.0, 1), (11, 1.5, 2)):
        knots = random_knots(n_bins, bound, seed, spread=1.0)
        xs, ys, ds = knots.xs, knots.ys, knots.ds
        where = f"for {n_bins} bins on [-{bound:g}, {bound:g}]"
        got_knots = fn(xs.clone(), xs, ys, ds)
        expect_close(got_knots, ys, f"g at the knots {where} (should be the y_k)", atol=1e-8)
        z = torch.linspace(-bound - 1, bound + 1, 501, dtype=torch.float64)
        g = fn(z, xs, ys, ds)
        if not isinstance(g, torch.Tensor) or g.shape != z.shape:
            shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
            raise ExerciseFailed(f"g(z) {where} should have the shape of z, (501,), got {shape}")
        outside = z.abs() > bound
        expect_close(g[outside], z[outside], f"g outside the knots {where} (the identity)")
        # slopes at the inner knots, by central differences
        eps = 1e-8  # g'' jumps at a knot, so the step must be small (float64 allows it)
        slopes = (fn(xs[1:-1] + eps, xs, ys, ds) - fn(xs[1:-1] - eps, xs, ys, ds)) / (2 * eps)
        expect_close(slopes, ds[1:-1], f"the slopes of g at the knots {where}", atol=1e-4)
        # normflows makes the same knots from the same raw numbers
        n = len(z)
        want, _ = nf.utils.splines.unconstrained_rational_quadratic_spline(
            z,
            knots.raw_widths.expand(n, -1),
            knots.raw_heights.expand(n, -1),
            knots.raw_derivatives.expand(n, -1),
            tail_bound=bound,
        )
        expect_close(g, want, f"g(z) {where}, against normflows' spline", atol=1e-8)


# --------------------------------------------------------------- 03.2 its log-slope


def _log_slope_no_square(z, xs, ys, ds):
    """Leaves the denominator unsquared."""
    k = _bins(z, xs)
    w, h = xs[k + 1] - xs[k], ys[k + 1] - ys[k]
    s, d0, d1 = h / w, ds[k], ds[k + 1]
    xi = ((z - xs[k]) / w).clamp(0, 1)
    mixed = xi * (1 - xi)
    num = s**2 * (d1 * xi**2 + 2 * s * mixed + d0 * (1 - xi) ** 2)
    inside = (z >= xs[0]) & (z <= xs[-1])
    return torch.where(inside, torch.log(num) - torch.log(s + (d1 + d0 - 2 * s) * mixed), 0 * z)


def _log_slope_missing_s2(z, xs, ys, ds):
    """Forgets the factor s² in front: the slope is off by s² in every bin."""
    k = _bins(z, xs)
    s = (ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k])
    inside = (z >= xs[0]) & (z <= xs[-1])
    return rq_log_slope(z, xs, ys, ds) - torch.where(inside, 2 * torch.log(s), 0 * z)


def _log_slope_not_log(z, xs, ys, ds):
    """Returns the slope g'(z) itself, not its logarithm."""
    return rq_log_slope(z, xs, ys, ds).exp()


@exercise(
    "03.2",
    "the spline's log-slope",
    reference=rq_log_slope,
    wrong=[_log_slope_no_square, _log_slope_missing_s2, _log_slope_not_log],
    hint=(
        "Differentiate `g` in `ξ` with the quotient rule, then multiply by `dξ/dz = 1 / w`. "
        "Everything simplifies if you write the result over the square of the denominator "
        "`s + (d_{k+1} + d_k - 2s) ξ(1-ξ)`.\n\n"
        "The numerator comes out as `s²` times a sum of three positive terms, one with `ξ²`, "
        "one with `ξ(1-ξ)` and one with `(1-ξ)²`. Outside the knots the log-slope is 0."
    ),
    answer=(
        "`g'(z) = s² (d_{k+1} ξ² + 2 s ξ(1-ξ) + d_k (1-ξ)²) / (s + (d_{k+1} + d_k - 2s) "
        "ξ(1-ξ))²` inside `[xs[0], xs[-1]]` and 1 outside; return its log. Every term is "
        "positive when the slopes and `s` are, which is why the spline is monotone."
    ),
)
def _check_log_slope(fn) -> None:
    for n_bins, bound, seed in ((4, 2.0, 3), (8, 3.0, 4), (11, 1.5, 5)):
        knots = random_knots(n_bins, bound, seed, spread=1.0)
        xs, ys, ds = knots.xs, knots.ys, knots.ds
        z = torch.linspace(-bound - 1, bound + 1, 401, dtype=torch.float64, requires_grad=True)
        (slope,) = torch.autograd.grad(rq_spline(z, xs, ys, ds).sum(), z)
        got = fn(z.detach(), xs, ys, ds)
        expect(
            isinstance(got, torch.Tensor) and got.shape == z.shape,
            f"the log-slope for {n_bins} bins should have the shape of z, (401,)",
        )
        expect_close(
            got, slope.log(), f"log g'(z) for {n_bins} bins on [-{bound:g}, {bound:g}] (autograd)"
        )
