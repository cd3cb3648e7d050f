"""Anomaly detection with a likelihood model: scores, ROC-AUC and their figures (lesson 10).

A density model trained on one dataset (in-distribution) is asked to flag
images from elsewhere (out-of-distribution, OOD). Every score here follows one
sign convention: **a higher score means "more anomalous"**, so the OOD images
are the positive class of the ROC curve and an AUC below 0.5 means the score
ranks the OOD images as *more* normal than the real ones.

Scores, all per image and in bits per dimension:

- :func:`image_bits_per_dim`: the model's own bits/dim (the raw likelihood score),
  of 8-bit images dequantized by the model's own dequantizer, as its model card
  scores them;
- :func:`compressed_bits_per_dim`: the length of the image compressed by zlib
  (the DEFLATE coder inside PNG), a generic measure of input complexity;
- :func:`complexity_corrected`: bits/dim minus that complexity, the score of
  Serrà et al. (2020), a likelihood ratio against a universal compressor;
- :func:`pixel_bits_per_dim`: bits/dim under a per-pixel histogram model
  (:func:`fit_pixel_model`), a baseline with no spatial structure for a
  likelihood ratio against a simpler model;
- :func:`typicality`: the distance of the bits/dim (of one image or the mean of
  a group of images) from the training set's mean, after Nalisnick et al. (2019b).

:func:`nearest_neighbour_labels` labels images (e.g. a model's samples) by
their nearest training images, to count what a model draws. The figures are in
:mod:`course_utils.anomaly_plots`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from course_utils.core.checks import check_int, check_uint8_images
from course_utils.core.metrics import bits_per_dim_each
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
    "check_scores",
    "FASHION_CLASSES",
    "nearest_neighbour_labels",
]

#: Fashion-MNIST's ten classes, in the order of its labels 0-9.
FASHION_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


# ------------------------------------------------------------------- checks


def check_scores(name: str, values: ArrayLike) -> np.ndarray:
    """``values`` (scores of a set of images) as a finite 1-D float64 array.

    Raises a ValueError naming ``name`` for any other shape, an empty set, NaN or inf.
    """
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
    model: torch.nn.Module,
    x: torch.Tensor,
    batch_size: int = BATCH_CHUNK,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bits per dimension of every image, under a model with ``log_prob`` and ``num_dims``.

    8-bit images are dequantized the way the model was trained: by its own
    (learned) dequantizer when it has one, with the noise drawn from
    ``generator``, and scored by ``model.dequantized_log_prob``, a lower
    bound ``log p(u) − log q(v|k)`` on the image's discrete log-likelihood. This
    is how a Glow's model card measures its test bits/dim. Float images are
    taken as already dequantized and scored by ``model.log_prob`` (for a model
    with a learned dequantizer that is the looser bound of uniform noise).

    The model is evaluated without gradients, ``batch_size`` images at a time.
    Each image's value is :func:`course_utils.core.metrics.bits_per_dim` of a batch
    of one, so the mean of the result is the model's usual bits/dim.

    Args:
        model: e.g. a :class:`course_utils.glow.model.Glow`; its ``log_prob`` maps
            ``(batch, C, H, W)`` to ``(batch,)`` log-densities in nats.
        x: uint8 images ``(n, C, H, W)`` (the model dequantizes them), or
            dequantized float images ``(n, C, H, W)`` in ``[0, 1)``.
        batch_size: images per forward pass.
        generator: seeds the dequantization noise of uint8 images.

    Returns:
        float32 ``(n,)``: bits/dim of each image.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or len(x) == 0:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (n, C, H, W) with n >= 1, got {got}")
    if x.dtype == torch.uint8:
        if not hasattr(model, "dequantized_log_prob"):
            raise ValueError(
                f"x holds uint8 images, but {type(model).__name__} has no dequantized_log_prob; "
                "dequantize them first (course_utils.glow.model.dequantize)"
            )
        batch_size = check_int("batch_size", batch_size, minimum=1)
        log_p = torch.cat(
            [model.dequantized_log_prob(part, generator) for part in x.split(batch_size)]
        ).cpu()
    else:
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
    a, b = check_scores("bpd", bpd), check_scores("complexity", complexity)
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
    values = torch.from_numpy(check_scores("bpd", bpd))
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
    y = check_scores("labels", labels)
    s = check_scores("scores", scores)
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
    a, b = check_scores("in_scores", in_scores), check_scores("out_scores", out_scores)
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


# ------------------------------------------------------- what a model draws


def nearest_neighbour_labels(
    images: torch.Tensor,
    reference: torch.Tensor,
    labels: torch.Tensor,
    k: int = 5,
    batch_size: int = 500,
) -> torch.Tensor:
    """Label each image by a majority vote of its ``k`` nearest reference images (pixel distance).

    A classifier with nothing to train, good enough to count which classes a
    model's samples show (on Fashion-MNIST, about 85 % of test images right
    with 10,000 training images as the reference). Ties go to the smallest label.

    Args:
        images: ``(n, C, H, W)`` floats in [0, 1], or uint8.
        reference: ``(m, C, H, W)`` labelled images, in the same form.
        labels: ``(m,)`` integer labels of ``reference``.
        k: neighbours that vote, ``1 <= k <= m``.
        batch_size: images compared with the whole reference at a time.

    Returns:
        int64 ``(n,)``.

    >>> ref = torch.tensor([0.0, 0.1, 1.0, 0.9]).view(4, 1, 1, 1)
    >>> nearest_neighbour_labels(torch.tensor([0.05, 0.8]).view(2, 1, 1, 1), ref,
    ...                          torch.tensor([0, 0, 1, 1]), k=1).tolist()
    [0, 1]
    """

    def flat(name: str, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or t.ndim < 2 or len(t) == 0:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must have shape (n, C, H, W) with n >= 1, got {got}")
        t = t.detach().cpu()
        return (t.float() / 255 if t.dtype == torch.uint8 else t.float()).flatten(1)

    x, ref = flat("images", images), flat("reference", reference)
    if x.shape[1] != ref.shape[1]:
        raise ValueError(
            f"images have {x.shape[1]} pixels each but reference images {ref.shape[1]}"
        )
    labels = torch.as_tensor(labels).long().flatten()
    if labels.shape != (len(ref),):
        raise ValueError(f"labels must have shape ({len(ref)},), got {tuple(labels.shape)}")
    k = check_int("k", k, minimum=1)
    if k > len(ref):
        raise ValueError(f"k must be at most the number of reference images {len(ref)}, got {k}")
    n_classes = int(labels.max()) + 1
    out = []
    for part in x.split(check_int("batch_size", batch_size, minimum=1)):
        nearest = torch.cdist(part, ref).topk(k, largest=False).indices
        votes = torch.zeros(len(part), n_classes).scatter_add_(
            1, labels[nearest], torch.ones(nearest.shape)
        )
        out.append(votes.argmax(1))  # the first maximum: ties go to the smallest label
    return torch.cat(out)
