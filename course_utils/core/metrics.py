"""Metrics: NLL in nats, bits per dimension, and errors on masked pixels (MSE, PSNR).

Dequantization convention (used by every image lesson): a pixel is an integer
``k`` in ``0..255``; the model sees ``u = (k + v) / 256`` with ``v ~ U[0, 1)``,
so ``u`` lies in ``[0, 1)`` and each integer owns a bin of width ``1/256``.
For any density ``p`` on ``[0, 1)^D``, Jensen's inequality gives

    log P(k) >= E_v[ log p(u) ] - D log 256,

so the discrete NLL in bits per dimension is bounded above by

    bpd = ( -log p(u) + D log 256 ) / (D log 2) = -log p(u) / (D log 2) + 8.

``log p(u)`` must be the density of ``u`` itself: if a model works on a
transformed ``y = g(u)`` (e.g. a logit), the transform's log|det| belongs in
``log p(u)``.
"""

from __future__ import annotations

import math

import torch

from course_utils.core.checks import check_int, check_mask, check_unit_images

__all__ = [
    "nll",
    "bits_per_dim",
    "bits_per_dim_each",
    "masked_mse",
    "MSE_FLOOR",
    "masked_psnr",
]


def nll(log_prob: torch.Tensor) -> float:
    """Mean negative log-likelihood in nats.

    Args:
        log_prob: ``(batch,)`` log-densities in nats.

    Returns:
        ``-mean(log_prob)`` as a float.

    >>> nll(torch.tensor([-1.0, -3.0]))
    2.0
    """
    log_prob = _as_log_prob(log_prob)
    return float(-log_prob.detach().mean())  # detach: a metric, not a loss to backpropagate


def _as_log_prob(log_prob: torch.Tensor) -> torch.Tensor:
    """``log_prob`` as a float tensor of shape ``(batch,)``, ``batch >= 1``, or a ValueError."""
    log_prob = torch.as_tensor(log_prob)
    if log_prob.ndim != 1 or len(log_prob) == 0:
        raise ValueError(
            f"log_prob must have shape (batch,) with batch >= 1, got {tuple(log_prob.shape)}"
        )
    if not log_prob.is_floating_point():
        raise ValueError(
            f"log_prob must be floating point, got {str(log_prob.dtype).removeprefix('torch.')}"
        )
    return log_prob


def bits_per_dim(log_prob: torch.Tensor, num_dims: int, n_bins: int = 256) -> float:
    """Bits per dimension of dequantized data, with the convention of this module.

    Args:
        log_prob: ``(batch,)`` log-densities in nats of ``u = (k + v) / n_bins``
            in ``[0, 1)^num_dims``.
        num_dims: dimensions per example, e.g. ``1 * 28 * 28``.
        n_bins: number of intensity levels (256 for 8-bit images).

    Returns:
        The mean bits per dimension.

    >>> round(bits_per_dim(torch.zeros(4), 784), 6)  # uniform density on [0,1)^D
    8.0
    """
    log_prob = _as_log_prob(log_prob)
    return float(bits_per_dim_each(log_prob.detach().double(), num_dims, n_bins).mean())


def bits_per_dim_each(log_prob: torch.Tensor, num_dims: int, n_bins: int = 256) -> torch.Tensor:
    """Bits per dimension of each example, ``(batch,) -> (batch,)``, as :func:`bits_per_dim`.

    Differentiable, so it also serves as a training loss on the bits/dim scale.

    >>> bits_per_dim_each(torch.tensor([0.0, -784 * math.log(2)]), 784).tolist()
    [8.0, 9.0]
    """
    num_dims = check_int("num_dims", num_dims, minimum=1)
    n_bins = check_int("n_bins", n_bins, minimum=1)
    return (num_dims * math.log(n_bins) - log_prob) / (num_dims * math.log(2))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image over the masked pixels only.

    Args:
        pred, target: ``(batch, C, H, W)`` in ``[0, 1]``, finite (the checks of
            :func:`course_utils.core.checks.check_unit_images`).
        mask: bool or 0/1, same shape (or broadcastable), ``True`` on the pixels
            to score (the hole of an inpainting problem); a soft mask is refused.

    Returns:
        ``(batch,)`` MSE of each image's masked pixels.

    Raises:
        ValueError: shapes differ, an image lies outside ``[0, 1]`` (0..255, or
            [−1, 1]) or holds NaN, the batch is empty, the mask is not 0/1 or
            scores no pixel of some image.

    >>> masked_mse(torch.ones(1, 1, 1, 2), torch.tensor([[[[0.0, 1.0]]]]),
    ...            torch.tensor([[[[True, False]]]])).tolist()
    [1.0]
    """
    if not (isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor)):
        raise ValueError(
            f"pred and target must be tensors, got {type(pred).__name__} and "
            f"{type(target).__name__}"
        )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape (batch, C, H, W), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    # Both in the unit of the course's images: a PSNR of 0..255 values against
    # [0, 1] ones (or of two [-1, 1] images, peak 1) is a number about nothing.
    check_unit_images("pred", pred)
    check_unit_images("target", target)
    if isinstance(mask, torch.Tensor) and mask.shape != pred.shape:
        try:  # one mask for the whole batch, or a one-channel mask
            mask = mask.expand(pred.shape)
        except RuntimeError:
            pass  # check_mask names the shapes
    m = check_mask(mask, pred.shape, one="scored").flatten(1)
    if (m.sum(1) == 0).any():
        raise ValueError("mask is empty for some image: nothing to measure")
    sq = (pred.detach().float() - target.detach().float()).flatten(1) ** 2
    return (sq * m).sum(1) / m.sum(1)


#: The smallest MSE :func:`masked_psnr` uses: the variance of the 8-bit
#: quantization error, (1/256)²/12. Below it two images are the same 8-bit image,
#: and a perfect fill (MSE 0) would otherwise score an infinite PSNR.
MSE_FLOOR = (1 / 256) ** 2 / 12


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image over the masked pixels, in dB (peak 1).

    ``PSNR = 10 log10(1 / max(MSE, MSE_FLOOR))``; higher is better. Average the
    returned values over images to compare methods.

    >>> masked_psnr(torch.full((1, 1, 1, 2), 0.1), torch.zeros(1, 1, 1, 2),
    ...             torch.ones(1, 1, 1, 2, dtype=torch.bool)).round().tolist()
    [20.0]
    """
    mse = masked_mse(pred, target, mask).clamp_min(MSE_FLOOR)
    return -10 * torch.log10(mse)
