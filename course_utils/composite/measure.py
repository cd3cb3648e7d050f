"""What the coloured Glow's manifest records: test bits/dim, recognisable shares, colour gaps.

The samples of a coloured-MNIST Glow are read through
:func:`ink` (their strokes, as grey digits) by the
shipped digit classifier, and their mean colour is compared with the coloured
test digits' by :func:`course_utils.composite.losses.channel_mean_gap`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from course_utils import pretrained
from course_utils.composite.losses import channel_mean_gap, check_images
from course_utils.core.data import image_splits
from course_utils.glow.digits import recognisable

__all__ = ["coloured_sample_figures", "ink", "measure_coloured_glow"]

Tensor = torch.Tensor


def ink(images: Tensor) -> Tensor:
    """Grey digits back from coloured ones: each pixel's distance from the background colour.

    The background is the median colour of the image's border pixels; the
    distance of every pixel's colour from it, divided by the image's largest
    distance, is the ink ``a`` of :func:`course_utils.core.data.colourize` (exactly,
    up to rounding, for a coloured digit whose darkest stroke pixel has full
    ink). So the digit classifier of lesson 07 can read coloured samples.

    Args:
        images: ``(N, C, H, W)`` in ``[0, 1]``.

    Returns:
        ``(N, 1, H, W)`` in ``[0, 1]``.
    """
    check_images(images, "images")
    border = torch.cat(
        [images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2
    )
    background = border.median(dim=2).values[:, :, None, None]
    distance = (images - background).norm(dim=1, keepdim=True)
    return distance / distance.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)


def measure_coloured_glow(model: nn.Module, samples: int = 1000) -> dict[str, Any]:
    """The figures of a coloured-MNIST Glow's manifest, on the official test digits, coloured.

    Test bits/dim on all 10,000 test digits (coloured with seed 1, noise seeded
    with 1), and :func:`coloured_sample_figures`.
    """

    _, test = image_splits("coloured-mnist")
    model.eval()
    figures: dict[str, Any] = {
        "test_bits_per_dim": round(model.bits_per_dim(test, seed=1), 4),
        "test_images": len(test),
    }
    return figures | coloured_sample_figures(model, samples, test)


def coloured_sample_figures(
    model: nn.Module, samples: int = 1000, test: torch.Tensor | None = None
) -> dict[str, Any]:
    """A coloured-MNIST Glow's recognisable shares, the sample part of its manifest.

    For T = 0.7 and 1, the recognisable share of ``samples`` samples (seeded
    with 0) read through :func:`ink`, and the distance of
    their mean colour from the coloured test digits'
    (:func:`course_utils.composite.losses.channel_mean_gap`); and the share of the first
    ``samples`` real test digits, for calibration. ``test``: those coloured test
    digits, if the caller has them already (else they are coloured here).
    """

    if test is None:
        _, test = image_splits("coloured-mnist")
    model.eval()
    classifier = pretrained.load("digit-classifier")
    real = test.float() / 255
    figures: dict[str, Any] = {
        "recognisable_real_test_digits": round(
            recognisable(classifier, ink(real[:samples])).share, 4
        )
    }
    for t in (0.7, 1.0):
        torch.manual_seed(0)
        x = model.sample(samples, temperature=t)
        r = recognisable(classifier, ink(x))
        figures[f"recognisable_T{t}"] = {
            "share": round(r.share, 4),
            "digits_drawn": r.digits_drawn,
            "per_digit": list(r.counts),
            "samples": r.n,
            "colour_gap": round(float(channel_mean_gap(real, x)), 4),
        }
    figures["recognisable_share"] = figures["recognisable_T0.7"]["share"]
    return figures
