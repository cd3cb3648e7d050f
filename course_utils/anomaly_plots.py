"""Lesson 10's figures: score histograms, ROC curves, and what the Glow of clothes draws.

Every function takes what a lesson cell computed (scores, AUCs, images) and returns
a matplotlib figure; none computes a score of its own beyond what it shows (the
ROC curves and AUCs of :mod:`course_utils.anomaly`). Scores follow
:mod:`course_utils.anomaly`'s convention: higher means more anomalous.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.anomaly import ArrayLike, check_scores, roc_auc, roc_curve
from course_utils.core.plots import PALETTE, figure_and_axes, finish_axes, image_grid, loss_curves

__all__ = [
    "score_histograms",
    "roc_plot",
    "training_figure",
    "image_sets_figure",
    "complexity_scatter",
    "bulk_range",
    "remedy_histograms",
    "typicality_curves",
    "roc_panels",
    "temperature_figure",
]


def score_histograms(
    scores: Mapping[str, ArrayLike],
    ax: Axes | None = None,
    xlabel: str = "bits per dimension",
    title: str | None = None,
    bins: int = 60,
    xlim: tuple[float, float] | None = None,
    ymax: float | None = None,
) -> Figure:
    """Overlaid histograms (as densities) of one score on several image sets.

    Values outside ``xlim`` are not drawn, and a narrow peak may rise above
    ``ymax``; the legend then says so for that set, so nothing disappears
    silently.

    Args:
        scores: set name → ``(n,)`` scores; the first set is drawn filled (the
            in-distribution data), the others as outlines.
        ax: draw here, or on a new figure.
        xlabel, title: axis text.
        bins: number of bins across the shown range.
        xlim: the range shown (default: all values).
        ymax: the top of the density axis (default: the highest peak), e.g. to
            keep a broad histogram readable next to a spike.

    Returns:
        The figure.
    """
    arrays = {k: check_scores(f"scores[{k!r}]", v) for k, v in scores.items()}
    if not arrays:
        raise ValueError("scores is empty; give at least one set")
    fig, ax = figure_and_axes(ax, (7, 3.8))
    lo = min(a.min() for a in arrays.values()) if xlim is None else xlim[0]
    hi = max(a.max() for a in arrays.values()) if xlim is None else xlim[1]
    if not hi > lo:  # one value in every set: give the bins a width
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    for k, (name, a) in enumerate(arrays.items()):
        inside = a[(a >= lo) & (a <= hi)]
        # each bar is a fraction of the whole set, also when some values are off the axis
        weights = np.full(len(inside), 1.0 / (len(a) * (edges[1] - edges[0])))
        notes = []
        if len(inside) < len(a):
            notes.append(f"{len(a) - len(inside)} off the axis")
        if ymax is not None and np.histogram(inside, edges, weights=weights)[0].max() > ymax:
            notes.append("peak above the axis")
        label = f"{name} (mean {a.mean():.2f})" + "".join(f", {n}" for n in notes)
        color = PALETTE[k % len(PALETTE)]
        if k == 0:
            ax.hist(inside, edges, weights=weights, color=color, alpha=0.35, label=label)
        else:
            ax.hist(inside, edges, weights=weights, histtype="step", color=color, lw=2, label=label)
    ax.set(xlabel=xlabel, ylabel="density of images", xlim=(lo, hi))
    if ymax is not None:
        ax.set_ylim(0, ymax)
    finish_axes(ax, title)
    return fig


def roc_plot(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """ROC curves of several scores against one OOD set, with their AUCs in the legend.

    Args:
        curves: score name → ``(in_scores, out_scores)``.
        ax: draw here, or on a new figure.
        title: the axis title, e.g. the OOD set.

    Returns:
        The figure.
    """
    fig, ax = figure_and_axes(ax, (4.5, 4.5))
    for k, (name, (a, b)) in enumerate(curves.items()):
        a, b = check_scores(f"{name} in_scores", a), check_scores(f"{name} out_scores", b)
        labels, pooled = np.concatenate([np.zeros(len(a)), np.ones(len(b))]), np.concatenate([a, b])
        fpr, tpr = roc_curve(labels, pooled)
        auc = roc_auc(labels, pooled)
        ax.plot(fpr, tpr, color=PALETTE[k % len(PALETTE)], lw=2, label=f"{name}: AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1.2, label="chance: AUC 0.5")
    ax.set(
        xlabel="false positive rate (normal images flagged)",
        ylabel="true positive rate (OOD images flagged)",
        xlim=(0, 1),
        ylim=(0, 1),
        aspect="equal",
    )
    finish_axes(ax, title, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    return fig


# ------------------------------------------------------------ the lesson's figures


def training_figure(
    curve: Sequence[float],
    steps: Sequence[int],
    minutes: float,
    samples: torch.Tensor,
    temperature: float,
) -> Figure:
    """The held-out curve of a Glow beside a grid of its samples.

    Args:
        curve: held-out bits/dim, one per evaluation.
        steps: the training step of each evaluation.
        minutes: training time, for the title.
        samples: ``(n, C, H, W)`` in [0, 1], drawn at ``temperature``.
        temperature: the samples' temperature, for the title.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained", width_ratios=[1.2, 1])
    loss_curves(
        {"held-out bits/dim (first 1,000 test images)": list(curve)},
        ax=axes[0],
        xlabel="training step",
        ylabel="bits per dimension",
        title=f"Glow on Fashion-MNIST: {minutes:.0f} min of training",
        x=list(steps),
    )
    image_grid(samples, nrow=8, ax=axes[1])
    axes[1].set_title(f"samples at temperature {temperature:g}")
    return fig


def image_sets_figure(sets: Mapping[str, torch.Tensor], n: int = 12) -> Figure:
    """The first ``n`` images of every set, one titled row per set.

    Args:
        sets: set name → uint8 images ``(m, 1, H, W)``.
        n: images per row.
    """
    fig, axes = plt.subplots(
        len(sets), 1, figsize=(8, 1.12 * len(sets)), layout="constrained", squeeze=False
    )
    for ax, (name, images) in zip(axes[:, 0], sets.items(), strict=True):
        image_grid(images[:n].float() / 255, nrow=n, ax=ax)
        ax.set_title(name, loc="left", fontsize=10)
    return fig


def complexity_scatter(
    complexity: Mapping[str, ArrayLike], bpd: Mapping[str, ArrayLike], limit: float = 12.0
) -> Figure:
    """Each image's Glow bits/dim against its zlib bits/dim, one colour per set.

    The dotted diagonal is where the model and zlib need the same number of
    bits. Images above ``limit`` bits/dim are not drawn; the title counts them.

    Args:
        complexity: set name → ``(n,)`` zlib bits/dim.
        bpd: set name → ``(n,)`` the model's bits/dim, the same sets in the same order.
        limit: the top of both axes.
    """
    if list(complexity) != list(bpd):
        raise ValueError(
            f"bpd must name the sets of complexity {list(complexity)}, got {list(bpd)}"
        )
    fig, ax = plt.subplots(figsize=(6.2, 5.2), layout="constrained")
    n_above = 0
    for k, name in enumerate(complexity):
        x, y = (
            check_scores(f"complexity[{name!r}]", complexity[name]),
            check_scores(f"bpd[{name!r}]", bpd[name]),
        )
        n_above += int((y > limit).sum())
        ax.scatter(x, y, s=5, alpha=0.4, color=PALETTE[k % len(PALETTE)], label=name)
    ax.plot([0, limit], [0, limit], ":", color="0.3", lw=1.5, label="Glow bpd = zlib bpd")
    ax.set(
        xlabel="zlib compressed length (bits per dimension)",
        ylabel="Glow bits per dimension",
        title="Likelihood follows input complexity"
        + (f"\n({n_above} image(s) above {limit:g} bits/dim not shown)" if n_above else ""),
        xlim=(0, limit),
        ylim=(0, limit),
        aspect="equal",
    )
    finish_axes(ax, markerscale=3, loc="upper left")
    return fig


def bulk_range(scores: Mapping[str, ArrayLike], tail: float = 0.0005) -> tuple[float, float]:
    """The range of all but the ``tail`` most extreme values at each end, widened by 0.2.

    So that a few outliers do not squash a histogram.

    >>> bulk_range({"a": [0.0, 1.0, 2.0]}, tail=0.0)
    (-0.2, 2.2)
    """
    pooled = np.concatenate([check_scores(f"scores[{k!r}]", v) for k, v in scores.items()])
    if not 0 <= tail < 0.5:
        raise ValueError(f"tail must be in [0, 0.5), got {tail}")
    lo, hi = np.quantile(pooled, [tail, 1 - tail])
    return float(lo) - 0.2, float(hi) + 0.2


def remedy_histograms(
    corrected: Mapping[str, ArrayLike], typical: Mapping[str, ArrayLike], reference: float
) -> Figure:
    """The two remedies' scores side by side: complexity-corrected, and per-image typicality.

    Args:
        corrected: set name → ``(n,)`` Serrà's ``S = bpd − zlib bpd``.
        typical: set name → ``(n,)`` ``|bpd − reference|``.
        reference: the training images' mean bits/dim, for the axis label.
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
    score_histograms(
        corrected,
        ax=axes[0],
        bins=80,
        xlim=bulk_range(corrected),
        ymax=3.5,
        xlabel="S = Glow bpd − zlib bpd",
        title="Remedy 1: complexity-corrected score (higher = more anomalous)",
    )
    score_histograms(
        typical,
        ax=axes[1],
        bins=80,
        xlim=(0.0, bulk_range(typical)[1]),
        ymax=1.5,
        xlabel=f"T = |bpd − {reference:.2f}|  ({reference:.2f} = mean bpd of training images)",
        title="Remedy 2: typicality, one image at a time",
    )
    return fig


def typicality_curves(
    group_sizes: Sequence[int],
    aucs: Mapping[str, Sequence[float]],
    colours: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """ROC-AUC of batch typicality against the number ``M`` of images per decision.

    Args:
        group_sizes: the values of ``M``, increasing.
        aucs: OOD set name → one AUC per group size.
        colours: OOD set name → colour (default: the palette in order).
        title: the axis title.
    """
    sizes = [int(m) for m in group_sizes]
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    for k, (name, values) in enumerate(aucs.items()):
        if len(values) != len(sizes):
            raise ValueError(
                f"aucs[{name!r}] has {len(values)} values for {len(sizes)} group sizes"
            )
        colour = (colours or {}).get(name, PALETTE[k % len(PALETTE)])
        ax.plot(sizes, list(values), "o-", color=colour, lw=2, label=name)
    ax.axhline(0.5, color="0.5", ls=":", label="chance")
    ax.set(
        xscale="log",
        xticks=sizes,
        xticklabels=[str(m) for m in sizes],
        xlabel="images per decision M (one source per group)",
        ylabel="ROC-AUC",
        ylim=(0.3, 1.02),
    )
    ax.minorticks_off()
    finish_axes(ax, title)
    return fig


def roc_panels(
    scores: Mapping[str, Mapping[str, ArrayLike]], in_name: str, out_names: Sequence[str]
) -> Figure:
    """One ROC panel per OOD set, each with one curve per score.

    Args:
        scores: score name → (set name → ``(n,)`` scores); every score holds
            ``in_name`` and every name of ``out_names``.
        in_name: the in-distribution set.
        out_names: the OOD sets, one panel each.
    """
    fig, axes = plt.subplots(
        1, len(out_names), figsize=(4.6 * len(out_names), 5.6), layout="constrained", squeeze=False
    )
    for ax, name in zip(axes[0], out_names, strict=True):
        roc_plot(
            {label: (values[in_name], values[name]) for label, values in scores.items()},
            ax=ax,
            title=f"{in_name} (in) against {name} (out)",
        )
    return fig


def temperature_figure(
    shares: Mapping[str, Sequence[float]],
    classes: Sequence[str],
    rows: Mapping[str, torch.Tensor],
) -> Figure:
    """What a temperature keeps: class shares as bars, above rows of images.

    Args:
        shares: bar group name (e.g. "samples at T = 0.7") → one share per class.
        classes: the class names, for the x axis.
        rows: row label → images ``(n, C, H, W)`` in [0, 1], drawn left to right; every
            row the same number of images of one size.
    """
    shapes = {tuple(v.shape) for v in rows.values()}
    if len(shapes) != 1:
        raise ValueError(f"every row must hold images of one shape (n, C, H, W), got {shapes}")
    fig = plt.figure(figsize=(11, 3.4 + 0.75 * len(rows)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.4, 0.75 * len(rows)])
    ax = top.subplots()
    width = 0.8 / max(1, len(shares))
    for j, (name, values) in enumerate(shares.items()):
        if len(values) != len(classes):
            raise ValueError(
                f"shares[{name!r}] has {len(values)} values for {len(classes)} classes"
            )
        offset = (j - (len(shares) - 1) / 2) * width
        ax.bar(np.arange(len(classes)) + offset, list(values), width, color=PALETTE[j], label=name)
    ax.set_xticks(range(len(classes)), list(classes))
    ax.set_ylabel("share")
    finish_axes(ax, "Which classes the model draws, by nearest training images")
    ax.grid(axis="x", visible=False)
    ax = bottom.subplots()
    images = list(rows.values())
    image_grid(torch.cat(images), nrow=len(images[0]), ax=ax)
    size, pad = images[0].shape[-2], 2  # image_grid's padding between tiles
    ax.set_axis_on()
    ax.set(xticks=[], yticks=[pad + r * (size + pad) + size / 2 for r in range(len(rows))])
    ax.set_yticklabels(list(rows), fontsize=9)
    ax.tick_params(left=False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig
