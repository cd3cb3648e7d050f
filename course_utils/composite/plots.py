"""Lesson 09's figures: the noise scale of the samples, and the study's front.

The playground's own figure is in :mod:`course_utils.panels.playground`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from course_utils.composite.losses import base_noise, sample_with_grad
from course_utils.core.plots import PALETTE, image_grid
from course_utils.glow.layers import noise_from_latent
from course_utils.glow.model import Glow

__all__ = ["noise_lengths", "noise_scale_figure", "study_front_figure"]

Tensor = torch.Tensor


@torch.no_grad()
def noise_lengths(model: Glow, u: Tensor) -> Tensor:
    """The length of the noise that each image's latent stands for, all levels together.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        u: dequantized images ``(n, C, H, W)`` in ``[0, 1]``.

    Returns:
        ``(n,)``: ``‖ε‖`` with ``ε`` the standard normal noise that the sampler
        would turn into the image (:func:`~course_utils.glow.layers.noise_from_latent`).
    """
    eps = [noise_from_latent(q, z) for q, z in zip(model.flow.q0, model.encode(u), strict=True)]
    return torch.sqrt(sum(e.pow(2).flatten(1).sum(1) for e in eps))


@torch.no_grad()
def noise_scale_figure(
    model: Glow, u: Tensor, temperature: float = 0.7, n: int = 12, seed: int = 3
) -> Figure:
    """Where the two kinds of noise put a sample, and what it looks like there.

    Left: histograms (log scale) of the noise length of real digits' latents
    (:func:`noise_lengths`), of noise with standard deviation ``T`` per
    dimension and of noise of length ``T``. Right: ``n`` samples of each kind,
    drawn from the same directions.
    """
    d = model.num_dims
    real = noise_lengths(model, u)
    kinds = {}
    for scale_noise in (True, False):
        eps = base_noise(model, 500, temperature, scale_noise, torch.Generator().manual_seed(seed))
        kinds[scale_noise] = torch.sqrt(sum(e.pow(2).flatten(1).sum(1) for e in eps))
    fig = plt.figure(figsize=(13, 3.9), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[1.5, 1, 1])
    ax = fig.add_subplot(grid[0])
    bins = np.logspace(math.log10(temperature / 2), math.log10(3 * math.sqrt(d)), 80)
    ax.hist(real.numpy(), bins=bins, color="0.35", alpha=0.8, label=f"{len(real)} real test digits")
    ax.hist(
        kinds[True].numpy(),
        bins=bins,
        color=PALETTE[0],
        alpha=0.8,
        label=f"noise T per dimension (T = {temperature})",
    )
    ax.hist(
        kinds[False].numpy(),
        bins=bins,
        color=PALETTE[1],
        alpha=0.9,
        label=f"noise of length T (T = {temperature})",
    )
    ax.axvline(math.sqrt(d), color="0.2", ls=":", lw=1.2)
    ax.text(
        math.sqrt(d), ax.get_ylim()[1] * 0.95, f" √D = {math.sqrt(d):.0f}", va="top", fontsize=9
    )
    ax.set_xscale("log")
    ax.set(xlabel="length of the base noise ‖ε‖ (log scale)", ylabel="count")
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.set_title("where the noise puts the sample", fontsize=11)
    for k, (scale_noise, title) in enumerate(
        [
            (False, f"noise of length T: ‖ε‖ = {temperature}"),
            (True, f"T per dimension: ‖ε‖ ≈ {temperature * math.sqrt(d):.0f}"),
        ]
    ):
        x = sample_with_grad(
            model, n, temperature, scale_noise, torch.Generator().manual_seed(seed)
        )
        image_grid(x.nan_to_num(0.5).clamp(0, 1), nrow=4, ax=fig.add_subplot(grid[k + 1]))
        fig.axes[-1].set_title(title, fontsize=11)
    return fig


def study_front_figure(report: Mapping[str, Any]) -> Figure:
    """The study's points: what β buys in colour, and what it costs in likelihood and digits.

    Args:
        report: the JSON written by ``benchmarks/composite_study.py``.

    Returns:
        Two panels sharing the colour-gap axis: test bits/dim against the
        colour gap, and the recognisable share against it. Each line joins the
        points of one α as β grows (β printed beside each point); the
        starting model is a star and lesson 09's configurations are labelled
        (a)-(d).
    """
    points = report["points"]
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4), layout="constrained", sharex=True)
    markers = "osD^v"
    for k, alpha in enumerate(report["alphas"]):
        line = [
            p
            for p in points
            if p["point"]["alpha"] == alpha
            and p["point"].get("scale_noise", True)
            and p["point"].get("scaled_nll", True)
        ]
        line.sort(key=lambda p: p["point"]["beta"])
        gap = [p["channel_gap"] for p in line]
        for ax, what in zip(axes, ("bpd", "recognisable"), strict=True):
            ys = [p[what] * (100 if what == "recognisable" else 1) for p in line]
            ax.plot(
                gap,
                ys,
                "-",
                marker=markers[k % len(markers)],
                color=PALETTE[k],
                ms=7,
                label=f"α = {alpha:g}",
            )
            for p, x, y in zip(line, gap, ys, strict=True):
                ax.annotate(
                    f"β={p['point']['beta']:g}",
                    (x, y),
                    xytext=(4, -10),
                    textcoords="offset points",
                    fontsize=7,
                    color=PALETTE[k],
                )
    start = report["start"]
    for ax, what in zip(axes, ("bpd", "recognisable"), strict=True):
        scale = 100 if what == "recognisable" else 1
        ax.plot(
            start["channel_gap"], start[what] * scale, "*", color="k", ms=14, label="starting model"
        )
        for p in points:
            if p["classic"]:
                xy = (p["channel_gap"], p[what] * scale)
                if p["classic"] in "ac":  # not a grid point: drawn on its own
                    ax.plot(*xy, "x", color="k", ms=8, mew=2)
                ax.annotate(
                    f"({p['classic']})",
                    xy,
                    xytext=(-6, 7),
                    textcoords="offset points",
                    fontsize=10,
                    fontweight="bold",
                    ha="right",
                )
        ax.grid(alpha=0.3)
        ax.set_xlabel("colour gap of the samples ‖μ(test) − μ(samples)‖  (smaller: truer colours)")
    axes[0].set_ylabel("test bits/dim  (smaller: likelier digits)")
    axes[1].set_ylabel("recognisable samples at T = 0.7 (%)")
    axes[0].set_title("what the colour term costs in likelihood", fontsize=11)
    axes[1].set_title("and in digits", fontsize=11)
    axes[0].legend(fontsize=8, frameon=False)
    return fig
