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

__all__ = [
    "SINGLE_BACKGROUND",
    "coloured_sample_figures",
    "ink",
    "measure_coloured_glow",
    "single_background",
]

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


#: What :func:`single_background` calls a background of one colour: in the frame of
#: ``width`` pixels around the image (where MNIST's digits, centred in a 20×20 box,
#: put almost no ink), at least ``share`` of the pixels lie within ``tol`` (Euclidean,
#: RGB in [0, 1]) of the frame's median colour.
SINGLE_BACKGROUND = {"width": 3, "tol": 0.1, "share": 0.97}


def single_background(
    images: Tensor,
    width: int = SINGLE_BACKGROUND["width"],
    tol: float = SINGLE_BACKGROUND["tol"],
    share: float = SINGLE_BACKGROUND["share"],
) -> Tensor:
    """Which images have a background of one colour: ``(N,)`` booleans.

    The frame of ``width`` pixels along the four edges (300 of a 28×28 image's
    784 pixels for ``width=3``) is the image's background; its median colour is
    the background colour, and the image passes when at least ``share`` of the
    frame's pixels lie within ``tol`` of it. A patch of a second colour in a
    corner or along an edge, or a background that drifts from one colour to
    another, fails; a stray stroke pixel in the frame does not.

    Args:
        images: ``(N, C, H, W)`` in ``[0, 1]``, with ``H, W > 2 · width``.
        width, tol, share: see :data:`SINGLE_BACKGROUND`.

    >>> flat = torch.full((2, 3, 28, 28), 0.2)
    >>> flat[1, :, :14, :14] = 0.6  # a second colour in one quarter
    >>> single_background(flat).tolist()
    [True, False]
    """
    check_images(images, "images")
    h, w = images.shape[2:]
    if not (0 < width and 2 * width < min(h, w)):
        raise ValueError(f"width must leave an inside to the {h}×{w} images, got {width}")
    frame = torch.ones(h, w, dtype=torch.bool)
    frame[width:-width, width:-width] = False
    pixels = images[:, :, frame]  # (N, C, frame pixels)
    colour = pixels.median(dim=2, keepdim=True).values
    near = (pixels - colour).norm(dim=1) <= tol  # (N, frame pixels)
    return near.float().mean(1) >= share


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
    with 0) read through :func:`ink`, the share with a background of one colour
    (:func:`single_background`), and the distance of
    their mean colour from the coloured test digits'
    (:func:`course_utils.composite.losses.channel_mean_gap`); and the same two shares of
    the first ``samples`` real test digits, for calibration. ``test``: those coloured test
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
        ),
        "single_background_real_test_digits": round(
            float(single_background(real[:samples]).float().mean()), 4
        ),
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
            "single_background": round(float(single_background(x).float().mean()), 4),
            "colour_gap": round(float(channel_mean_gap(real, x)), 4),
        }
    figures["recognisable_share"] = figures["recognisable_T0.7"]["share"]
    return figures
