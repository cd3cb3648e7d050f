"""Lesson 09's exercises: the colour term, bits per dimension from nats, and the noise of (c).

The oracles share no code with the answers: the colour gap is checked against
a loop over channels in numpy, bits/dim against the change of logarithm base
written out for a uniform density and for random log-likelihoods, and the
noise of length ``T`` by its length, its direction and its shapes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close

__all__ = [
    "colour_gap_reference",
    "bits_per_dim_reference",
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


# ------------------------------------------------------------ 09.2 bits per dimension


def bits_per_dim_reference(log_p: Tensor, num_dims: int) -> Tensor:
    """Mean bits/dim of 8-bit images from ``log p(u)`` in nats of ``u = (k + v)/256``."""
    return (-log_p / (num_dims * math.log(2)) + 8).mean()


def _bpd_no_256(log_p: Tensor, num_dims: int) -> Tensor:
    """Forgets the 8 bits of the change of scale from ``u`` in [0, 1) back to 0..256."""
    return (-log_p / (num_dims * math.log(2))).mean()


def _bpd_in_nats(log_p: Tensor, num_dims: int) -> Tensor:
    """Divides by D but not by log 2: nats per dimension."""
    return (-log_p / num_dims + 8).mean()


def _bpd_log10(log_p: Tensor, num_dims: int) -> Tensor:
    """Converts with log 10 instead of log 2."""
    return (-log_p / (num_dims * math.log(10)) + 8).mean()


@exercise(
    "09.2",
    "The scaled NLL: bits per dimension from nats",
    reference=bits_per_dim_reference,
    wrong=[_bpd_no_256, _bpd_in_nats, _bpd_log10],
    hint=(
        "Nats become bits by dividing by `log 2` (`math.log(2)`), and a whole image's "
        "bits become bits per dimension by dividing by `num_dims`.\n\n"
        "The model sees `u = (k + v) / 256` in [0, 1); each of the D dimensions was "
        "squeezed by 256, which adds `log2(256) = 8` bits per dimension. Average over the batch."
    ),
    answer=(
        "`(-log_p / (num_dims * math.log(2)) + 8).mean()`: nats to bits (÷ log 2), per "
        "dimension (÷ D), plus the 8 bits of the factor 256 between the model's [0, 1) "
        "and the 256 pixel levels. A uniform density (`log_p = 0`) scores exactly 8."
    ),
)
def _check_bits_per_dim(fn) -> None:
    expect_close(fn(torch.zeros(4), 2352), 8.0, "bits/dim of a uniform density (log p = 0)")
    d = 2352
    # An image half as likely per dimension (log p = D log 2) costs one bit per dimension less.
    expect_close(fn(torch.full((3,), d * math.log(2)), d), 7.0, "bits/dim for log p = D log 2")
    gen = torch.Generator().manual_seed(2)
    for dims in (784, 2352):
        log_p = torch.randn(16, generator=gen, dtype=torch.float64) * 300 + 2000
        by_hand = float(np.mean([8 - float(v) / dims / math.log(2) for v in log_p]))
        expect_close(fn(log_p, dims), by_hand, f"bits/dim of 16 log-likelihoods, D = {dims}")


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
