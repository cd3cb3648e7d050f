"""What a Glow's manifest records: its test bits/dim and how many of its samples are digits.

The figures of a shipped Glow (``pretrained/<name>.json``) are measured here,
on the official test split, by the same functions that
``benchmarks/pretrained.py`` uses to measure them again.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from course_utils import pretrained
from course_utils.core.data import image_splits
from course_utils.glow.digits import recognisable

__all__ = ["measure_glow", "recognisable_samples"]


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
