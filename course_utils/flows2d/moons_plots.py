"""Figures of 2D flows on the two moons (lessons 02 and 03): NLL curves, density grids, bases.

Built on :mod:`course_utils.core.plots` (same palette, same density and scatter
panels), with coordinates on every 2D panel so a reader can find the moons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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

__all__ = [
    "nll_curves",
    "density_sample_grid",
    "base_and_flow_densities",
]


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
