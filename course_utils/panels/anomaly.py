"""Lesson 10's panel: a detector's threshold on the score histograms, and typicality's group size.

Plain functions compute and draw (the lesson and the tests call them);
:func:`anomaly_panel` puts controls around them with :class:`course_utils.core.widgets.Panel`.
Every score is "higher = more anomalous": an image is flagged when its score is
above the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from course_utils.anomaly import ArrayLike, auc_against, check_scores, typicality
from course_utils.anomaly_plots import score_histograms
from course_utils.core.checks import check_int
from course_utils.core.widgets import Panel, PanelGroup, slider

__all__ = [
    "flag_rates",
    "threshold_figure",
    "ranked_images_figure",
    "typicality_groups_figure",
    "anomaly_panel",
]


def flag_rates(scores: Mapping[str, ArrayLike], threshold: float) -> dict[str, float]:
    """The share of each set's images whose score is above ``threshold`` (flagged).

    For the in-distribution set (the first) that share is the false positive
    rate; for every other set it is that set's true positive rate.

    Args:
        scores: set name → ``(n,)`` scores, the in-distribution set first.
        threshold: flag an image when its score is strictly above this.

    Returns:
        set name → share in [0, 1].

    >>> flag_rates({"in": [1.0, 2.0, 3.0, 4.0], "out": [3.5, 5.0]}, 2.5)
    {'in': 0.5, 'out': 1.0}
    """
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    return {
        name: float((check_scores(f"scores[{name!r}]", v) > threshold).mean())
        for name, v in scores.items()
    }


def threshold_figure(
    scores: Mapping[str, ArrayLike],
    threshold: float,
    xlabel: str = "score (higher = more anomalous)",
    xlim: tuple[float, float] | None = None,
    ymax: float | None = None,
) -> Figure:
    """The score histograms with the threshold drawn, and each set's flagged share.

    Args:
        scores: set name → ``(n,)`` scores, the in-distribution set first.
        threshold: images scoring above it are flagged as anomalies.
        xlabel: the score's name.
        xlim, ymax: passed to :func:`course_utils.anomaly_plots.score_histograms`.

    Returns:
        The figure; its title gives the false positive rate and every set's
        true positive rate.
    """
    rates = flag_rates(scores, threshold)
    names = list(scores)
    fig = score_histograms(scores, xlabel=xlabel, xlim=xlim, ymax=ymax, bins=70)
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    if lo <= threshold <= hi:  # a threshold off the axis flags all or nothing: no line to draw
        ax.axvline(threshold, color="0.15", lw=2, ls="--")
        ax.axvspan(threshold, hi, color="0.5", alpha=0.08)
        ax.annotate(
            "flagged →",
            (threshold, 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(4, 0),
            textcoords="offset points",
            va="top",
            fontsize=9,
        )
    ax.set_xlim(lo, hi)
    tpr = ", ".join(f"{n} {rates[n]:.0%}" for n in names[1:])
    ax.set_title(
        f"threshold {threshold:.2f}: false positives {rates[names[0]]:.1%} of {names[0]}\n"
        f"true positives: {tpr}",
        fontsize=10,
    )
    return fig


def ranked_images_figure(
    sets: Mapping[str, Tensor], scores: Mapping[str, ArrayLike], names: list[str], n: int = 10
) -> Figure:
    """For each named set, its ``n`` lowest-scoring and ``n`` highest-scoring images.

    Args:
        sets: name → 8-bit images ``(N, 1, H, W)``.
        scores: name → one score per image (bits/dim), shown above each image.
        names: the sets to show, two rows each (lowest, then highest).
        n: images per row.
    """
    n = check_int("n", n, minimum=1)
    unknown = [name for name in names if name not in sets or name not in scores]
    if unknown:
        raise ValueError(f"no images or scores for {unknown}")
    fig, axes = plt.subplots(
        2 * len(names), n, figsize=(n * 0.9, 2 * len(names) * 1.15), squeeze=False
    )
    for r, name in enumerate(names):
        score = torch.as_tensor(np.asarray(scores[name]))
        if len(score) != len(sets[name]):
            raise ValueError(f"{name}: {len(score)} scores for {len(sets[name])} images")
        order = score.argsort()
        for row, picks, what in [(2 * r, order[:n], "lowest"), (2 * r + 1, order[-n:], "highest")]:
            for ax, i in zip(axes[row], picks.tolist(), strict=True):
                ax.imshow(sets[name][i, 0], cmap="gray", vmin=0, vmax=255)
                ax.set_title(f"{score[i]:.2f}", fontsize=8, pad=2)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[row, 0].set_ylabel(
                f"{name}\n{what}", fontsize=8, rotation=0, ha="right", va="center"
            )
    fig.suptitle(
        "Easiest and hardest images by bits/dim (the number above each image)", fontsize=10
    )
    fig.subplots_adjust(left=0.16, right=0.99, top=0.9, bottom=0.01, hspace=0.35, wspace=0.08)
    return fig


def typicality_groups_figure(
    in_bpd: ArrayLike,
    out_bpd: Mapping[str, ArrayLike],
    reference: float,
    group_size: int,
    seed: int = 0,
) -> Figure:
    """Typicality scores of groups of ``group_size`` images, in-distribution against OOD sets.

    Uses the same grouping seeds as :func:`course_utils.anomaly.typicality_auc`
    (``seed`` for the in-distribution images, ``seed + 1`` for each OOD set), so
    the AUCs in the legend are the ones that function returns.

    Args:
        in_bpd: ``(n,)`` bits/dim of held-out in-distribution images.
        out_bpd: set name → ``(n,)`` bits/dim of OOD images.
        reference: the training images' mean bits/dim.
        group_size: images per decision, ``M``.
        seed: seeds the shuffle into groups.

    Returns:
        The figure.
    """
    group_size = check_int("group_size", group_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    groups = {
        "in-distribution": typicality(
            in_bpd, reference, group_size, torch.Generator().manual_seed(seed)
        )
    }
    for name, values in out_bpd.items():
        groups[name] = typicality(
            values, reference, group_size, torch.Generator().manual_seed(seed + 1)
        )
    normal = groups["in-distribution"]
    aucs = {n: auc_against(normal, g) for n, g in groups.items() if n != "in-distribution"}
    hi = max(g.quantile(0.995).item() for g in groups.values()) * 1.05 + 1e-3
    fig = score_histograms(
        groups,
        xlabel=f"T = |mean bpd of {group_size} image(s) − {reference:.2f}|",
        xlim=(0.0, hi),
        bins=50,
    )
    n_groups = len(groups["in-distribution"])
    fig.axes[0].set_title(
        f"typicality with M = {group_size} ({n_groups} groups per set): AUC "
        + ", ".join(f"{n} {a:.3f}" for n, a in aucs.items()),
        fontsize=10,
    )
    return fig


def anomaly_panel(
    scores: Mapping[str, Mapping[str, ArrayLike]],
    in_bpd: ArrayLike,
    out_bpd: Mapping[str, ArrayLike],
    reference: float,
) -> PanelGroup:
    """Two panels: a threshold on any score's histograms, and typicality's group size.

    Args:
        scores: score name → (set name → scores, in-distribution set first);
            the threshold panel offers every score in a menu.
        in_bpd, out_bpd, reference: as in :func:`typicality_groups_figure`.

    Returns:
        The panels, stacked.
    """
    if not scores:
        raise ValueError("scores is empty; give at least one score")
    ranges = {}
    for label, sets in scores.items():
        pooled = np.concatenate([check_scores(f"{label}[{n!r}]", v) for n, v in sets.items()])
        ranges[label] = (float(np.quantile(pooled, 0.001)), float(np.quantile(pooled, 0.999)))
    first = next(iter(scores))
    lo, hi = ranges[first]
    menu = W.Dropdown(options=list(scores), value=first, description="score")

    def median(label: str) -> float:  # of the in-distribution set: half of it flagged
        return float(np.median(check_scores("in", next(iter(scores[label].values())))))

    threshold = slider(median(first), lo, hi, (hi - lo) / 200, "threshold")

    def draw(score: str, threshold: float) -> Figure:
        return threshold_figure(scores[score], threshold, xlabel=score, xlim=ranges[score])

    def retarget(change) -> None:
        # a new score has another range: widen, move to its median, then narrow, so the
        # slider never clamps the value (each clamp would redraw once more)
        a, b = ranges[change["new"]]
        threshold.min, threshold.max = min(a, threshold.min), max(b, threshold.max)
        threshold.value = median(change["new"])
        threshold.min, threshold.max, threshold.step = a, b, (b - a) / 200

    # registered before the panel's own observers, so the slider has moved to the new
    # score's range when the panel redraws
    menu.observe(retarget, names="value")
    threshold_panel = Panel(draw, {"score": menu, "threshold": threshold}, title="Threshold")
    n = min(
        len(check_scores("in_bpd", in_bpd)), *(len(check_scores(k, v)) for k, v in out_bpd.items())
    )
    groups = Panel(
        lambda group_size: typicality_groups_figure(in_bpd, out_bpd, reference, group_size),
        {
            "group_size": W.IntSlider(
                value=1,
                min=1,
                max=max(1, n // 10),
                description="M (images per decision)",
                continuous_update=False,
                style={"description_width": "initial"},
            )
        },
        title="Typicality with groups of M images",
    )
    threshold_panel.update()
    groups.update()
    return PanelGroup([threshold_panel, groups])
