"""What a Glow's manifest records: its test bits/dim and how many of its samples are digits.

The figures of a shipped Glow (``pretrained/<name>.json``) are measured here,
on the official test split, by the same functions that
``benchmarks/pretrained.py`` uses to measure them again. Also the
importance-weighted bound of lesson 07 (:func:`importance_weighted_log_prob`),
which tightens the one-sample dequantization bound with ``K`` noise draws.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from course_utils import pretrained
from course_utils.core.checks import check_int
from course_utils.core.data import image_splits
from course_utils.glow.digits import recognisable

__all__ = [
    "dequantization_bounds",
    "importance_weighted_log_prob",
    "measure_glow",
    "recognisable_samples",
]

Tensor = torch.Tensor


def recognisable_samples(
    model: nn.Module, samples: int = 1000, temperatures: tuple[float, ...] = (0.7, 1.0)
) -> dict[float, Any]:
    """:func:`course_utils.glow.digits.recognisable` of ``samples`` draws of an MNIST Glow at each
    temperature (sampling seeded with 0 before each), by the shipped digit classifier."""

    classifier = pretrained.load("digit-classifier")
    out = {}
    for t in temperatures:
        torch.manual_seed(0)
        out[t] = recognisable(classifier, model.sample(samples, temperature=t))
    return out


def measure_glow(model: nn.Module, dataset: str, samples: int = 1000) -> dict[str, Any]:
    """The figures a Glow's manifest records, measured on the official test split.

    Test bits/dim on all test images (dequantization noise seeded with 1); for
    MNIST also the recognisable share of ``samples`` samples at T = 0.7 and 1
    (:mod:`course_utils.glow.digits`, sampling seeded with 0).
    """

    _, test = image_splits(dataset)
    model.eval()
    figures: dict[str, Any] = {
        "test_bits_per_dim": round(model.bits_per_dim(test, seed=1), 4),
        "test_images": len(test),
    }
    if dataset == "mnist":
        for t, r in recognisable_samples(model, samples).items():
            figures[f"recognisable_T{t}"] = {
                "share": round(r.share, 4),
                "digits_drawn": r.digits_drawn,
                "per_digit": list(r.counts),
                "samples": r.n,
            }
        figures["recognisable_share"] = figures["recognisable_T0.7"]["share"]
    return figures


@torch.no_grad()
def dequantization_bounds(
    model: nn.Module,
    images: Tensor,
    samples: int,
    generator: torch.Generator | None = None,
    batch_size: int = 50,
) -> Tensor:
    """``samples`` one-draw bounds ``log p(u) − log q(v|k)`` per image: ``(samples, batch)``.

    Row ``j`` is :meth:`~course_utils.glow.model.Glow.dequantized_log_prob` of
    the images with the ``j``-th draw of dequantization noise (the model's own
    dequantizer, or uniform noise without one); the draws come from
    ``generator`` in row order, ``batch_size`` images at a time. Each row's
    mean is the usual single-sample estimate; :func:`importance_weighted_log_prob`
    combines the rows into a tighter bound.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        images: ``uint8`` images ``(batch, C, H, W)``.
        samples: draws of the noise per image, ``K >= 1``.
        generator: seeds the noise.
        batch_size: images per pass.
    """
    samples = check_int("samples", samples, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    return torch.stack(
        [
            torch.cat([model.dequantized_log_prob(p, generator) for p in images.split(batch_size)])
            for _ in range(samples)
        ]
    )


def importance_weighted_log_prob(bounds: Tensor) -> Tensor:
    """The importance-weighted bound from ``K`` one-draw bounds per image: ``(batch,)``.

    With ``K`` draws ``v_j ~ q(v|k)`` of the dequantization noise,
    ``log (1/K) Σ_j p(u_j) / q(v_j|k)`` is a lower bound on ``log P(k) + D log 256``
    that is never looser (in expectation) than the mean of the ``K`` one-draw
    bounds and tightens as ``K`` grows (Burda et al., 2016; Ho et al., 2019).

    Args:
        bounds: ``(K, batch)`` values ``log p(u_j) − log q(v_j|k)``, e.g. from
            :func:`dequantization_bounds`.

    Returns:
        ``logsumexp_j(bounds) − log K`` per image, in nats (bits/dim with
        :func:`course_utils.core.metrics.bits_per_dim`).

    >>> iw = importance_weighted_log_prob(torch.tensor([[0.0], [math.log(3.0)]]))  # log((1 + 3)/2)
    >>> round(iw.item() - math.log(2), 6)
    0.0
    """
    if not isinstance(bounds, Tensor) or bounds.dim() != 2 or len(bounds) < 1:
        raise ValueError(
            "bounds must be a (K, batch) tensor of one-draw bounds, got "
            f"{tuple(bounds.shape) if isinstance(bounds, Tensor) else type(bounds).__name__}"
        )
    return torch.logsumexp(bounds, dim=0) - math.log(len(bounds))
