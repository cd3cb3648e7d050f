"""Lesson 10's exercises: the ROC-AUC by counting pairs, a compressor's code length, typicality,
and a per-pixel model's code length.

The oracles: for the AUC, every (OOD, normal) pair counted by brute force
(ties count one half), so a learner's rank formula is checked against the
definition; for zlib, the standard library's own ``zlib.compress`` length; for
typicality, the grouping written out group by group with the same shuffle; for
the per-pixel model, the counts of each pixel's values taken one position and
one value at a time.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close

__all__ = [
    "auc_reference",
    "zlib_bits_per_dim_reference",
    "typicality_reference",
    "pixel_bits_per_dim_reference",
]

Tensor = torch.Tensor

# ---------------------------------------------------------------- 10.1 ROC-AUC


def auc_reference(in_scores, out_scores) -> float:
    """P(an OOD score > a normal score), ties counting one half ("higher = more anomalous")."""
    a = torch.as_tensor(in_scores, dtype=torch.float64).flatten()
    b = torch.as_tensor(out_scores, dtype=torch.float64).flatten()
    pairs = (b[:, None] > a[None, :]).double() + 0.5 * (b[:, None] == a[None, :]).double()
    return pairs.mean().item()


def _auc_ignores_ties(in_scores, out_scores) -> float:
    """Counts only strict wins, so tied scores count as losses."""
    a, b = torch.as_tensor(in_scores).flatten(), torch.as_tensor(out_scores).flatten()
    return (b[:, None] > a[None, :]).double().mean().item()


def _auc_reversed(in_scores, out_scores) -> float:
    """Asks whether the *normal* image scores higher: 1 - AUC."""
    return auc_reference(out_scores, in_scores)


def _auc_by_means(in_scores, out_scores) -> float:
    """Compares the two means: 1 or 0, whatever the overlap."""
    a, b = torch.as_tensor(in_scores).double(), torch.as_tensor(out_scores).double()
    return float(b.mean() > a.mean())


@exercise(
    "10.1",
    "ROC-AUC by counting pairs",
    reference=auc_reference,
    wrong=[_auc_ignores_ties, _auc_reversed, _auc_by_means],
    hint=(
        "Compare every OOD score with every normal score at once by broadcasting: "
        "`out[:, None] > in_[None, :]` is an (n_out, n_in) table of wins. Ties count one half: "
        "add `0.5 * (out[:, None] == in_[None, :])`. The AUC is the mean of that table."
    ),
    answer=(
        "`((b[:, None] > a[None, :]) + 0.5 * (b[:, None] == a[None, :])).double().mean()` with "
        "`a` the normal and `b` the OOD scores: the Mann–Whitney statistic that `roc_auc` "
        "computes from ranks in O(n log n). 0.5 is chance; below 0.5 the score points the "
        "wrong way."
    ),
)
def _check_auc(fn) -> None:
    cases = [
        ([1.0, 2.0, 3.0], [2.0, 4.0]),  # the lesson's toy: one tie
        ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0]),  # many ties
        ([5.0, 6.0], [1.0, 2.0]),  # pointing the wrong way: 0
    ]
    g = torch.Generator().manual_seed(0)
    cases.append(
        (torch.randn(50, generator=g).tolist(), (torch.randn(40, generator=g) + 1).tolist())
    )
    rounded = torch.randint(0, 4, (60,), generator=g).double()
    cases.append((rounded[:30].tolist(), (rounded[30:] + 1).tolist()))
    for normal, odd in cases:
        got = fn(torch.tensor(normal), torch.tensor(odd))
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseFailed(f"the AUC should be a number, got {type(got).__name__}") from None
        want = auc_reference(normal, odd)
        shown = (
            f"normal {normal}, OOD {odd}"
            if len(normal) <= 3
            else f"{len(normal)} vs {len(odd)} scores"
        )
        expect(abs(got - want) < 1e-9, f"AUC for {shown} is {got:.4f} but should be {want:.4f}")


# ------------------------------------------------------ 10.2 zlib's code length


def zlib_bits_per_dim_reference(images) -> Tensor:
    """zlib's compressed length of each 8-bit image, in bits per pixel: ``(n,)``."""
    flat = torch.as_tensor(images).to(torch.uint8).reshape(len(images), -1)
    d = flat.shape[1]
    return torch.tensor([len(zlib.compress(row.numpy().tobytes(), 9)) * 8 / d for row in flat])


def _zlib_in_bytes(images) -> Tensor:
    """Forgets that a byte is 8 bits."""
    return zlib_bits_per_dim_reference(images) / 8


def _zlib_whole_batch(images) -> Tensor:
    """Compresses the whole set at once: one shared length, not a score per image."""
    data = torch.as_tensor(images).to(torch.uint8).numpy().tobytes()
    per_image = len(zlib.compress(data, 9)) * 8 / torch.as_tensor(images)[0].numel() / len(images)
    return torch.full((len(images),), per_image)


def _zlib_of_floats(images) -> Tensor:
    """Compresses float32 pixels: four bytes a pixel, and the result is no longer 8-bit data."""
    flat = torch.as_tensor(images).float().reshape(len(images), -1)
    d = flat.shape[1]
    return torch.tensor([len(zlib.compress(row.numpy().tobytes(), 9)) * 8 / d for row in flat])


@exercise(
    "10.2",
    "a compressor's code length in bits/dim",
    reference=zlib_bits_per_dim_reference,
    wrong=[_zlib_in_bytes, _zlib_whole_batch, _zlib_of_floats],
    hint=(
        "For each image: its raw bytes are `image.to(torch.uint8).numpy().tobytes()` (784 bytes); "
        "`len(zlib.compress(data, 9))` is the compressed length in *bytes*. Multiply by 8 for bits "
        "and divide by the number of pixels. Return one value per image, as a tensor."
    ),
    answer=(
        "`torch.tensor([len(zlib.compress(x.to(torch.uint8).numpy().tobytes(), 9)) * 8 / x.numel() "
        "for x in images])`, one code length per image, which is what `compressed_bits_per_dim` "
        "returns."
    ),
)
def _check_zlib(fn) -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    images[1] = torch.randint(0, 256, (1, 28, 28), generator=g, dtype=torch.uint8)
    images[2, :, 10:18, 5:23] = 255  # a bar
    images[3] = torch.randint(0, 2, (1, 28, 28), generator=g, dtype=torch.uint8) * 200
    got = fn(images.clone())
    expect(
        isinstance(got, Tensor | np.ndarray | list | tuple),
        f"return one code length per image (a tensor), got {type(got).__name__}",
    )
    expect_close(
        torch.as_tensor(got, dtype=torch.float64),
        zlib_bits_per_dim_reference(images).double(),
        "bits/dim of a blank, a noise, a bar and a speckled image",
        atol=1e-9,
        rtol=0,
    )


# --------------------------------------------------------------- 10.3 typicality


def typicality_reference(bpd, reference: float, group_size: int, generator=None) -> Tensor:
    """``|mean bpd of each group − reference|``, groups of ``group_size`` after a shuffle."""
    values = torch.as_tensor(bpd, dtype=torch.float32).flatten()
    order = torch.randperm(len(values), generator=generator)
    n_groups = len(values) // group_size
    groups = values[order[: n_groups * group_size]].reshape(n_groups, group_size)
    return (groups.mean(1) - reference).abs()


def _typicality_abs_first(bpd, reference: float, group_size: int, generator=None) -> Tensor:
    """Averages the distances, not the bits/dim: a group straddling the reference looks atypical."""
    values = torch.as_tensor(bpd, dtype=torch.float32).flatten()
    order = torch.randperm(len(values), generator=generator)
    n_groups = len(values) // group_size
    groups = values[order[: n_groups * group_size]].reshape(n_groups, group_size)
    return (groups - reference).abs().mean(1)


def _typicality_signed(bpd, reference: float, group_size: int, generator=None) -> Tensor:
    """Keeps the sign: too-likely groups score low, as with raw likelihood."""
    values = torch.as_tensor(bpd, dtype=torch.float32).flatten()
    order = torch.randperm(len(values), generator=generator)
    n_groups = len(values) // group_size
    groups = values[order[: n_groups * group_size]].reshape(n_groups, group_size)
    return groups.mean(1) - reference


@exercise(
    "10.3",
    "batch typicality",
    reference=typicality_reference,
    wrong=[_typicality_abs_first, _typicality_signed],
    hint=(
        "Shuffle with `order = torch.randperm(len(bpd), generator=generator)`, keep the first "
        "`n_groups * group_size` and `reshape(n_groups, group_size)`. Average *first*, then take "
        "the distance: `(groups.mean(1) - reference).abs()`. A group that is too likely is as "
        "atypical as one that is too unlikely."
    ),
    answer=(
        "`(bpd[randperm][: n * M].reshape(n, M).mean(1) - reference).abs()`: the distance of each "
        "group's *mean* bits/dim from the training mean. Taking `abs` before the mean measures the "
        "spread of the group instead, and keeping the sign brings back the paradox."
    ),
)
def _check_typicality(fn) -> None:
    g = torch.Generator().manual_seed(0)
    bpd = torch.randn(103, generator=g) * 0.8 + 3.6
    for m in (1, 5, 10):
        got = fn(bpd.clone(), 3.6, m, torch.Generator().manual_seed(7))
        want = typicality_reference(bpd, 3.6, m, torch.Generator().manual_seed(7))
        expect_close(
            got,
            want,
            f"typicality of 103 scores in groups of {m} (shuffled with the given generator)",
        )
    # a group that straddles the reference is typical: mean exactly at the reference
    straddle = torch.tensor([2.0, 4.0])
    got = fn(straddle, 3.0, 2, torch.Generator().manual_seed(0))
    expect_close(got, torch.tensor([0.0]), "typicality of the group [2, 4] around reference 3")


# ----------------------------------------------------- 10.4 a per-pixel model


def _pixel_counts(train_images, images) -> tuple[Tensor, Tensor]:
    """``counts[d, v]``: training images with value ``v`` at position ``d``; and ``images`` as
    ``(n, D)`` int64."""
    train = torch.as_tensor(train_images).to(torch.int64).reshape(len(train_images), -1)
    counts = torch.zeros(train.shape[1], 256, dtype=torch.float64)
    counts.scatter_add_(1, train.T, torch.ones(train.T.shape, dtype=torch.float64))
    return counts, torch.as_tensor(images).to(torch.int64).reshape(len(images), -1)


def pixel_bits_per_dim_reference(train_images, images, alpha: float = 1.0) -> Tensor:
    """Bits/dim of ``images`` under one smoothed 256-value histogram per pixel position.

    ``P_d(v) = (count of v at position d in train_images + alpha) / (n_train + 256 alpha)``,
    and an image's code length is ``-Σ_d log2 P_d(k_d)`` divided by the number of pixels.
    """
    counts, x = _pixel_counts(train_images, images)
    log2_p = torch.log2((counts + alpha) / (len(train_images) + 256 * alpha))  # (D, 256)
    return -log2_p.gather(1, x.T).sum(0) / x.shape[1]


def _pixel_in_nats(train_images, images, alpha: float = 1.0) -> Tensor:
    """Natural logarithms: nats per dimension, not bits."""
    return pixel_bits_per_dim_reference(train_images, images, alpha) * np.log(2)


def _pixel_one_histogram(train_images, images, alpha: float = 1.0) -> Tensor:
    """One histogram of all pixels pooled: it forgets where in the image a value is."""
    train = torch.as_tensor(train_images).to(torch.int64).flatten()
    x = torch.as_tensor(images).to(torch.int64).reshape(len(images), -1)
    counts = torch.bincount(train, minlength=256).double()
    log2_p = torch.log2((counts + alpha) / (len(train) + 256 * alpha))
    return -log2_p[x].sum(1) / x.shape[1]


def _pixel_unnormalised(train_images, images, alpha: float = 1.0) -> Tensor:
    """Adds alpha to the counts but not 256·alpha to the total: the probabilities sum above 1."""
    counts, x = _pixel_counts(train_images, images)
    log2_p = torch.log2((counts + alpha) / (len(train_images) + alpha))
    return -log2_p.gather(1, x.T).sum(0) / x.shape[1]


def _pixel_mean_not_sum(train_images, images, alpha: float = 1.0) -> Tensor:
    """Divides the code length by the number of pixels twice: bits per dimension per dimension."""
    x = torch.as_tensor(images)
    return pixel_bits_per_dim_reference(train_images, images, alpha) / x[0].numel()


@exercise(
    "10.4",
    "a per-pixel model's code length",
    reference=pixel_bits_per_dim_reference,
    wrong=[_pixel_in_nats, _pixel_one_histogram, _pixel_unnormalised, _pixel_mean_not_sum],
    hint=(
        "Think of one die with 256 faces per pixel position, its face probabilities counted from "
        "the training images. Flatten both sets to `(n, D)` int64. Count: "
        "`counts = torch.zeros(D, 256)` and `counts[d, v]` = how many training images have value "
        "`v` at position `d` (`counts.scatter_add_(1, train.T, torch.ones(train.T.shape))` does "
        "them all). Smooth and normalise: `(counts + alpha) / (n_train + 256 * alpha)`. An "
        "image's code length is `-log2 P` summed over its pixels: "
        "`-log2_p.gather(1, x.T).sum(0)`; divide by D."
    ),
    answer=(
        "`counts = zeros(D, 256).scatter_add_(1, train.T, ones)`, "
        "`log2_p = log2((counts + alpha) / (n_train + 256 * alpha))`, then "
        "`-log2_p.gather(1, x.T).sum(0) / D`. Without the smoothing, a value never seen at a "
        "position costs infinitely many bits; one pooled histogram forgets where the background "
        "is, which is all this baseline knows."
    ),
)
def _check_pixel_model(fn) -> None:
    g = torch.Generator().manual_seed(0)
    train = torch.zeros(40, 1, 4, 4, dtype=torch.uint8)
    train[:, :, 1:3, 1:3] = torch.randint(100, 256, (40, 1, 2, 2), generator=g, dtype=torch.uint8)
    train[::3, :, 0, 0] = 255  # a corner that is sometimes bright
    images = torch.zeros(5, 1, 4, 4, dtype=torch.uint8)
    images[1] = 255  # bright where the training images never are
    images[2, :, 1:3, 1:3] = train[0, :, 1:3, 1:3]
    images[3] = torch.randint(0, 256, (1, 4, 4), generator=g, dtype=torch.uint8)
    images[4] = train[3]
    for alpha in (1.0, 0.5):
        got = fn(train.clone(), images.clone(), alpha)
        expect(
            isinstance(got, Tensor | np.ndarray | list | tuple),
            f"return one code length per image (a tensor), got {type(got).__name__}",
        )
        got = torch.as_tensor(got, dtype=torch.float64)
        expect(got.shape == (5,), f"return one value per image: shape (5,), got {tuple(got.shape)}")
        expect(
            bool(torch.isfinite(got).all()),
            "a code length is infinite: a value never seen at a position needs the smoothing "
            "alpha, so that no probability is zero",
        )
        expect_close(
            got,
            pixel_bits_per_dim_reference(train, images, alpha),
            f"bits/dim of 5 test images (4x4) under the histograms of 40 images, alpha {alpha}",
            atol=1e-6,
            rtol=0,
        )
