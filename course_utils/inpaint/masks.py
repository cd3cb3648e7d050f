"""Inpainting (lesson 08): masks, checks, and the baselines a flow must beat.

A flow gives the exact log-density of any image, so it can fill in missing
pixels without ever being trained to: keep the known pixels and the model
fixed, and ask the model about the hole. The methods that do that live in
:mod:`course_utils.inpaint.flow` (by the flow alone) and
:mod:`course_utils.inpaint.comparison` (the flow judging training neighbours, and
the comparison of every method); their names can also be imported from here.

Conventions:
    * ``images``: float ``(batch, C, H, W)`` in ``[0, 1]`` (8-bit images are
      mapped to the centres of their bins, ``(k + 0.5) / 256``, by
      :func:`to_unit`), the input the Glow of :mod:`course_utils.glow.model` takes.
    * ``mask``: boolean ``(batch, C, H, W)`` (or ``(batch, 1, H, W)``, broadcast
      over channels), ``True`` where a pixel is **missing**. Every method
      returns ``torch.where(mask, fill, images)``, so the known pixels come back
      bit for bit.

Baselines (no flow): :func:`zero_fill`, :func:`mean_fill`,
:func:`nearest_neighbour_fill` (the training image closest on the known
pixels), :func:`kernel_fill` (a distance-weighted average of the nearest
neighbours' holes, "the neighbour average") and :func:`gaussian_fill` (the
conditional mean of a Gaussian fitted to the training images, in closed form).

:func:`ambiguous_mask` designs, from labelled training images, a mask that hides
what tells two classes apart (a 4 from a 9): the pixels where their means differ most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from course_utils.core.checks import check_int, check_mask, check_unit_images

__all__ = [
    "MASK_KINDS",
    "to_unit",
    "make_masks",
    "check_inputs",
    "zero_fill",
    "mean_fill",
    "nearest_neighbour_fill",
    "NEIGHBOURS",
    "BANDWIDTH",
    "FLOW_BANDWIDTH",
    "FLOW_TEMPERATURE",
    "neighbours",
    "neighbour_weights",
    "blend_neighbours",
    "kernel_fill",
    "SHRINKAGE",
    "GaussianFit",
    "gaussian_fit",
    "gaussian_fill",
    "ambiguous_mask",
    "check_train",
    "InpaintResult",
    "frozen",
    "hole_view",
]

Tensor = torch.Tensor

#: Mask kinds :func:`make_masks` draws.
MASK_KINDS = ("squares", "noise", "centre", "left", "right", "top", "bottom")


# ----------------------------------------------------------------------- masks


def to_unit(images: Tensor) -> Tensor:
    """8-bit images ``(batch, C, H, W)`` → float at their bins' centres ``(k + 0.5) / 256``.

    >>> to_unit(torch.tensor([[[[0, 255]]]], dtype=torch.uint8)).tolist()
    [[[[0.001953125, 0.998046875]]]]
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {images.dtype}")
    return (images.float() + 0.5) / 256.0


def make_masks(
    kind: str,
    n: int,
    shape: tuple[int, int, int] = (1, 28, 28),
    size: int = 12,
    fraction: float = 0.5,
    count: int = 2,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw ``n`` boolean masks (``True`` = missing) of one kind.

    Args:
        kind: one of :data:`MASK_KINDS`:
            ``"squares"`` ``count`` squares of side ``size`` at random places;
            ``"noise"`` each pixel missing with probability ``fraction``;
            ``"centre"`` a centred square of side ``size``;
            ``"left"``/``"right"``/``"top"``/``"bottom"`` that half of the image.
        n: number of masks.
        shape: ``(C, H, W)`` of the images; the mask covers every channel.
        size: side of the squares, in pixels.
        fraction: share of missing pixels of a noise mask, in ``(0, 1)``.
        count: number of squares of a ``"squares"`` mask.
        generator: seeds the random kinds.

    Returns:
        bool ``(n, C, H, W)``.

    >>> make_masks("left", 1, (1, 2, 4)).int().tolist()
    [[[[1, 1, 0, 0], [1, 1, 0, 0]]]]
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {MASK_KINDS}")
    n = check_int("n", n, minimum=1)
    size, count = check_int("size", size, minimum=1), check_int("count", count, minimum=1)
    c, h, w = shape
    m = torch.zeros(n, 1, h, w, dtype=torch.bool)
    if kind in ("squares", "centre") and not 1 <= size <= min(h, w):
        raise ValueError(f"size must be between 1 and {min(h, w)}, got {size}")
    if kind == "squares":
        tops = torch.randint(0, h - size + 1, (n, count), generator=generator)
        lefts = torch.randint(0, w - size + 1, (n, count), generator=generator)
        for i in range(n):
            for t, l in zip(tops[i].tolist(), lefts[i].tolist(), strict=True):
                m[i, :, t : t + size, l : l + size] = True
    elif kind == "noise":
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
        m = torch.rand(n, 1, h, w, generator=generator) < fraction
    elif kind == "centre":
        t, l = (h - size) // 2, (w - size) // 2
        m[:, :, t : t + size, l : l + size] = True
    elif kind == "left":
        m[..., : w // 2] = True
    elif kind == "right":
        m[..., w // 2 :] = True
    elif kind == "top":
        m[:, :, : h // 2] = True
    else:
        m[:, :, h // 2 :] = True
    return m.expand(n, c, h, w).clone()


_UINT8_HINT = "map uint8 images with to_unit()"


def _dtype_of(model: nn.Module | None) -> torch.dtype | None:
    """The float dtype of ``model``'s parameters (None without a model or parameters)."""
    if model is None:
        return None
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def check_inputs(images: Tensor, mask: Tensor, model: nn.Module | None = None) -> Tensor:
    """Validate an inpainting problem and return the mask as bool ``(batch, C, H, W)``.

    Every inpainting method starts here, with the checks the hole metrics
    (:func:`course_utils.core.metrics.masked_mse`) share: one careless input
    gets one message wherever it is given.

    Args:
        images: float ``(batch, C, H, W)`` in ``[0, 1]``
            (:func:`course_utils.core.checks.check_unit_images`).
        mask: bool or 0/1 tensor of the same shape (or with one channel),
            ``True``/1 where pixels are missing
            (:func:`course_utils.core.checks.check_mask`).
        model: the flow that will run on the images, if any: ``images`` must
            have its dtype (a float64 batch would otherwise fail deep in normflows).

    Raises:
        ValueError: shapes differ, the batch is empty, the mask is not boolean
            or 0/1 (a soft mask such as 0.5), nothing or everything is masked
            in some image, the images hold NaN/inf or values outside ``[0, 1]``
            (e.g. 0..255), or their dtype is not the model's.
    """
    check_unit_images("images", images, dtype=_dtype_of(model), uint8_hint=_UINT8_HINT)
    mask = check_mask(mask, images.shape)
    b, c, h, w = images.shape
    missing = mask.flatten(1).sum(1)
    if (missing == 0).any():
        i = int((missing == 0).nonzero()[0])
        raise ValueError(f"nothing is masked in image {i}: there is nothing to inpaint")
    if (missing == c * h * w).any():
        i = int((missing == c * h * w).nonzero()[0])
        raise ValueError(
            f"everything is masked in image {i}: with no known pixel this is sampling, "
            "not inpainting (use model.sample)"
        )
    return mask.clone()


# ------------------------------------------------------------------- baselines


def zero_fill(images: Tensor, mask: Tensor) -> Tensor:
    """Fill the hole with 0 (black)."""
    mask = check_inputs(images, mask)
    return images.masked_fill(mask, 0.0)


def mean_fill(images: Tensor, mask: Tensor, train_images: Tensor) -> Tensor:
    """Fill the hole with the mean training image's pixels.

    Args:
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where missing.
        train_images: float ``(N, C, H, W)`` in ``[0, 1]``.
    """
    mask = check_inputs(images, mask)
    check_train(train_images, images)
    mean = train_images.mean(0, keepdim=True).to(images)
    return torch.where(mask, mean.expand_as(images), images)


def nearest_neighbour_fill(
    images: Tensor, mask: Tensor, train_images: Tensor, chunk: int = 4096
) -> Tensor:
    """Copy the hole from the training image closest on the known pixels.

    The distance is the squared error over the pixels each query knows, so every
    image has its own metric; it is computed as
    ``Σ k·x² − 2 Σ k·x·t + Σ k·t²`` with matrix products (``k`` = known).

    Args:
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where missing.
        train_images: float ``(N, C, H, W)`` in ``[0, 1]``, the pool to copy from.
        chunk: training images per matrix product.
    """
    mask = check_inputs(images, mask)
    check_train(train_images, images)
    dist, idx = neighbours(images, mask, train_images, 1, chunk)
    return blend_neighbours(images, mask, train_images, idx, torch.ones_like(dist))


#: Neighbours and kernel width of :func:`kernel_fill`, and the kernel width and flow
#: temperature of :func:`course_utils.inpaint.comparison.flow_kernel_inpaint`, chosen with
#: ``benchmarks/inpaint.py --tune`` on the last 500 training digits as queries (the other
#: 59,500 as the pool), never on test digits.
NEIGHBOURS = 16
BANDWIDTH = 0.5
FLOW_BANDWIDTH = 1.0
FLOW_TEMPERATURE = 0.5


def neighbours(images: Tensor, mask: Tensor, train_images: Tensor, k: int, chunk: int = 4096):
    """The ``k`` training images nearest on the known pixels.

    Returns ``(dist, idx)``: squared known-pixel distances ``(batch, k)`` in
    increasing order, and their indices into ``train_images``.
    """
    k = min(check_int("k", k, minimum=1), len(train_images))
    chunk = check_int("chunk", chunk, minimum=1)
    dist, idx = _known_distances(images, mask, train_images, chunk).topk(k, dim=1, largest=False)
    return dist.clamp_min(0), idx


def _kernel_logits(dist: Tensor, bandwidth: float) -> Tensor:
    """Log-weights ``−d / (bandwidth · d₁)`` of neighbours at distances ``d`` (nearest ``d₁``)."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    return -dist / (bandwidth * dist[:, :1].clamp_min(1e-3))


def neighbour_weights(
    dist: Tensor,
    bandwidth: float = BANDWIDTH,
    score: Tensor | None = None,
    mask: Tensor | None = None,
    temperature: float = FLOW_TEMPERATURE,
) -> Tensor:
    """Weights ``(batch, k)`` of neighbours, from their distances and the flow's scores.

    ``softmax(−d_i / (bandwidth · d₁) + s_i / (temperature · n))`` over each row,
    with ``d`` the squared known-pixel distances in increasing order (``d₁`` the
    nearest), ``s`` the flow's scores (see :func:`flow_kernel_inpaint`) and ``n``
    the missing values of each image's ``mask``. Without ``score``, the kernel
    alone. A neighbour with a non-finite score gets no weight, unless no
    neighbour of the image has a finite one: then the kernel decides.
    """
    logits = _kernel_logits(dist, bandwidth)
    if score is not None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if mask is None:
            raise ValueError("a score needs the mask: its missing values scale the vote")
        vote = score / (temperature * mask.flatten(1).sum(1, keepdim=True))
        vote = torch.where(torch.isfinite(vote), vote, torch.full_like(vote, -torch.inf))
        blind = ~torch.isfinite(vote).any(1, keepdim=True)
        logits = logits + torch.where(blind, torch.zeros_like(vote), vote)
    return torch.softmax(logits, dim=1)


def blend_neighbours(
    images: Tensor, mask: Tensor, train_images: Tensor, index: Tensor, weights: Tensor
) -> Tensor:
    """Fill each hole with the weighted average of training images ``index`` ``(batch, k)``.

    The known pixels come back unchanged; ``weights`` ``(batch, k)`` are e.g.
    :func:`neighbour_weights` of the neighbours :func:`flow_kernel_inpaint` found.
    """
    if index.shape != weights.shape or index.shape[0] != len(images):
        raise ValueError(
            f"index and weights must both be (batch, k) with batch = {len(images)}, "
            f"got {tuple(index.shape)} and {tuple(weights.shape)}"
        )
    fill = (weights[:, :, None, None, None] * train_images[index].to(images)).sum(1)
    return torch.where(mask, fill, images)


def kernel_fill(
    images: Tensor,
    mask: Tensor,
    train_images: Tensor,
    k: int = NEIGHBOURS,
    bandwidth: float = BANDWIDTH,
) -> Tensor:
    """Average the holes of the ``k`` nearest training images, nearer ones weighing more.

    The weight of a neighbour at squared known-pixel distance ``d`` is
    ``exp(−d / (bandwidth · d₁))`` (normalised), with ``d₁`` the nearest one's
    distance: a kernel regression. An average of several plausible holes is
    closer in squared error to the truth than any one of them (it estimates the
    mean of the possible holes), so this baseline is much stronger than ``nn``.
    """
    mask = check_inputs(images, mask)
    check_train(train_images, images)
    dist, idx = neighbours(images, mask, train_images, k)
    return blend_neighbours(images, mask, train_images, idx, neighbour_weights(dist, bandwidth))


#: Shrinkage of :func:`gaussian_fit`'s covariance toward a multiple of the identity,
#: chosen among 0.01, 0.03, 0.1 and 0.3 on the last 300 training digits as queries
#: (squares and noise masks, the best hole PSNR on both), never on test digits.
SHRINKAGE = 0.01


@dataclass(frozen=True)
class GaussianFit:
    """A Gaussian model of images: ``mean`` ``(D,)`` and ``cov`` ``(D, D)``, float64."""

    mean: Tensor
    cov: Tensor


def gaussian_fit(train_images: Tensor, shrinkage: float = SHRINKAGE) -> GaussianFit:
    """Mean and shrunk covariance of the training images, flattened to ``D = C·H·W`` values.

    ``Σ_λ = (1 − λ)·Σ + λ·(tr Σ / D)·I``: the sample covariance of MNIST is
    singular (the border pixels never change), so its blocks cannot be inverted;
    shrinking toward a multiple of the identity makes every block well
    conditioned and costs a little fit.

    Args:
        train_images: float ``(N, C, H, W)`` in ``[0, 1]``.
        shrinkage: ``λ`` in ``[0, 1]``; must be above 0 for a singular ``Σ``.
    """
    check_unit_images("train_images", train_images, uint8_hint=_UINT8_HINT)
    if not 0 <= shrinkage <= 1:
        raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
    x = train_images.flatten(1).double()
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / max(len(x) - 1, 1)
    d = cov.shape[0]
    cov = (1 - shrinkage) * cov + shrinkage * cov.diagonal().mean() * torch.eye(d, dtype=cov.dtype)
    return GaussianFit(mean, cov)


def gaussian_fill(
    images: Tensor,
    mask: Tensor,
    train_images: Tensor | None = None,
    fit: GaussianFit | None = None,
    shrinkage: float = SHRINKAGE,
) -> Tensor:
    """The conditional mean ``E[x_hole | x_known]`` of a Gaussian fitted to the training images.

    ``μ_h + Σ_hk Σ_kk⁻¹ (x_k − μ_k)`` per image (``h``: its hole, ``k``: its known
    values), clamped to ``[0, 1]``: linear regression of the hole on the known
    pixels, in closed form. Pass ``fit`` (:func:`gaussian_fit`) to reuse one.

    Args:
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where missing.
        train_images: float ``(N, C, H, W)`` in ``[0, 1]`` (when ``fit`` is None).
        fit: a fitted Gaussian of ``D = C·H·W`` values.
        shrinkage: of the fit made here (see :func:`gaussian_fit`).
    """
    mask = check_inputs(images, mask)
    if fit is None:
        if train_images is None:
            raise ValueError("gaussian_fill needs train_images or a fit")
        check_train(train_images, images)
        fit = gaussian_fit(train_images, shrinkage)
    d = images[0].numel()
    if fit.mean.shape != (d,) or fit.cov.shape != (d, d):
        raise ValueError(
            f"fit must be of {d} values, got mean {tuple(fit.mean.shape)} "
            f"and cov {tuple(fit.cov.shape)}"
        )
    x = images.flatten(1).double()
    out = x.clone()
    for i, hole in enumerate(mask.flatten(1)):
        known = ~hole
        weights = torch.linalg.solve(fit.cov[known][:, known], x[i, known] - fit.mean[known])
        out[i, hole] = fit.mean[hole] + fit.cov[hole][:, known] @ weights
    return torch.where(mask, out.view_as(images).to(images.dtype).clamp(0, 1), images)


def ambiguous_mask(
    train_images: Tensor, train_labels: Tensor, pair: tuple[int, int], pixels: int
) -> Tensor:
    """A mask ``(1, C, H, W)`` that hides what tells class ``pair[0]`` from ``pair[1]``.

    The ``pixels`` positions where the two classes' mean training images differ
    most (in absolute value, summed over channels): with them missing, the
    known pixels of a 4 look much like those of a 9.

    Args:
        train_images: float ``(N, C, H, W)`` in ``[0, 1]``.
        train_labels: int ``(N,)``.
        pair: two different labels.
        pixels: how many positions to hide, between 1 and ``H·W − 1``.
    """
    check_unit_images("train_images", train_images, uint8_hint=_UINT8_HINT)
    if train_labels.shape != (len(train_images),):
        raise ValueError(
            f"train_labels must have shape ({len(train_images)},), got {tuple(train_labels.shape)}"
        )
    a, b = pair
    if a == b:
        raise ValueError(f"pair must hold two different labels, got {pair}")
    n, c, h, w = train_images.shape
    pixels = check_int("pixels", pixels, minimum=1)
    if pixels >= h * w:
        raise ValueError(f"pixels must be below {h * w}, got {pixels}")
    means = []
    for label in (a, b):
        chosen = train_images[train_labels == label]
        if not len(chosen):
            raise ValueError(f"no training image has the label {label}")
        means.append(chosen.double().mean(0))
    gap = (means[0] - means[1]).abs().sum(0).flatten()
    m = torch.zeros(h * w, dtype=torch.bool)
    m[gap.topk(pixels).indices] = True
    return m.view(1, 1, h, w).expand(1, c, h, w).clone()


def _known_distances(images: Tensor, mask: Tensor, train_images: Tensor, chunk: int = 4096):
    """Squared distances ``(batch, N)`` between images and training images on known pixels."""
    known = (~mask).flatten(1).to(images.dtype)
    x = images.flatten(1) * known
    out = []
    for start in range(0, len(train_images), chunk):
        t = train_images[start : start + chunk].flatten(1).to(images)
        out.append((x * x).sum(1, keepdim=True) - 2 * x @ t.T + known @ (t * t).T)
    return torch.cat(out, 1)


def check_train(train_images: Tensor, images: Tensor) -> None:
    if (
        not isinstance(train_images, torch.Tensor)
        or train_images.ndim != 4
        or train_images.shape[1:] != images.shape[1:]
    ):
        got = (
            tuple(train_images.shape)
            if isinstance(train_images, torch.Tensor)
            else type(train_images).__name__
        )
        raise ValueError(
            f"train_images must have shape (N, {', '.join(map(str, images.shape[1:]))}), got {got}"
        )
    check_unit_images("train_images", train_images, shape=images.shape[1:], uint8_hint=_UINT8_HINT)


# ------------------------------------------------------- shared by the flow methods


@dataclass
class InpaintResult:
    """What an inpainting method that runs the flow returns.

    Attributes:
        images: ``(batch, C, H, W)`` completed images; known pixels unchanged.
        log_prob: log p of the completion in nats, one row per recorded step
            (the method says which), one column per image.
        seconds: wall-clock time of the method.
        extra: what else the method reports (its docstring lists the keys).
    """

    images: Tensor
    log_prob: Tensor
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def frozen(model: nn.Module) -> Callable[[], None]:
    """Freeze ``model`` (eval mode, no parameter gradients); return a function that restores it."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def restore() -> None:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)

    return restore


def hole_view(images: Tensor, mask: Tensor, colour: tuple[float, float, float] = (0.85, 0.25, 0.2)):
    """RGB images ``(batch, 3, H, W)`` with the missing pixels painted in ``colour``.

    For figures: a learner sees at once which pixels the method had to invent.
    """
    mask = check_inputs(images, mask)
    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    paint = torch.tensor(colour, dtype=images.dtype).view(1, 3, 1, 1).expand_as(rgb)
    return torch.where(mask[:, :1].expand_as(rgb), paint, rgb)
