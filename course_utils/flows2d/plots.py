"""Figures of the 2-D lessons: a change of variables (lesson 01), and flows on the two moons
(lessons 02 and 03): NLL curves, density grids, bases.

Built on :mod:`course_utils.core.plots` (same palette, same density and scatter
panels), with coordinates on every 2D panel so a reader can find the moons.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from course_utils.core.plots import (
    PALETTE,
    density_contour,
    grid_2d,
    loss_curves,
    sample_scatter,
    show_ticks,
)
from course_utils.flows2d.bijections import pushforward_log_prob, standard_normal_log_prob

__all__ = [
    "change_of_area_2d",
    "change_of_variables_1d",
    "nll_curves",
    "density_sample_grid",
    "base_and_flow_densities",
    "conditional_densities_figure",
]


def change_of_variables_1d(
    f,
    n_samples: int = 100_000,
    seed: int = 0,
    zlim: tuple[float, float] = (-4.0, 4.0),
    xlim: tuple[float, float] = (-6.0, 6.0),
) -> Figure:
    """Three panels: the base density, the map ``x = f(z)``, and the result.

    The right panel overlays the histogram of ``f(z)`` for ``n_samples``
    standard-normal ``z`` with the density given by the change-of-variables
    formula; they agree when the formula is right.

    Args:
        f: a 1D bijection with ``forward``, ``inverse`` and ``log_abs_det``
            (e.g. :class:`course_utils.flows2d.bijections.SinhArcsinh`).
        n_samples: samples for the histogram.
        seed: seeds the samples.
        zlim, xlim: the windows of the latent and data axes.

    Returns:
        The figure.
    """

    z_grid = torch.linspace(*zlim, 400)
    x_grid = torch.linspace(*xlim, 600)
    p_x = torch.exp(pushforward_log_prob(x_grid, f.inverse, f.log_abs_det))
    z = torch.randn(n_samples, generator=torch.Generator().manual_seed(seed))
    x = f.forward(z)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    ax = axes[0]
    ax.fill_between(
        z_grid, torch.exp(standard_normal_log_prob(z_grid)), color=PALETTE[0], alpha=0.3
    )
    ax.plot(z_grid, torch.exp(standard_normal_log_prob(z_grid)), color=PALETTE[0], lw=2)
    ax.set(
        title="1. base density $p_Z(z)=\\mathcal{N}(0,1)$", xlabel="z", xlim=zlim, ylim=(0, None)
    )

    ax = axes[1]
    ax.plot(z_grid, f.forward(z_grid), color="black", lw=2)
    ax.axline((0, 0), slope=1, color="0.6", ls=":", lw=1, label="x = z (identity)")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set(title="2. the map $x=f(z)$", xlabel="z", ylabel="x", xlim=zlim, ylim=xlim)
    ax.text(
        0.03,
        0.95,
        "steep: mass spreads out\nflat: mass piles up",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        color="0.35",
    )

    ax = axes[2]
    inside = x[(x > xlim[0]) & (x < xlim[1])]
    edges = torch.linspace(*xlim, 121)
    counts = torch.histc(inside, bins=120, min=xlim[0], max=xlim[1])
    width = (xlim[1] - xlim[0]) / 120
    ax.stairs(
        counts / (n_samples * width),
        edges,
        fill=True,
        color=PALETTE[4],
        alpha=0.5,
        label=f"histogram of f(z), {n_samples:,} samples",
    )
    ax.plot(x_grid, p_x, color=PALETTE[1], lw=2, label="formula $p_Z(f^{-1}(x))\\,|dz/dx|$")
    ax.set(title="3. transformed density $p_X(x)$", xlabel="x", xlim=xlim, ylim=(0, None))
    ax.legend(frameon=False, fontsize=8, loc="best")
    return fig


def change_of_area_2d(maps, lim: float = 3.5, n: int = 160) -> Figure:
    """One panel per 2D linear map: the density it makes of N(0, I) and the unit square's image.

    The outlined parallelogram is the image of the unit square; its area is
    ``|det A|``, and the density is divided by exactly that factor. Ticks and
    faint grid lines one unit apart let a reader measure both shapes: the unit
    square covers one grid cell.

    Args:
        maps: title → :class:`course_utils.flows2d.bijections.Linear2D`.
        lim: the window is ``[-lim, lim]²``.
        n: grid points per axis.

    Returns:
        The figure.
    """

    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.6), layout="constrained")
    # One colour scale for all panels: the peak of each density is 1 / (2π |det A|).
    peak = max(1 / (2 * math.pi * abs(float(torch.linalg.det(f.matrix)))) for f in maps.values())
    levels = np.linspace(0, peak, 21)
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    for ax, (title, f) in zip(np.atleast_1d(axes), maps.items(), strict=True):
        density_contour(
            lambda x, f=f: pushforward_log_prob(x, f.inverse, f.log_abs_det),
            xlim=(-lim, lim),
            ylim=(-lim, lim),
            n=n,
            ax=ax,
            levels=levels,
        )
        img = f.forward(square)
        ax.fill(img[:, 0], img[:, 1], facecolor="none", edgecolor="white", lw=2)
        ax.fill(square[:, 0], square[:, 1], facecolor="none", edgecolor="0.8", lw=1, ls="--")
        det = float(torch.linalg.det(f.matrix))
        ax.set_title(f"{title}\n|det A| = {abs(det):.2f}", fontsize=10)
        ticks = np.arange(-math.floor(lim), math.floor(lim) + 1)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.tick_params(labelsize=8)
        ax.grid(True, color="white", alpha=0.25, lw=0.6)
        ax.set_xlabel("$x_1$")
    np.atleast_1d(axes)[0].set_ylabel("$x_2$")
    mappable = np.atleast_1d(axes)[0].collections[0]
    fig.colorbar(mappable, ax=axes, shrink=0.8, label="density $p_X(x)$", format="%.2f")
    return fig


def nll_curves(
    histories: Mapping[str, object],
    floor: float | None = None,
    train: bool = True,
    colors: Mapping[str, str] | None = None,
    styles: Mapping[str, str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.5, 4.4),
) -> Figure:
    """NLL per epoch of several training runs, one colour per run.

    With ``train``, each run has a solid training curve (the mean over the
    epoch's batches) and a dashed held-out curve in the same colour; without,
    only the held-out curves, styled by ``styles``. The y range starts just
    under ``floor`` (or the lowest value) and cuts off the first epochs' spikes.

    Args:
        histories: name → a :class:`course_utils.core.train.History` with ``eval``
            (held-out NLL per epoch) and ``epoch_loss``.
        floor: the data's entropy, drawn as a dotted line.
        train: draw the training curves too.
        colors: name → colour (default: the palette in order).
        styles: name → line style of the held-out curve (default dashed with
            ``train``, solid without).
        title: the title.
        figsize: the figure size.

    Returns:
        The figure.
    """
    curves, line_styles, line_colors = {}, {}, {}
    for k, (name, h) in enumerate(histories.items()):
        color = (colors or {}).get(name, PALETTE[k % len(PALETTE)])
        held_out = f"{name}: held-out" if train else name
        if train:
            curves[f"{name}: train"] = h.epoch_loss
            line_colors[f"{name}: train"] = color
        curves[held_out] = h.eval
        line_colors[held_out] = color
        line_styles[held_out] = (styles or {}).get(name, "--" if train else "-")
    values = [v for c in curves.values() for v in c]
    low = min(values + ([floor] if floor is not None else [])) - 0.03
    top = max(h.eval[0] for h in histories.values()) + 0.05
    fig = loss_curves(
        curves,
        styles=line_styles,
        colors=line_colors,
        reference=None if floor is None else (floor, f"entropy of the data ({floor:.2f} nats)"),
        ylabel="NLL (nats, lower is better)",
        ylim=(low, top),
        title=title,
    )
    fig.set_size_inches(*figsize)
    return fig


def density_sample_grid(
    log_probs: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    samples: Mapping[str, torch.Tensor],
    data: torch.Tensor,
    xlim: tuple[float, float] = (-1.5, 2.5),
    ylim: tuple[float, float] = (-1.0, 1.5),
    n: int = 200,
) -> Figure:
    """One column per model: its density on top (one colour scale for all), its samples below.

    Args:
        log_probs: name → log-density ``(m, 2) -> (m,)``.
        samples: name → ``(k, 2)`` samples of the same model.
        data: ``(m, 2)`` points drawn in grey under the samples (e.g. held-out data).
        xlim, ylim: the window of every panel.
        n: grid points per axis.

    Returns:
        The figure, with coordinates on every panel and a shared colour bar.
    """
    cols = len(log_probs)
    fig, axes = plt.subplots(
        2, cols, figsize=(3.75 * cols, 5.0), layout="constrained", squeeze=False
    )
    _, _, grid = grid_2d(xlim, ylim, n)
    with torch.no_grad():
        peak = max(
            torch.cat([lp(c) for c in grid.split(8192)]).exp().max().item()
            for lp in log_probs.values()
        )
    levels = np.linspace(0, peak, 25)
    for col, (name, log_prob) in enumerate(log_probs.items()):
        density_contour(log_prob, xlim, ylim, n=n, ax=axes[0, col], levels=levels)
        axes[0, col].set_title(f"{name}\ndensity $p(x)$", fontsize=10)
        sample_scatter(data, ax=axes[1, col], color="0.65", xlim=xlim, ylim=ylim, label="data")
        pts = samples[name]
        sample_scatter(
            pts,
            ax=axes[1, col],
            color=PALETTE[col % len(PALETTE)],
            xlim=xlim,
            ylim=ylim,
            label="samples",
        )
        count = f"{len(pts):,}".replace(",", " ")  # "2 000"
        axes[1, col].set_title(f"{name}: {count} samples", fontsize=10)
        axes[1, col].legend(loc="lower left", fontsize=8, markerscale=3, frameon=False)
    for ax in axes.flat:
        ax.set(xlabel="$x_1$", ylabel="$x_2$")
        show_ticks(ax)
    fig.colorbar(
        axes[0, 0].collections[-1],
        ax=axes[0, :],
        label="density $p(x)$",
        ticks=np.arange(0, peak, 0.2 if peak < 3 else 1.0),
        format="%.1f",
        shrink=0.9,
    )
    return fig


def base_and_flow_densities(
    models: Mapping[str, object],
    zlim: tuple[float, float] = (-4.5, 4.5),
    xlim: tuple[float, float] = (-1.5, 2.5),
    ylim: tuple[float, float] = (-1.0, 1.5),
    n: int = 200,
) -> Figure:
    """For normflows models: the base density ``q0`` in latent space above the model's density.

    Args:
        models: title → ``nf.NormalizingFlow`` (``q0.log_prob`` and ``log_prob``).
        zlim: the latent window (both axes).
        xlim, ylim: the data window.
        n: grid points per axis.

    Returns:
        The figure: each row on its own colour scale, with coordinates.
    """
    cols = len(models)
    fig, axes = plt.subplots(2, cols, figsize=(5 * cols, 7.6), layout="constrained", squeeze=False)
    with torch.no_grad():
        zgrid, xgrid = grid_2d(zlim, zlim, n)[2], grid_2d(xlim, ylim, n)[2]
        base_peak = max(m.q0.log_prob(zgrid).exp().max().item() for m in models.values())
        data_peak = max(m.log_prob(xgrid).exp().max().item() for m in models.values())
    for col, (title, model) in enumerate(models.items()):
        levels = np.linspace(0, base_peak, 25)
        density_contour(model.q0.log_prob, zlim, zlim, n=n, ax=axes[0, col], levels=levels)
        axes[0, col].set_title(f"{title}: $p_Z(z)$ in latent space", fontsize=11)
        axes[0, col].set(xlabel="$z_1$", ylabel="$z_2$")
        levels = np.linspace(0, data_peak, 25)
        density_contour(model.log_prob, xlim, ylim, n=n, ax=axes[1, col], levels=levels)
        axes[1, col].set_title(f"{title}: $p(x)$ in data space", fontsize=11)
        axes[1, col].set(xlabel="$x_1$", ylabel="$x_2$")
    show_ticks(*axes.flat)
    fig.colorbar(axes[0, 0].collections[-1], ax=axes[0, :], label="base density", format="%.2f")
    fig.colorbar(axes[1, 0].collections[-1], ax=axes[1, :], label="density $p(x)$", format="%.1f")
    return fig


# ------------------------------------------------- lesson 11: one flow, many contexts


def conditional_densities_figure(
    flow: torch.nn.Module,
    contexts: Sequence[float],
    data: Mapping[float, torch.Tensor] | None = None,
    xlim: tuple[float, float] = (-1.5, 2.5),
    ylim: tuple[float, float] = (-1.0, 1.5),
    n_samples: int = 1000,
    labels: Sequence[str] | None = None,
    n: int = 150,
    seed: int = 0,
) -> Figure:
    """A conditional 2-D flow at several contexts: its density ``p(x | c)`` and its samples.

    One column per context; the top row is the density on a grid (each panel
    its own colour scale: a small noise level makes a much higher peak), the
    bottom row ``n_samples`` samples of the flow given that context, over the
    real data of that context in light grey when ``data`` has it.

    Args:
        flow: a :class:`~course_utils.flows2d.conditional.ConditionalFlow` with a
            one-number context (``log_prob(x, c)``, ``sample(n, c, generator=...)``).
        contexts: the context values, e.g. noise levels ``[0.03, 0.1, 0.2]``.
        data: context → points ``(m, 2)`` drawn with that context, optional.
        xlim, ylim: the window of every panel.
        n_samples: samples per context, >= 1.
        labels: one column title per context; default "σ = 0.05".
        n: grid points per axis of the densities.
        seed: seeds the samples.

    Raises:
        ValueError: no contexts, a flow whose context is not one number, labels
            of another length, or data points that are not ``(m, 2)``.
    """
    if getattr(flow, "context_dim", None) != 1:
        raise ValueError(
            "flow must be a ConditionalFlow with a one-number context (context_dim=1), got "
            f"context_dim={getattr(flow, 'context_dim', None)}"
        )
    values = [float(c) for c in contexts]
    if not values:
        raise ValueError("contexts must hold at least one context value")
    if labels is None:
        labels = [f"σ = {c:g}" for c in values]
    if len(labels) != len(values):
        raise ValueError(
            f"labels must have one title per context ({len(values)}), got {len(labels)}"
        )
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    data = dict(data or {})
    for c, pts in data.items():
        if not isinstance(pts, torch.Tensor) or pts.ndim != 2 or pts.shape[1] != 2:
            shape = tuple(pts.shape) if isinstance(pts, torch.Tensor) else type(pts).__name__
            raise ValueError(f"data[{c}] must be points (m, 2), got {shape}")
    k = len(values)
    fig, axes = plt.subplots(2, k, figsize=(3.2 * k, 5.6), layout="constrained", squeeze=False)
    was_training = flow.training
    flow.eval()
    try:
        for j, (c, label) in enumerate(zip(values, labels, strict=True)):
            density_contour(
                lambda pts, c=c: flow.log_prob(pts, [c]), xlim, ylim, n=n, ax=axes[0, j]
            )
            axes[0, j].set_title(f"{label}: density p(x | c)", fontsize=10)
            if c in data:
                sample_scatter(
                    data[c], ax=axes[1, j], color="0.7", xlim=xlim, ylim=ylim, label="data"
                )
            samples = flow.sample(n_samples, [c], generator=torch.Generator().manual_seed(seed))
            sample_scatter(
                samples, ax=axes[1, j], color=PALETTE[0], xlim=xlim, ylim=ylim, label="flow samples"
            )
            axes[1, j].set_title(f"{label}: {n_samples:,} samples", fontsize=10)
            axes[1, j].legend(loc="lower left", fontsize=8, markerscale=3, frameon=False)
    finally:
        flow.train(was_training)
    for ax in axes.flat:
        ax.set(xlabel="$x_1$", ylabel="$x_2$")
        show_ticks(ax)
    return fig
