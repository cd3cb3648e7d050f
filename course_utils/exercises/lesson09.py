"""Lesson 09's exercises: the colour term, its gradient by hand, and the noise of (c).

The oracles share no code with the answers: the colour gap is checked against
a loop over channels in numpy, its gradient against autograd, and the
noise of length ``T`` by its length, its direction and its shapes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close

__all__ = [
    "colour_gap_reference",
    "colour_gap_gradient_reference",
    "noise_of_length_reference",
]

Tensor = torch.Tensor

# ------------------------------------------------------------ 09.1 the colour gap


def colour_gap_reference(x: Tensor, x_hat: Tensor) -> Tensor:
    """``‖μ_c(x) − μ_c(x̂)‖₂`` with ``μ_c`` the mean of channel ``c`` over a batch and its pixels."""
    return torch.linalg.vector_norm(x.mean(dim=(0, 2, 3)) - x_hat.mean(dim=(0, 2, 3)))


def _gap_per_image(x: Tensor, x_hat: Tensor) -> Tensor:
    """Averages the distance between each image's mean colour and the other batch's."""
    return torch.linalg.vector_norm(x.mean(dim=(2, 3)) - x_hat.mean(dim=(0, 2, 3)), dim=1).mean()


def _gap_squared(x: Tensor, x_hat: Tensor) -> Tensor:
    """Forgets the square root: the squared distance."""
    return (x.mean(dim=(0, 2, 3)) - x_hat.mean(dim=(0, 2, 3))).pow(2).sum()


def _gap_grey(x: Tensor, x_hat: Tensor) -> Tensor:
    """Averages over the channels too: the difference of the mean brightness."""
    return (x.mean() - x_hat.mean()).abs()


@exercise(
    "09.1",
    "The colour term",
    reference=colour_gap_reference,
    wrong=[_gap_per_image, _gap_squared, _gap_grey],
    hint=(
        "First `μ_c`: one number per channel, the mean over the batch and all pixels, "
        "`x.mean(dim=(0, 2, 3))` (shape `(C,)`). Do the same for `x_hat`; the two batches "
        "may have different sizes.\n\n"
        "Then the Euclidean length of the difference of the two vectors: "
        "`torch.linalg.vector_norm(...)` (a square root of a sum of squares)."
    ),
    answer=(
        "`torch.linalg.vector_norm(x.mean(dim=(0, 2, 3)) - x_hat.mean(dim=(0, 2, 3)))`. "
        "The means are over the batch *and* the pixels, so the term compares the two "
        "batches' mean colours, not image by image; it is a distance (with the square root)."
    ),
)
def _check_colour_gap(fn) -> None:
    gen = torch.Generator().manual_seed(9)
    # A case a learner can redo by hand: black images against one constant colour.
    x = torch.zeros(2, 3, 4, 4)
    x_hat = torch.ones(3, 3, 2, 2) * torch.tensor([0.3, 0.0, 0.4])[:, None, None]
    expect_close(fn(x, x_hat), 0.5, "colour_gap(black images, colour (0.3, 0, 0.4))")
    for n, m, size in [(5, 7, 6), (16, 4, 28)]:
        x = torch.rand(n, 3, size, size, generator=gen) ** 2  # not symmetric about 0.5
        x_hat = torch.rand(m, 3, size // 2, size // 2, generator=gen)
        xs, ys = x.numpy().astype(np.float64), x_hat.numpy().astype(np.float64)
        by_hand = math.sqrt(sum((xs[:, c].mean() - ys[:, c].mean()) ** 2 for c in range(3)))
        got = fn(x, x_hat)
        expect(
            isinstance(got, Tensor) and got.ndim == 0,
            f"colour_gap should return one number (a 0-d tensor), got "
            f"{tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__}",
        )
        expect_close(got, by_hand, f"colour_gap for batches of {n} and {m} images")
    # Differentiable: the term is a loss, its gradient must reach the samples.
    x_hat = torch.rand(4, 3, 5, 5, generator=gen, requires_grad=True)
    fn(torch.rand(3, 3, 5, 5, generator=gen), x_hat).backward()
    if x_hat.grad is None or not torch.isfinite(x_hat.grad).all():
        raise ExerciseFailed("colour_gap must be differentiable: no gradient reached x_hat")


# ------------------------------------------- 09.2 the colour term's gradient


def colour_gap_gradient_reference(x: Tensor, x_hat: Tensor) -> Tensor:
    """``∂‖μ(x) − μ(x̂)‖₂ / ∂x̂``, written out: the same push for every pixel of a channel."""
    diff = x.mean(dim=(0, 2, 3)) - x_hat.mean(dim=(0, 2, 3))  # (C,)
    m, _, h, w = x_hat.shape
    per_pixel = -diff / torch.linalg.vector_norm(diff) / (m * h * w)
    return per_pixel.view(1, -1, 1, 1).expand_as(x_hat)


def _gradient_sign(x: Tensor, x_hat: Tensor) -> Tensor:
    """Forgets the minus sign: x̂ enters the difference μ(x) − μ(x̂) negatively."""
    return -colour_gap_gradient_reference(x, x_hat)


def _gradient_no_mean(x: Tensor, x_hat: Tensor) -> Tensor:
    """Forgets that each pixel is one of m·H·W in the channel's mean."""
    m, _, h, w = x_hat.shape
    return colour_gap_gradient_reference(x, x_hat) * (m * h * w)


def _gradient_squared(x: Tensor, x_hat: Tensor) -> Tensor:
    """The gradient of half the squared distance: no division by the gap."""
    diff = x.mean(dim=(0, 2, 3)) - x_hat.mean(dim=(0, 2, 3))
    return colour_gap_gradient_reference(x, x_hat) * torch.linalg.vector_norm(diff)


@exercise(
    "09.2",
    "The colour term's gradient, by hand",
    reference=colour_gap_gradient_reference,
    wrong=[_gradient_sign, _gradient_no_mean, _gradient_squared],
    hint=(
        "Write `d = μ(x) − μ(x̂)`, a vector of C numbers, and the gap `g = ‖d‖`. "
        "The chain rule gives `∂g/∂d = d / g`, and `∂d_c/∂x̂[i, c, h, w] = −1 / (m·H·W)`: "
        "each of the m·H·W pixels of channel c counts once in its mean.\n\n"
        "So every pixel of channel c gets the same value, `−d_c / (g · m·H·W)`; build the "
        "`(C,)` vector and expand it to `x_hat`'s shape with `.view(1, -1, 1, 1).expand_as(x_hat)`."
    ),
    answer=(
        "`d = x.mean(dim=(0, 2, 3)) - x_hat.mean(dim=(0, 2, 3))`, then "
        "`(-d / d.norm() / (m * h * w)).view(1, -1, 1, 1).expand_as(x_hat)`. Every pixel of "
        "a channel gets the same push, against the channel's error and shrinking with the "
        "number of pixels: the term says how much colour to add, never where."
    ),
)
def _check_colour_gap_gradient(fn) -> None:
    gen = torch.Generator().manual_seed(4)
    for n, m, size in [(4, 6, 5), (16, 8, 28)]:
        x = torch.rand(n, 3, size, size, generator=gen) ** 2
        x_hat = torch.rand(m, 3, size, size, generator=gen).requires_grad_(True)
        gap = torch.linalg.vector_norm(x.mean(dim=(0, 2, 3)) - x_hat.mean(dim=(0, 2, 3)))
        (autograd,) = torch.autograd.grad(gap, x_hat)
        got = fn(x, x_hat.detach())
        expect(
            isinstance(got, Tensor) and tuple(got.shape) == tuple(x_hat.shape),
            f"the gradient should have x_hat's shape {tuple(x_hat.shape)}, got "
            f"{tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__}",
        )
        expect_close(got, autograd, f"the gradient for {m} samples of {size}×{size} (autograd)")


# --------------------------------------------------- 09.3 noise at the wrong scale


def noise_of_length_reference(eps: list[Tensor], temperature: float) -> list[Tensor]:
    """Rescale every sample's noise, all levels together, to length ``temperature``."""
    squared = sum(e.pow(2).flatten(1).sum(1) for e in eps)
    length = torch.sqrt(squared)
    return [temperature * e / length.view(-1, *([1] * (e.ndim - 1))) for e in eps]


def _length_per_level(eps: list[Tensor], temperature: float) -> list[Tensor]:
    """Gives every level its own length T, so the whole vector is longer than T."""
    return [temperature * e / e.flatten(1).norm(dim=1).view(-1, *([1] * (e.ndim - 1))) for e in eps]


def _length_per_batch(eps: list[Tensor], temperature: float) -> list[Tensor]:
    """Divides by the length of the whole batch's noise instead of each sample's."""
    length = torch.sqrt(sum(e.pow(2).sum() for e in eps))
    return [temperature * e / length for e in eps]


def _std_over_d(eps: list[Tensor], temperature: float) -> list[Tensor]:
    """Divides by sqrt(D): the right length on average, but not exactly T for each sample."""
    d = sum(e[0].numel() for e in eps)
    return [temperature * e / math.sqrt(d) for e in eps]


@exercise(
    "09.3",
    "Noise of length T (configuration (c))",
    reference=noise_of_length_reference,
    wrong=[_length_per_level, _length_per_batch, _std_over_d],
    hint=(
        "Each sample's noise is spread over several tensors, one per level of the Glow. "
        "Its squared length is the sum, over all levels, of `e.pow(2).flatten(1).sum(1)` "
        "(one number per sample).\n\n"
        "Divide every level's tensor by that length (reshaped to `(n, 1, 1, 1)` so it "
        "broadcasts) and multiply by the temperature."
    ),
    answer=(
        "`length = sqrt(Σ_levels e.pow(2).flatten(1).sum(1))` per sample, then "
        "`[T * e / length.view(-1, 1, 1, 1) for e in eps]`. The length is over all levels "
        "together; each sample is rescaled by its own length, so every sample's noise has "
        "length exactly T (a standard deviation of about T/√D per dimension)."
    ),
)
def _check_noise_of_length(fn) -> None:
    gen = torch.Generator().manual_seed(3)
    shapes = [(24, 7, 7), (6, 14, 14)]  # lesson 09's two levels: D = 1176 + 1176
    for n, t in [(5, 0.7), (3, 1.0)]:
        eps = [torch.randn(n, *s, generator=gen) for s in shapes]
        out = fn([e.clone() for e in eps], t)
        expect(
            isinstance(out, list | tuple) and len(out) == len(eps),
            f"noise_of_length should return one tensor per level ({len(eps)}), got "
            f"{len(out) if isinstance(out, list | tuple) else type(out).__name__}",
        )
        for k, (o, e) in enumerate(zip(out, eps, strict=True)):
            expect(
                tuple(o.shape) == tuple(e.shape),
                f"level {k}: shape {tuple(o.shape)}, should stay {tuple(e.shape)}",
            )
        flat_out = torch.cat([o.flatten(1) for o in out], 1)
        flat_in = torch.cat([e.flatten(1) for e in eps], 1)
        expect_close(
            flat_out.norm(dim=1), torch.full((n,), t), f"each sample's noise length (T = {t})"
        )
        cosine = torch.nn.functional.cosine_similarity(flat_out, flat_in, dim=1)
        expect_close(cosine, torch.ones(n), "the direction of each sample's noise (cosine)")
