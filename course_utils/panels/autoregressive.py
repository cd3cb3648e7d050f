"""Lesson 04's figures and panel: MADE's masks and connectivity for any dimension and order.

Plain functions draw the figures (the lesson and the tests call them);
:func:`made_panel` puts controls around :func:`made_figure` with
:class:`course_utils.core.widgets.Panel`.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from course_utils.core.checks import check_int
from course_utils.core.plots import PALETTE, loglog_curves
from course_utils.core.widgets import Panel, panel
from course_utils.flows2d.autoregressive import input_degrees, made_masks

__all__ = [
    "ORDERS",
    "resolve_order",
    "unreachable_inputs",
    "made_figure",
    "made_panel",
    "made_jacobian_figure",
    "pass_times_figure",
]

Tensor = torch.Tensor

#: The generation orders the panel offers.
ORDERS = ("natural", "reversed", "random")


def resolve_order(dim: int, order: str | Sequence[int] = "natural", seed: int = 0) -> list[int]:
    """A generation order as a list: ``"natural"``, ``"reversed"``, ``"random"`` or the list itself.

    Args:
        dim: the number of coordinates.
        order: one of :data:`ORDERS`, or a permutation of ``0..dim-1``.
        seed: seeds the ``"random"`` order.

    Returns:
        The coordinates from the first generated to the last.

    >>> resolve_order(4, "reversed"), resolve_order(3, [2, 0, 1])
    ([3, 2, 1, 0], [2, 0, 1])
    """
    dim = check_int("dim", dim, minimum=1)
    if isinstance(order, str):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS} or a permutation, got {order!r}")
        if order == "natural":
            return list(range(dim))
        if order == "reversed":
            return list(range(dim))[::-1]
        return torch.randperm(dim, generator=torch.Generator().manual_seed(seed)).tolist()
    input_degrees(dim, order)  # checks that it is a permutation
    return [int(j) for j in order]


def unreachable_inputs(degrees: Tensor, masks: Sequence[Tensor]) -> list[int]:
    """Inputs that reach no output although later coordinates could depend on them.

    The last coordinate of the order feeds nothing by design; any other input
    with an all-zero column in the product of the masks is wasted (no hidden
    unit has its degree, e.g. in a layer narrower than ``dim - 1``).

    Args:
        degrees: ``(dim,)`` input degrees (``flows2d.autoregressive.input_degrees``).
        masks: the masks of a MADE, first to last (``(out, in)`` each).

    Returns:
        0-based indices of the wasted inputs, in coordinate order.

    >>> from course_utils.flows2d.autoregressive import input_degrees, made_masks
    >>> unreachable_inputs(input_degrees(5), made_masks(input_degrees(5), [2]))
    [2, 3]
    """
    paths = masks[-1]
    for m in reversed(masks[:-1]):
        paths = paths @ m
    last = len(degrees)  # the degree of the last generated coordinate
    return [j for j in range(len(degrees)) if paths[:, j].sum() == 0 and degrees[j] != last]


def _draw_mask(ax, mask: Tensor, rows: Sequence[str], cols: Sequence[str], title: str) -> None:
    binary = ListedColormap(["white", PALETTE[0]])
    ax.imshow((mask > 0).float().numpy(), cmap=binary, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xticks(np.arange(len(cols) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.75", lw=0.6)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title, fontsize=10)


def made_figure(
    dim: int = 5, order: str | Sequence[int] = "natural", hidden: int = 8, seed: int = 0
) -> Figure:
    """The masks of a MADE with two hidden layers, and the connectivity they make.

    Four panels: input → hidden 1, hidden 1 → hidden 2, hidden 2 → output (rows
    and columns labelled by degree; a filled cell is a kept weight), and the
    product of the three masks, whose entry ``(i, j)`` counts the paths from
    input ``x_j`` to output ``i``, drawn in coordinate order. It is strictly
    lower triangular once rows and columns are sorted by the order. A hidden
    width below ``dim - 1`` is drawn too (:class:`course_utils.flows2d.autoregressive.MADE`
    refuses it): the title then names the inputs that reach no output.

    Args:
        dim: number of coordinates (2 to 12).
        order: see :func:`resolve_order`.
        hidden: width of both hidden layers.
        seed: seeds a ``"random"`` order.

    Returns:
        The figure.
    """
    dim = check_int("dim", dim, minimum=2)
    hidden = check_int("hidden", hidden, minimum=1)
    if dim > 12:
        raise ValueError(f"dim must be at most 12 to be drawn legibly, got {dim}")
    perm = resolve_order(dim, order, seed)
    degrees = input_degrees(dim, perm)
    masks = made_masks(degrees, [hidden, hidden])
    wasted = unreachable_inputs(degrees, masks)
    hidden_deg = [str(d) for d in (torch.arange(hidden) % max(dim - 1, 1) + 1).tolist()]
    in_deg = [str(d) for d in degrees.tolist()]
    names = [f"$x_{{{j + 1}}}$" for j in range(dim)]
    paths = (masks[2] @ masks[1] @ masks[0]).int()

    fig = plt.figure(figsize=(13, 4.2), layout="constrained")
    grid = fig.add_gridspec(1, 4, width_ratios=[dim, hidden, hidden, dim])
    axes = [fig.add_subplot(grid[0, k]) for k in range(4)]
    _draw_mask(axes[0], masks[0], hidden_deg, in_deg, "input → hidden 1\nkeep if $d(k) \\geq d(j)$")
    _draw_mask(
        axes[1], masks[1], hidden_deg, hidden_deg, "hidden 1 → hidden 2\nkeep if $d(k) \\geq d(j)$"
    )
    _draw_mask(axes[2], masks[2], in_deg, hidden_deg, "hidden 2 → output\nkeep if $d(i) > d(j)$")
    _draw_mask(axes[3], paths, names, names, "paths from input $x_j$ to output $i$")
    for (i, j), v in np.ndenumerate(paths.numpy()):
        axes[3].text(
            j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v else "0.6"
        )
    axes[0].set(xlabel="input degree $d(j)$", ylabel="hidden 1 degree $d(k)$")
    axes[1].set(xlabel="hidden 1 degree $d(j)$", ylabel="hidden 2 degree $d(k)$")
    axes[2].set(xlabel="hidden 2 degree $d(j)$", ylabel="output degree $d(i)$")
    axes[3].set(xlabel="input $x_j$", ylabel="output for $x_i$")
    sequence = ", ".join(f"x{j + 1}" for j in perm)
    title = f"MADE masks, D = {dim}, two hidden layers of {hidden} units; order {sequence}"
    if wasted:
        lost = ", ".join(f"x{j + 1}" for j in wasted)
        title += f"\n{lost} reach no output: no hidden unit has their degree (width < D − 1)"
    fig.suptitle(title, color=PALETTE[1] if wasted else "black")
    return fig


def made_panel() -> Panel:
    """Dimension, order, hidden width and seed → :func:`made_figure`, redrawn on release."""
    style = {"style": {"description_width": "initial"}, "continuous_update": False}
    return panel(
        made_figure,
        {
            "dim": W.IntSlider(5, 2, 10, description="dimension D", **style),
            "order": W.Dropdown(options=ORDERS, value="natural", description="order"),
            "hidden": W.IntSlider(8, 1, 16, description="hidden width", **style),
            "seed": W.IntSlider(0, 0, 20, description="seed (random order)", **style),
        },
        title="MADE: pick a dimension and an order, see the masks and who sees whom",
    )


def made_jacobian_figure(jac: Tensor, order: Sequence[int]) -> Figure:
    """``|∂s_i/∂x_j|`` of a MADE from autograd, in coordinate order and in generation order.

    Args:
        jac: ``(D, D)`` absolute Jacobian of the log-scales ``s`` in the inputs ``x``.
        order: the generation order the MADE was built with.

    Returns:
        Two heat maps; exact zeros are white and marked ``0``.
    """
    dim = len(jac)
    order = list(order)
    names = [f"$x_{j + 1}$" for j in range(dim)]
    views = [
        (jac, names, "in coordinate order"),
        (
            jac[order][:, order],
            [names[j] for j in order],
            "rows and columns in the generation order",
        ),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4), layout="constrained")
    for ax, (mat, labels, title) in zip(axes, views, strict=True):
        shown = np.ma.masked_equal(mat.numpy(), 0.0)  # exact zeros stay white
        im = ax.imshow(shown, cmap="viridis", vmin=0, vmax=float(jac.max()))
        for (i, j), v in np.ndenumerate(mat.numpy()):
            if v == 0:
                ax.text(j, i, "0", ha="center", va="center", color="0.45", fontsize=10)
        ax.set_xticks(range(dim), labels)
        ax.set_yticks(range(dim), [lab.replace("x", "s") for lab in labels])
        ax.set(xlabel="input $x_j$", ylabel="output $s_i$", title=title)
    fig.colorbar(
        im, ax=axes, label="$|\\partial s_i / \\partial x_j|$ (white: exactly 0)", shrink=0.8
    )
    fig.suptitle("MADE's Jacobian from autograd: strictly lower triangular in the generation order")
    return fig


def pass_times_figure(rows: Sequence[dict]) -> Figure:
    """The rows of :func:`course_utils.flows2d.autoregressive.time_directions` on log–log axes.

    One panel per layer (MAF, IAF): density and sampling time against ``D``, and
    the prediction ``D ×`` the one-pass time (dashed).
    """
    dims = sorted({r["dim"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained", sharey=True)
    for ax, model in zip(axes, ["MAF", "IAF"], strict=True):
        ms = {
            key: [1e3 * r[key] for r in rows if r["model"] == model]
            for key in ("density_s", "sampling_s")
        }
        maf = model == "MAF"
        one_pass = ms["density_s" if maf else "sampling_s"]
        density = "density, inverse " + ("(1 pass)" if maf else "(D passes)")
        sampling = "sampling, forward " + ("(D passes)" if maf else "(1 pass)")
        prediction = "D × one pass (prediction)"
        loglog_curves(
            {
                density: (dims, ms["density_s"]),
                sampling: (dims, ms["sampling_s"]),
                prediction: (dims, [d * t for d, t in zip(dims, one_pass, strict=True)]),
            },
            ax=ax,
            xlabel="dimension D",
            title=f"{model} layer",
            styles={sampling: "s-", prediction: "--"},
            colors={density: PALETTE[0], sampling: PALETTE[1], prediction: "0.5"},
            xticks=dims,
            legend_loc="upper left",
        )
    axes[0].set_ylabel("CPU milliseconds per batch of 512 points")
    fig.suptitle("One MADE pass vs D sequential passes (measured, one CPU thread, no gradients)")
    return fig
