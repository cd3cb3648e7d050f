"""Static figures: densities, samples, loss curves and image grids.

Every function draws on a given ``ax`` (or makes its own figure) and returns
the figure, so lessons compose them into grids; :func:`save_figure` writes a
figure under ``figures/`` (see :func:`course_utils.core.config.figures_dir`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import (
    AutoLocator,
    LogFormatterSciNotation,
    LogLocator,
    NullFormatter,
    NullLocator,
)

from course_utils.core import config

__all__ = [
    "PALETTE",
    "DENSITY_CMAP",
    "figure_and_axes",
    "finish_axes",
    "save_figure",
    "grid_2d",
    "density_contour",
    "sample_scatter",
    "loss_curves",
    "image_grid",
    "image_panels",
    "image_rows",
    "show_ticks",
    "density_sample_rows",
    "loglog_curves",
    "density_row",
    "grouped_bars",
    "smoothed",
    "log_ticks",
]

# One palette for the whole course, colour-blind friendly (Okabe-Ito).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"]
DENSITY_CMAP = "magma"


def figure_and_axes(
    ax: Axes | None, figsize: tuple[float, float] = (4.5, 4)
) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure of ``figsize`` with one axes when ``ax`` is None."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def finish_axes(ax: Axes, title: str | None = None, **legend) -> None:
    """The course's finish for a line or histogram plot: title, light grid, frameless legend.

    Keyword arguments go to ``ax.legend`` (e.g. ``loc``, ``bbox_to_anchor``).
    """
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(**{"frameon": False, "fontsize": 9, **legend})


def save_figure(fig: Figure, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` and return the path.

    Args:
        fig: the figure.
        name: file name without extension, e.g. ``"02_nll_curves"``.
        dpi: resolution; 110 keeps committed PNGs small yet sharp.
    """
    folder = config.figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def grid_2d(
    xlim: tuple[float, float], ylim: tuple[float, float], n: int = 200
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A regular ``n × n`` grid: returns ``(xx, yy, points)`` with points ``(n*n, 2)``."""
    xs = torch.linspace(*xlim, n)
    ys = torch.linspace(*ylim, n)
    xx, yy = torch.meshgrid(xs, ys, indexing="xy")
    return xx, yy, torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


@torch.no_grad()
def density_contour(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float] = (-1.5, 2.5),
    ylim: tuple[float, float] = (-1.0, 1.5),
    n: int = 200,
    ax: Axes | None = None,
    title: str | None = None,
    levels: int | Sequence[float] = 30,
) -> Figure:
    """Filled contours of ``exp(log_prob)`` on a grid.

    Args:
        log_prob: maps points ``(m, 2)`` to log-densities ``(m,)``; called in
            chunks with gradients off (the model's device is handled by the caller).
        xlim, ylim: the window.
        n: grid points per axis.
        ax: draw here, or on a new figure.
        title: optional title.
        levels: number of contour levels, or the levels themselves (share them
            between panels to compare densities on one colour scale).

    Returns:
        The figure.
    """
    fig, ax = figure_and_axes(ax)
    xx, yy, pts = grid_2d(xlim, ylim, n)
    lp = torch.cat([log_prob(chunk).cpu() for chunk in pts.split(8192)])
    dens = torch.exp(lp).reshape(n, n).nan_to_num(0.0)
    ax.contourf(
        xx.numpy(), yy.numpy(), dens.numpy(), levels=levels, cmap=DENSITY_CMAP, extend="max"
    )
    ax.set(xlim=xlim, ylim=ylim, aspect="equal", xticks=[], yticks=[])
    if title:
        ax.set_title(title)
    return fig


def sample_scatter(
    samples: torch.Tensor | np.ndarray,
    ax: Axes | None = None,
    title: str | None = None,
    color: str = PALETTE[0],
    xlim: tuple[float, float] | None = (-1.5, 2.5),
    ylim: tuple[float, float] | None = (-1.0, 1.5),
    s: float = 3.0,
    label: str | None = None,
) -> Figure:
    """A scatter of 2D points ``(n, 2)``."""
    fig, ax = figure_and_axes(ax)
    pts = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else samples
    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=0.5, color=color, linewidths=0, label=label)
    if xlim is not None:
        ax.set_xlim(xlim)
    if ylim is not None:
        ax.set_ylim(ylim)
    ax.set(aspect="equal", xticks=[], yticks=[])
    if title:
        ax.set_title(title)
    return fig


def loss_curves(
    curves: Mapping[str, Sequence[float]],
    ax: Axes | None = None,
    xlabel: str = "epoch",
    ylabel: str = "NLL (nats)",
    title: str | None = None,
    reference: tuple[float, str] | None = None,
    styles: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
    ylim: tuple[float, float] | None = None,
    x_every: float = 1,
    x: Sequence[float] | None = None,
) -> Figure:
    """Several loss curves on one axis, in the course palette.

    Args:
        curves: label → values (x is 1, 2, ...).
        ax: draw here, or on a new figure.
        xlabel, ylabel, title: axis text.
        reference: optional ``(value, label)`` drawn as a dashed horizontal line,
            e.g. the data's entropy.
        styles: label → matplotlib line style (default solid).
        colors: label → colour (default: the palette in order), e.g. to give a
            model's train and held-out curves one colour and two styles.
        ylim: the y range, e.g. to cut off the first epochs' large losses.
        x_every: the spacing of the x values: value ``k`` (from 1) is drawn at
            ``k · x_every``, e.g. the number of steps between two evaluations.
        x: the x value of every point instead (e.g. the step of each
            evaluation), one per value of each curve.

    Returns:
        The figure.
    """
    fig, ax = figure_and_axes(ax, (6, 4))
    for k, (label, values) in enumerate(curves.items()):
        xs = np.arange(1, len(values) + 1) * x_every if x is None else np.asarray(x)
        if len(xs) != len(values):
            raise ValueError(f"x has {len(xs)} values but the curve {label!r} has {len(values)}")
        ls = (styles or {}).get(label, "-")
        color = (colors or {}).get(label, PALETTE[k % len(PALETTE)])
        ax.plot(xs, values, ls, color=color, label=label, lw=2)
    if reference is not None:
        ax.axhline(reference[0], color="0.4", ls=":", lw=1.5, label=reference[1])
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if ylim is not None:
        ax.set_ylim(ylim)
    finish_axes(ax, title)
    return fig


def image_grid(
    images: torch.Tensor,
    nrow: int = 8,
    ax: Axes | None = None,
    title: str | None = None,
    pad: int = 2,
) -> Figure:
    """Tile images ``(n, C, H, W)`` (or ``(n, H, W)``) with values in [0, 1].

    Grey images use a grey colour map, RGB images are shown as they are.
    """
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (n, 1|3, H, W), got {tuple(images.shape)}")
    imgs = images.detach().cpu().float().clamp(0, 1)
    n, c, h, w = imgs.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    canvas = torch.ones(c, rows * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        canvas[:, top : top + h, left : left + w] = imgs[i]
    fig, ax = figure_and_axes(ax, (ncol * 0.6 + 0.4, rows * 0.6 + 0.4))
    if c == 1:
        ax.imshow(canvas[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(canvas.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def image_panels(panels: Mapping[str, torch.Tensor], nrow: int = 6, width: float = 3.0) -> Figure:
    """Image grids side by side, one per titled panel (e.g. samples at four temperatures).

    Args:
        panels: title → images ``(n, C, H, W)`` in [0, 1].
        nrow: images per row of each grid.
        width: inches per panel.
    """
    n = len(panels)
    rows = max(-(-len(v) // nrow) for v in panels.values())
    fig, axes = plt.subplots(
        1, n, figsize=(width * n, width * rows / nrow + 0.5), layout="constrained", squeeze=False
    )
    for ax, (title, images) in zip(axes[0], panels.items(), strict=True):
        image_grid(images, nrow=nrow, ax=ax)
        ax.set_title(title, fontsize=11)
    return fig


def image_rows(
    rows: Mapping[str, torch.Tensor], height: float = 0.75, label_width: float = 2.2
) -> Figure:
    """One labelled row of images per entry (e.g. interpolations, or one scale resampled).

    Args:
        rows: label → images ``(n, C, H, W)`` in [0, 1], drawn left to right.
        height: inches per row.
        label_width: inches kept on the left for the labels.
    """
    n_cols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(
        len(rows),
        1,
        figsize=(label_width + n_cols * height, len(rows) * height + 0.2),
        layout="constrained",
        squeeze=False,
    )
    for ax, (label, images) in zip(axes[:, 0], rows.items(), strict=True):
        image_grid(images, nrow=n_cols, ax=ax, pad=1)
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    return fig


# ------------------------------------------- added for lessons 04-06: ticks, rows, log-log


def show_ticks(*axes: Axes, fontsize: float = 8) -> None:
    """Give 2D density and scatter axes their coordinate tick labels back.

    :func:`density_contour` and :func:`sample_scatter` draw bare axes; with
    ticks a reader can say *where* a mode or a moon is (e.g. "near x₁ = 2").
    """
    for ax in axes:
        ax.xaxis.set_major_locator(AutoLocator())
        ax.yaxis.set_major_locator(AutoLocator())
        ax.tick_params(labelsize=fontsize)


def density_sample_rows(
    models: Mapping[str, object],
    data: torch.Tensor,
    xlim: tuple[float, float] = (-1.5, 2.5),
    ylim: tuple[float, float] = (-1.0, 1.5),
    n: int = 200,
    n_samples: int = 2000,
    seed: int = 0,
    colors: Sequence[str] = PALETTE,
) -> Figure:
    """One row per model: its density on a grid (one colour scale for all) and its samples.

    Args:
        models: name → a 2D model with ``log_prob(x)`` and ``sample(n, generator=...)``.
        data: ``(m, 2)`` points drawn in grey under the samples (e.g. held-out data).
        xlim, ylim: the window of every panel.
        n: grid points per axis of the densities.
        n_samples: samples drawn from each model.
        seed: seeds the samples.
        colors: one colour per model for its samples.

    Returns:
        The figure, with a shared colour bar for the densities.
    """
    rows = len(models)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.3 * rows), layout="constrained", squeeze=False)
    _, _, grid = grid_2d(xlim, ylim, n)
    with torch.no_grad():
        peak = max(
            torch.cat([m.log_prob(c) for c in grid.split(8192)]).exp().max().item()
            for m in models.values()
        )
    levels = np.linspace(0, peak, 25)
    for row, (name, model) in enumerate(models.items()):
        density_contour(model.log_prob, xlim, ylim, n=n, ax=axes[row, 0], levels=levels)
        axes[row, 0].set_title(f"{name}: density $p(x)$")
        samples = model.sample(n_samples, generator=torch.Generator().manual_seed(seed))
        sample_scatter(data, ax=axes[row, 1], color="0.6", xlim=xlim, ylim=ylim, label="data")
        sample_scatter(
            samples,
            ax=axes[row, 1],
            color=colors[row % len(colors)],
            xlim=xlim,
            ylim=ylim,
            label="model samples",
        )
        axes[row, 1].set_title(f"{name}: {n_samples:,} samples".replace(",", " "))
        axes[row, 1].legend(loc="lower left", fontsize=8, markerscale=3, frameon=False)
    for ax in axes.flat:
        ax.set(xlabel="$x_1$", ylabel="$x_2$")
        show_ticks(ax)
    step = 0.1 if peak < 1.5 else 0.5
    fig.colorbar(
        axes[0, 0].collections[-1],
        ax=axes[:, 0],
        label="density $p(x)$",
        ticks=np.arange(0, peak, step),
        format="%.1f",
        shrink=0.8,
    )
    return fig


def loglog_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ax: Axes | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    styles: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
    xticks: Sequence[float] | None = None,
    legend_loc: str = "best",
) -> Figure:
    """Curves on log–log axes, e.g. a cost against the dimension or an error against steps.

    Args:
        curves: label → ``(xs, ys)``.
        ax: draw here, or on a new figure.
        xlabel, ylabel, title: axis text.
        styles: label → matplotlib format (default ``"o-"``), e.g. ``"--"`` for a prediction.
        colors: label → colour (default: the palette in order).
        xticks: label exactly these x values (e.g. the measured dimensions).
        legend_loc: where the legend goes.

    Returns:
        The figure.
    """
    fig, ax = figure_and_axes(ax, (6, 4))
    for k, (label, (xs, ys)) in enumerate(curves.items()):
        fmt = (styles or {}).get(label, "o-")
        color = (colors or {}).get(label, PALETTE[k % len(PALETTE)])
        ax.plot(xs, ys, fmt, color=color, lw=1.5 if fmt == "--" else 2, label=label)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
    if xticks is not None:
        ax.set_xticks(list(xticks), [f"{x:g}" for x in xticks])
        ax.xaxis.set_minor_locator(NullLocator())  # label only the given values
    ax.grid(alpha=0.3, which="both")
    finish_axes(ax, title, loc=legend_loc)
    return fig


def density_row(
    log_probs: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    xlim: tuple[float, float] = (-3.0, 3.0),
    ylim: tuple[float, float] = (-3.0, 3.0),
    n: int = 200,
    levels: int | Sequence[float] = 25,
    labels: tuple[str, str] = ("$x_1$", "$x_2$"),
    colorbar: bool = True,
    width: float = 3.25,
) -> Figure:
    """2D densities side by side, one titled panel each, with coordinates.

    Args:
        log_probs: title → log-density ``(m, 2) -> (m,)``.
        xlim, ylim: the window of every panel.
        n: grid points per axis.
        levels: contour levels; give a list to share one colour scale (and a colour bar).
        labels: the axis labels.
        colorbar: draw a colour bar (meaningful when ``levels`` is shared).
        width: inches per panel.

    Returns:
        The figure.
    """
    k = len(log_probs)
    fig, axes = plt.subplots(1, k, figsize=(width * k, width + 0.35), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, (title, log_prob) in zip(axes, log_probs.items(), strict=True):
        density_contour(log_prob, xlim, ylim, n=n, ax=ax, levels=levels)
        ax.set_title(title, fontsize=10)
        ax.set(xlabel=labels[0], ylabel=labels[1])
        show_ticks(ax)
    if colorbar:
        fig.colorbar(axes[0].collections[-1], ax=axes, shrink=0.8, label="density", format="%.2f")
    return fig


# ------------------------------------------------ added for lesson 08: grouped PSNR bars


def grouped_bars(
    rows: Sequence[Mapping],
    hatches: Mapping[str, str],
    ylabel: str = "hole PSNR (dB), higher is better",
    title: str | None = None,
) -> Figure:
    """Bars of ``psnr`` per category (x, ``rows[i]["mask"]``) and method (``"method"``).

    Each row also has ``"psnr_sem"`` (drawn as an error bar) and ``"group"``, whose
    hatching ``hatches`` gives (e.g. none for baselines, ``"//"`` for flow methods);
    the legend names the groups.
    """
    kinds = list(dict.fromkeys(r["mask"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    width = 0.8 / len(methods)
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.55 * len(kinds) * len(methods)), 3.9))
    for j, method in enumerate(methods):
        vals = [next(r for r in rows if r["mask"] == k and r["method"] == method) for k in kinds]
        group = vals[0]["group"]
        ax.bar(
            [i + (j - (len(methods) - 1) / 2) * width for i in range(len(kinds))],
            [v["psnr"] for v in vals],
            width,
            yerr=[v["psnr_sem"] for v in vals],
            label=f"{method} ({group})",
            color=colours(j % 10),
            hatch=hatches.get(group),
            edgecolor="white",
            error_kw={"lw": 0.8},
        )
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(ncol=4, fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# ------------------------------------------------ added for lesson 09: trends and log axes


def smoothed(values: Sequence[float], window: int = 10) -> list[float]:
    """The trailing mean of the last ``window`` finite values at every point (a trend line).

    Per-step losses of small batches are noisy; their trailing mean shows where
    a curve is going. Non-finite values are left out of the means (a point with
    none in its window is NaN).

    >>> smoothed([1.0, 3.0, float("nan"), 5.0], window=2)
    [1.0, 2.0, 3.0, 5.0]
    """
    if window < 1:
        raise ValueError(f"window must be a positive number of values, got {window}")
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    sums = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    counts = np.concatenate([[0], np.cumsum(ok)])
    lo = np.maximum(np.arange(1, len(v) + 1) - window, 0)
    hi = np.arange(1, len(v) + 1)
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[hi] - sums[lo]) / n, np.nan).tolist()


def log_ticks(ax: Axes, axis: str = "y") -> None:
    """A log axis with labelled ticks at 1, 2 and 5 times each power of ten.

    Matplotlib labels only the powers of ten, so a curve that stays within one
    decade gets no labelled tick at all.
    """
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    target.set_minor_formatter(NullFormatter())
