"""Likelihood metrics: NLL in nats and bits per dimension.

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


def nll(log_prob: torch.Tensor) -> float:
    """Mean negative log-likelihood in nats.

    Args:
        log_prob: ``(batch,)`` log-densities in nats.

    Returns:
        ``-mean(log_prob)`` as a float.

    >>> nll(torch.tensor([-1.0, -3.0]))
    2.0
    """
    log_prob = torch.as_tensor(log_prob)
    if log_prob.ndim != 1 or len(log_prob) == 0:
        raise ValueError(
            f"log_prob must have shape (batch,) with batch >= 1, got {tuple(log_prob.shape)}"
        )
    return float(-log_prob.detach().mean())  # detach: a metric, not a loss to backpropagate


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
    if num_dims <= 0:
        raise ValueError(f"num_dims must be positive, got {num_dims}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    nats = nll(log_prob) + num_dims * math.log(n_bins)
    return nats / (num_dims * math.log(2))
