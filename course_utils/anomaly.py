"""Anomaly detection with a likelihood model: scores, ROC-AUC and their figures (lesson 10).

A density model trained on one dataset (in-distribution) is asked to flag
images from elsewhere (out-of-distribution, OOD). Every score here follows one
sign convention: **a higher score means "more anomalous"**, so the OOD images
are the positive class of the ROC curve and an AUC below 0.5 means the score
ranks the OOD images as *more* normal than the real ones.

Scores, all per image and in bits per dimension:

- :func:`image_bits_per_dim`: the model's own bits/dim (the raw likelihood score);
- :func:`compressed_bits_per_dim`: the length of the image compressed by zlib
  (the DEFLATE coder inside PNG), a generic measure of input complexity;
- :func:`complexity_corrected`: bits/dim minus that complexity, the score of
  Serrà et al. (2020), a likelihood ratio against a universal compressor;
- :func:`pixel_bits_per_dim`: bits/dim under a per-pixel histogram model
  (:func:`fit_pixel_model`), a baseline with no spatial structure for a
  likelihood ratio against a simpler model;
- :func:`typicality`: the distance of the bits/dim (of one image or the mean of
  a group of images) from the training set's mean, after Nalisnick et al. (2019b).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.core.checks import check_uint8_images
from course_utils.core.metrics import bits_per_dim_each
from course_utils.core.plots import PALETTE, figure_and_axes, finish_axes
from course_utils.glow.model import BATCH_CHUNK, log_prob_in_batches

__all__ = [
    "image_bits_per_dim",
    "compressed_bits_per_dim",
    "complexity_corrected",
    "fit_pixel_model",
    "pixel_bits_per_dim",
    "typicality",
    "typicality_auc",
    "roc_auc",
    "roc_curve",
    "auc_against",
    "auc_table",
    "score_histograms",
    "roc_plot",
]

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


# ------------------------------------------------------------------- checks


def _scores(name: str, values: ArrayLike) -> np.ndarray:
    """``values`` as a finite 1-D float64 array, or a ValueError naming ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must have shape (n,) with n >= 1, got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} holds {bad} NaN or inf value(s); scores must be finite")
    return arr


def _uint8_images(name: str, images: torch.Tensor | np.ndarray) -> np.ndarray:
    """8-bit images ``(n, C, H, W)`` or ``(n, H, W)`` as a uint8 array ``(n, C*H*W)``."""
    images = check_uint8_images(name, images)
    return images.detach().cpu().numpy().reshape(len(images), -1)


# ------------------------------------------------------------------- scores


@torch.no_grad()
def image_bits_per_dim(
    model: torch.nn.Module, x: torch.Tensor, batch_size: int = BATCH_CHUNK
) -> torch.Tensor:
    """Bits per dimension of every image, under a model with ``log_prob`` and ``num_dims``.

    The model is evaluated without gradients, ``batch_size`` images at a time.
    Each image's value is :func:`course_utils.core.metrics.bits_per_dim` of a batch
    of one, so the mean of the result is the model's usual bits/dim.

    Args:
        model: e.g. a :class:`course_utils.glow.model.Glow`; its ``log_prob`` maps
            ``(batch, C, H, W)`` to ``(batch,)`` log-densities in nats.
        x: dequantized images ``(n, C, H, W)`` in ``[0, 1)``.
        batch_size: images per forward pass.

    Returns:
        float32 ``(n,)``: bits/dim of each image.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or len(x) == 0:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (n, C, H, W) with n >= 1, got {got}")
    log_p = log_prob_in_batches(model, x, batch_size).cpu()
    return bits_per_dim_each(log_p.double(), model.num_dims).float()


def compressed_bits_per_dim(images: torch.Tensor | np.ndarray, level: int = 9) -> torch.Tensor:
    """Input complexity: zlib-compressed length of each 8-bit image, in bits per dimension.

    zlib's DEFLATE is the lossless coder inside PNG. The length includes
    zlib's 6 bytes of header and checksum (about 0.06 bits/dim for 28×28),
    the same for every image. A blank image compresses to almost nothing,
    uniform noise to slightly more than 8 bits/dim.

    Args:
        images: uint8 ``(n, C, H, W)`` or ``(n, H, W)``.
        level: zlib compression level, 0 (none) to 9 (best).

    Returns:
        float32 ``(n,)``.

    >>> blank = torch.zeros(1, 28, 28, dtype=torch.uint8)
    >>> float(compressed_bits_per_dim(blank)[0]) < 0.2
    True
    """
    flat = _uint8_images("images", images)
    if not 0 <= level <= 9:
        raise ValueError(f"level must be in 0..9, got {level}")
    lengths = [len(zlib.compress(row.tobytes(), level)) for row in flat]
    return torch.tensor(lengths, dtype=torch.float32) * 8 / flat.shape[1]


def complexity_corrected(bpd: ArrayLike, complexity: ArrayLike) -> torch.Tensor:
    """Serrà et al.'s score ``S(x) = bpd(x) − L(x)``, both in bits per dimension.

    ``−log2 p(x)`` and the compressed length ``L(x)`` are two code lengths for
    the same image: the model's and a generic compressor's. Their difference
    is a log-likelihood ratio; it is large when the model needs *more* bits than
    a compressor that knows nothing about the training data.

    Args:
        bpd: ``(n,)`` the model's bits/dim of each image.
        complexity: ``(n,)`` e.g. :func:`compressed_bits_per_dim` of the same images.

    Returns:
        float32 ``(n,)``.

    >>> complexity_corrected([3.0, 1.5], [2.0, 0.5]).tolist()
    [1.0, 1.0]
    """
    a, b = _scores("bpd", bpd), _scores("complexity", complexity)
    if a.shape != b.shape:
        raise ValueError(f"complexity must have the shape of bpd {a.shape}, got {b.shape}")
    return torch.from_numpy(a - b).float()


def fit_pixel_model(images: torch.Tensor | np.ndarray, alpha: float = 1.0) -> torch.Tensor:
    """A baseline with no spatial structure: an independent 256-way histogram per pixel.

    Each pixel position gets its own categorical distribution over the 256
    intensities, estimated from counts with add-``alpha`` (Laplace) smoothing
    so that no value has probability zero. It knows how bright each position
    tends to be and nothing about shapes.

    Args:
        images: uint8 training images ``(n, C, H, W)`` or ``(n, H, W)``.
        alpha: pseudo-count added to every (pixel, value) pair; must be positive.

    Returns:
        float32 ``(C*H*W, 256)`` log-probabilities; row ``d`` is pixel ``d``'s
        distribution (in the images' flattened order).

    >>> log_p = fit_pixel_model(torch.zeros(3, 2, 2, dtype=torch.uint8))
    >>> round(float(log_p[0, 0].exp()), 4)  # (3 + 1) / (3 + 256)
    0.0154
    """
    flat = torch.from_numpy(_uint8_images("images", images).astype(np.int64))
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    counts = torch.zeros(flat.shape[1], 256, dtype=torch.float64)
    counts.scatter_add_(1, flat.T, torch.ones(flat.T.shape, dtype=torch.float64))
    return torch.log((counts + alpha) / (len(flat) + 256 * alpha)).float()


def pixel_bits_per_dim(log_probs: torch.Tensor, images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Bits per dimension of 8-bit images under :func:`fit_pixel_model`'s histograms.

    A discrete model needs no dequantization: an image's code length is
    ``-Σ_d log2 P_d(k_d)``, which is comparable with a flow's bits/dim (the
    flow's is an upper bound on its own discrete code length).

    Args:
        log_probs: ``(D, 256)`` from :func:`fit_pixel_model`.
        images: uint8 ``(n, C, H, W)`` or ``(n, H, W)`` with ``C*H*W = D``.

    Returns:
        float32 ``(n,)``.
    """
    flat = _uint8_images("images", images)
    if log_probs.ndim != 2 or log_probs.shape != (flat.shape[1], 256):
        raise ValueError(
            f"log_probs must have shape ({flat.shape[1]}, 256) for images of "
            f"{flat.shape[1]} pixels, got {tuple(log_probs.shape)}"
        )
    index = torch.from_numpy(flat.astype(np.int64)).T  # (D, n)
    nats = -log_probs.double().gather(1, index).sum(0)
    return (nats / (flat.shape[1] * np.log(2))).float()


def typicality(
    bpd: ArrayLike,
    reference: float,
    group_size: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Distance of bits/dim from a reference (the training set's mean), per image or per group.

    Nalisnick et al. (2019b) test whether a *batch* of ``M`` inputs is typical:
    the mean NLL of the batch should be close to the model's entropy, which the
    mean NLL of training data estimates. With ``group_size = M > 1`` the images
    are shuffled into ``n // M`` disjoint groups (the rest is dropped) and each
    group gets one score, ``|mean bpd of the group − reference|``.

    Args:
        bpd: ``(n,)`` bits/dim of each image.
        reference: the mean bits/dim of training images.
        group_size: images per decision, ``M``; 1 scores every image alone.
        generator: seeds the shuffle into groups.

    Returns:
        float32 ``(n // group_size,)``.

    >>> typicality([3.0, 5.0, 4.0], reference=4.0).tolist()
    [1.0, 1.0, 0.0]
    """
    values = torch.from_numpy(_scores("bpd", bpd))
    if not np.isfinite(reference):
        raise ValueError(f"reference must be a finite number, got {reference}")
    if group_size < 1 or group_size > len(values):
        raise ValueError(
            f"group_size must be between 1 and the number of scores ({len(values)}), "
            f"got {group_size}"
        )
    if group_size > 1:
        order = torch.randperm(len(values), generator=generator)
        n_groups = len(values) // group_size
        values = values[order[: n_groups * group_size]].reshape(n_groups, group_size).mean(1)
    return (values - reference).abs().float()


def typicality_auc(
    in_bpd: ArrayLike, out_bpd: ArrayLike, reference: float, group_size: int, seed: int = 0
) -> float:
    """ROC-AUC of :func:`typicality` with groups of ``group_size``: in-distribution vs OOD.

    The in-distribution images are shuffled into groups with seed ``seed``, the
    OOD ones with ``seed + 1``, so the same call always gives the same AUC.
    """
    return auc_against(
        typicality(in_bpd, reference, group_size, torch.Generator().manual_seed(seed)),
        typicality(out_bpd, reference, group_size, torch.Generator().manual_seed(seed + 1)),
    )


# -------------------------------------------------------------------- ROC


def _labels_and_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = _scores("labels", labels)
    s = _scores("scores", scores)
    if y.shape != s.shape:
        raise ValueError(f"scores must have the shape of labels {y.shape}, got {s.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 (in-distribution) or 1 (out-of-distribution)")
    if y.min() == y.max():
        raise ValueError(f"labels hold a single class ({int(y[0])}); ROC-AUC needs both 0s and 1s")
    return y.astype(bool), s


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve, from the Mann–Whitney U statistic (ties count one half).

    The AUC is the probability that a random positive (OOD) image scores higher
    than a random negative (in-distribution) one. Ranks of tied scores are
    averaged, which counts each tied positive/negative pair as one half.

    Args:
        labels: ``(n,)`` 1 for out-of-distribution (positive), 0 for in-distribution.
        scores: ``(n,)`` higher means more anomalous.

    Returns:
        The AUC in [0, 1]; 0.5 is chance, below 0.5 the score points the wrong way.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.9])
    0.875
    """
    y, s = _labels_and_scores(labels, scores)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # the 1-based midrank of each distinct value: ranks before it + (count + 1) / 2
    midrank = np.cumsum(counts) - counts + (counts + 1) / 2
    ranks = midrank[inverse]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve: false and true positive rates at every distinct threshold.

    Args:
        labels: ``(n,)`` 1 for out-of-distribution (positive), 0 for in-distribution.
        scores: ``(n,)`` higher means more anomalous.

    Returns:
        ``(fpr, tpr)``, each ``(k + 1,)`` for ``k`` distinct scores, from
        ``(0, 0)`` (threshold above every score) to ``(1, 1)``; a point is
        "flag everything scoring at least this threshold".
    """
    y, s = _labels_and_scores(labels, scores)
    values, inverse = np.unique(s, return_inverse=True)
    # counts of positives and negatives at each distinct value, highest value first
    pos = np.bincount(inverse, weights=y, minlength=len(values))[::-1]
    neg = np.bincount(inverse, weights=~y, minlength=len(values))[::-1]
    tpr = np.concatenate([[0.0], np.cumsum(pos) / y.sum()])
    fpr = np.concatenate([[0.0], np.cumsum(neg) / (~y).sum()])
    return fpr, tpr


def auc_against(in_scores: ArrayLike, out_scores: ArrayLike) -> float:
    """ROC-AUC of one score: in-distribution images (label 0) against OOD ones (label 1).

    Args:
        in_scores: ``(n_in,)`` scores of in-distribution images.
        out_scores: ``(n_out,)`` scores of out-of-distribution images.

    Returns:
        :func:`roc_auc` of the two sets pooled.

    >>> auc_against([0.0, 1.0], [2.0, 3.0])
    1.0
    """
    a, b = _scores("in_scores", in_scores), _scores("out_scores", out_scores)
    labels = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    return roc_auc(labels, np.concatenate([a, b]))


def auc_table(aucs: Mapping[str, Mapping[str, float]], corner: str = "score") -> str:
    """A plain, aligned text table of AUCs: one row per score, one column per OOD set.

    Args:
        aucs: score name → (OOD set name → AUC); every row has the same columns.
        corner: the heading of the first column.

    Returns:
        The table, AUCs with 3 decimals.

    >>> print(auc_table({"bpd": {"MNIST": 0.1, "noise": 1.0}}))
    score  MNIST  noise
    bpd    0.100  1.000
    """
    if not aucs:
        raise ValueError("aucs is empty; give at least one score")
    columns = list(next(iter(aucs.values())))
    for name, row in aucs.items():
        if list(row) != columns:
            raise ValueError(f"row {name!r} has columns {list(row)}, expected {columns}")
    first = max(len(corner), *(len(k) for k in aucs))
    widths = [max(5, len(c)) for c in columns]
    lines = [
        "  ".join(
            [corner.ljust(first), *(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
        )
    ]
    for name, row in aucs.items():
        cells = [f"{row[c]:.3f}".rjust(w) for c, w in zip(columns, widths, strict=True)]
        lines.append("  ".join([name.ljust(first), *cells]))
    return "\n".join(lines)


# ------------------------------------------------------------------- figures


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
    arrays = {k: _scores(f"scores[{k!r}]", v) for k, v in scores.items()}
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
        a, b = _scores(f"{name} in_scores", a), _scores(f"{name} out_scores", b)
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
