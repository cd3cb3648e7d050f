"""Static figures: densities, samples, loss curves and image grids.

Every function draws on a given ``ax`` (or makes its own figure) and returns
the figure, so lessons compose them into grids; :func:`save_figure` writes a
figure under ``figures/`` (see :func:`course_utils.config.figures_dir`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils import config

# One palette for the whole course, colour-blind friendly (Okabe-Ito).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"]
DENSITY_CMAP = "magma"


def _axes(ax: Axes | None, figsize: tuple[float, float] = (4.5, 4)) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


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
    levels: int = 30,
) -> Figure:
    """Filled contours of ``exp(log_prob)`` on a grid.

    Args:
        log_prob: maps points ``(m, 2)`` to log-densities ``(m,)``; called in
            chunks with gradients off (the model's device is handled by the caller).
        xlim, ylim: the window.
        n: grid points per axis.
        ax: draw here, or on a new figure.
        title: optional title.
        levels: number of contour levels.

    Returns:
        The figure.
    """
    fig, ax = _axes(ax)
    xx, yy, pts = grid_2d(xlim, ylim, n)
    lp = torch.cat([log_prob(chunk).cpu() for chunk in pts.split(8192)])
    dens = torch.exp(lp).reshape(n, n).nan_to_num(0.0)
    ax.contourf(xx.numpy(), yy.numpy(), dens.numpy(), levels=levels, cmap=DENSITY_CMAP)
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
    fig, ax = _axes(ax)
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
) -> Figure:
    """Several loss curves on one axis, in the course palette.

    Args:
        curves: label → values (x is 1, 2, ...).
        ax: draw here, or on a new figure.
        xlabel, ylabel, title: axis text.
        reference: optional ``(value, label)`` drawn as a dashed horizontal line,
            e.g. the data's entropy.
        styles: label → matplotlib line style (default solid).

    Returns:
        The figure.
    """
    fig, ax = _axes(ax, (6, 4))
    for k, (label, values) in enumerate(curves.items()):
        xs = np.arange(1, len(values) + 1)
        ls = (styles or {}).get(label, "-")
        ax.plot(xs, values, ls, color=PALETTE[k % len(PALETTE)], label=label, lw=2)
    if reference is not None:
        ax.axhline(reference[0], color="0.4", ls=":", lw=1.5, label=reference[1])
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
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
    fig, ax = _axes(ax, (ncol * 0.6 + 0.4, rows * 0.6 + 0.4))
    if c == 1:
        ax.imshow(canvas[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(canvas.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig
