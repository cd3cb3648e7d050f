"""Lesson 03's panel: one monotone rational-quadratic spline, drawn with its knots.

A rational-quadratic spline (Durkan et al., 2019, *Neural Spline Flows*) maps
``[-B, B]`` onto itself through ``K + 1`` knots ``(x_k, y_k)``, increasing in
both coordinates, with a positive slope ``d_k`` at each; outside ``[-B, B]``
it is the identity ("linear tails", so the slopes at ``±B`` are 1). In bin
``k``, with ``ξ = (z − x_k) / w_k``, width ``w_k``, height ``h_k`` and
``s_k = h_k / w_k``:

    g(z) = y_k + h_k (s_k ξ² + d_k ξ (1 − ξ)) / (s_k + (d_{k+1} + d_k − 2 s_k) ξ (1 − ξ)),

    g'(z) = s_k² (d_{k+1} ξ² + 2 s_k ξ (1 − ξ) + d_k (1 − ξ)²)
            / (s_k + (d_{k+1} + d_k − 2 s_k) ξ (1 − ξ))².

Both numerator and denominator of ``g'`` are positive when every ``d_k`` and
``s_k`` is, which is what makes the spline monotone, hence invertible.

:func:`random_knots` draws knots the way normflows turns a network's raw
outputs into them (softmax widths and heights, softplus slopes), so
:func:`rq_spline` can be checked against ``normflows.utils.splines``;
:func:`spline_figure` draws one spline, its slope and what it makes of a
standard normal; :func:`spline_panel` puts sliders around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from course_utils.core.checks import check_float, check_int
from course_utils.core.plots import PALETTE
from course_utils.core.widgets import Panel, panel, slider

__all__ = [
    "SplineKnots",
    "knots_from_raw",
    "random_knots",
    "rq_spline",
    "rq_log_slope",
    "spline_figure",
    "spline_panel",
]

Tensor = torch.Tensor

#: normflows' smallest bin width, bin height and slope (``normflows.utils.splines``).
MIN_BIN, MIN_DERIVATIVE = 1e-3, 1e-3


@dataclass(frozen=True)
class SplineKnots:
    """The knots of one spline and the raw numbers they were made from.

    Attributes:
        xs, ys: ``(K + 1,)`` increasing knot positions, from ``-B`` to ``B``.
        ds: ``(K + 1,)`` positive slopes at the knots (1 at both ends).
        raw_widths, raw_heights: ``(K,)`` unnormalised widths and heights.
        raw_derivatives: ``(K - 1,)`` unnormalised slopes of the inner knots.
        tail_bound: ``B``.
    """

    xs: Tensor
    ys: Tensor
    ds: Tensor
    raw_widths: Tensor
    raw_heights: Tensor
    raw_derivatives: Tensor
    tail_bound: float

    @property
    def n_bins(self) -> int:
        return len(self.xs) - 1


def _edges(raw: Tensor, bound: float) -> Tensor:
    """Knot positions from raw widths: softmax, a floor of MIN_BIN, cumulative sum, scaled."""
    k = raw.shape[-1]
    share = MIN_BIN + (1 - MIN_BIN * k) * F.softmax(raw, dim=-1)
    edges = F.pad(torch.cumsum(share, dim=-1), (1, 0)) * 2 * bound - bound
    edges[..., 0], edges[..., -1] = -bound, bound
    return edges


def knots_from_raw(
    raw_widths: Tensor, raw_heights: Tensor, raw_derivatives: Tensor, tail_bound: float
) -> SplineKnots:
    """Turn unconstrained numbers (what a conditioner network outputs) into valid knots.

    Args:
        raw_widths, raw_heights: ``(K,)`` any real numbers.
        raw_derivatives: ``(K - 1,)`` any real numbers, for the inner knots.
        tail_bound: ``B > 0``.

    Returns:
        The :class:`SplineKnots` (slopes ``MIN_DERIVATIVE + softplus(raw)``, 1 at ``±B``).
    """
    k = raw_widths.shape[-1]
    if raw_heights.shape[-1] != k or raw_derivatives.shape[-1] != k - 1:
        raise ValueError(
            "raw_widths, raw_heights and raw_derivatives must hold K, K and K - 1 numbers, "
            f"got {raw_widths.shape[-1]}, {raw_heights.shape[-1]}, {raw_derivatives.shape[-1]}"
        )
    bound = check_float("tail_bound", tail_bound, positive=True)
    inner = MIN_DERIVATIVE + F.softplus(raw_derivatives)
    one = torch.ones(1, dtype=inner.dtype)
    ds = torch.cat([one, inner, one])
    return SplineKnots(
        _edges(raw_widths, bound),
        _edges(raw_heights, bound),
        ds,
        raw_widths,
        raw_heights,
        raw_derivatives,
        bound,
    )


def random_knots(
    n_bins: int = 8, tail_bound: float = 3.0, seed: int = 0, spread: float = 0.6
) -> SplineKnots:
    """Knots from standard-normal raw numbers (times ``spread``), seeded.

    >>> knots = random_knots(4, 2.0)
    >>> knots.xs[0].item(), knots.xs[-1].item(), len(knots.ds)
    (-2.0, 2.0, 5)
    """
    n_bins = check_int("n_bins", n_bins, minimum=1)
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    spread = check_float("spread", spread, minimum=0.0)
    raw = spread * torch.randn(3 * n_bins - 1, generator=gen, dtype=torch.float64)
    return knots_from_raw(raw[:n_bins], raw[n_bins : 2 * n_bins], raw[2 * n_bins :], tail_bound)


def _bin_terms(z: Tensor, xs: Tensor, ys: Tensor, ds: Tensor):
    """Per point: ``ξ``, ``y_k``, ``h_k``, ``s_k``, ``d_k``, ``d_{k+1}`` and the inside mask."""
    inside = (z >= xs[0]) & (z <= xs[-1])
    k = (torch.searchsorted(xs, z.detach().contiguous(), right=True) - 1).clamp(0, len(xs) - 2)
    w = xs[k + 1] - xs[k]
    h = ys[k + 1] - ys[k]
    xi = ((z - xs[k]) / w).clamp(0, 1)
    return xi, ys[k], h, h / w, ds[k], ds[k + 1], inside


def rq_spline(z: Tensor, xs: Tensor, ys: Tensor, ds: Tensor) -> Tensor:
    """The spline ``x = g(z)`` through the knots; the identity outside ``[xs[0], xs[-1]]``.

    Args:
        z: points, any shape.
        xs, ys, ds: ``(K + 1,)`` knots and slopes (e.g. from :func:`random_knots`).

    Returns:
        ``g(z)``, the shape of ``z``.
    """
    xi, y0, h, s, d0, d1, inside = _bin_terms(z, xs, ys, ds)
    mixed = xi * (1 - xi)
    g = y0 + h * (s * xi**2 + d0 * mixed) / (s + (d1 + d0 - 2 * s) * mixed)
    return torch.where(inside, g, z)


def rq_log_slope(z: Tensor, xs: Tensor, ys: Tensor, ds: Tensor) -> Tensor:
    """``log g'(z)``, in closed form (0 outside the knots, where ``g`` is the identity)."""
    xi, _, _, s, d0, d1, inside = _bin_terms(z, xs, ys, ds)
    mixed = xi * (1 - xi)
    numerator = s**2 * (d1 * xi**2 + 2 * s * mixed + d0 * (1 - xi) ** 2)
    denominator = (s + (d1 + d0 - 2 * s) * mixed) ** 2
    return torch.where(inside, torch.log(numerator) - torch.log(denominator), torch.zeros_like(z))


@torch.no_grad()
def spline_figure(n_bins: int = 8, tail_bound: float = 3.0, seed: int = 0) -> Figure:
    """One random spline: the map with its knots, its slope, and the density of ``g(z)``.

    Args:
        n_bins: bins ``K``.
        tail_bound: ``B``: the spline acts on ``[-B, B]``, the identity outside.
        seed: which random knots (:func:`random_knots`).

    Returns:
        The figure: three panels with coordinates.
    """
    knots = random_knots(n_bins, tail_bound, seed)
    xs, ys, ds = knots.xs, knots.ys, knots.ds
    lim = tail_bound + 1.5
    z = torch.linspace(-lim, lim, 2001, dtype=torch.float64)
    g, log_slope = rq_spline(z, xs, ys, ds), rq_log_slope(z, xs, ys, ds)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0), layout="constrained")
    for ax in axes[:2]:
        for k in range(0, n_bins, 2):  # every other bin shaded: where each bin lies
            ax.axvspan(xs[k].item(), xs[k + 1].item(), color=PALETTE[5], alpha=0.2, lw=0)
    ax = axes[0]
    ax.plot(z, z, ":", color="0.6", lw=1, label="identity (the tails)")
    ax.plot(z, g, color="black", lw=2, label="$x = g(z)$")
    ax.plot(xs, ys, "o", color=PALETTE[1], ms=6, label=f"{n_bins + 1} knots $(x_k, y_k)$")
    for x0, y0, d in zip(xs.tolist(), ys.tolist(), ds.tolist(), strict=True):
        half = 0.25  # a short tangent: the slope d_k at the knot
        ax.plot([x0 - half, x0 + half], [y0 - half * d, y0 + half * d], color=PALETTE[1], lw=1.5)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="z", ylabel="x", aspect="equal")
    ax.set_title(f"the spline: {n_bins} bins on [−{tail_bound:g}, {tail_bound:g}]", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax = axes[1]
    ax.plot(z, log_slope.exp(), color=PALETTE[0], lw=2)
    ax.plot(xs, ds, "o", color=PALETTE[1], ms=6, label="slopes $d_k$ at the knots")
    ax.set(xlim=(-lim, lim), ylim=(0, None), xlabel="z", ylabel="$g'(z)$")
    ax.set_title("its slope: positive everywhere, so g is invertible", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    ax = axes[2]
    # The density of x = g(z), z ~ N(0, 1), as a curve in its parameter z: no inverse needed.
    log_p = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - log_slope
    ax.fill_between(
        z, torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi), color="0.85", label="N(0, 1)"
    )
    ax.plot(g, log_p.exp(), color=PALETTE[1], lw=2, label="density of $g(z)$")
    ax.set(xlim=(-lim, lim), ylim=(0, None), xlabel="x", ylabel="density")
    ax.set_title("what it makes of a standard normal", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    return fig


def spline_panel() -> Panel:
    """Bins, tail bound and seed → :func:`spline_figure` (redrawn on release)."""
    style = {"style": {"description_width": "initial"}, "continuous_update": False}
    return panel(
        spline_figure,
        {
            "n_bins": W.IntSlider(8, 2, 16, description="bins K", **style),
            "tail_bound": slider(3.0, 0.5, 5.0, 0.25, "tail bound B"),
            "seed": W.IntSlider(0, 0, 30, description="random knots (seed)", **style),
        },
        title="One rational-quadratic spline: its knots, its slope, and a warped Gaussian",
    )
