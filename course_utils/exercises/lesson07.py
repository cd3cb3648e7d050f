"""Lesson 07's exercises: squeeze, uniform dequantization, and bits per dimension.

The oracles: ``normflows``' own ``Squeeze`` (its inverse squeezes) on random
shapes, with a round trip through its forward; for dequantization the bins
themselves (every value must fall in its integer's bin, the noise must be
fresh and spread evenly inside the bin); for bits/dim hand computations from
the definition, including the two values every learner can check in their
head (a uniform density is 8 bits/dim).
"""

from __future__ import annotations

import math

import normflows as nf
import torch

from course_utils.exercises import exercise, expect, expect_close

__all__ = [
    "squeeze_reference",
    "dequantize_reference",
    "bits_per_dim_reference",
]

Tensor = torch.Tensor

# ------------------------------------------------------------------ 07.1 squeeze


def squeeze_reference(x: Tensor) -> Tensor:
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``: each 2×2 patch becomes 4 channels (the lesson's)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def _squeeze_by_reshape(x: Tensor) -> Tensor:
    """Reshapes without moving the patch axes: neighbouring rows end up in one channel."""
    b, c, h, w = x.shape
    return x.reshape(b, 4 * c, h // 2, w // 2)


def _squeeze_wrong_order(x: Tensor) -> Tensor:
    """Puts the patch axes after the channel's 2×2 offsets the other way round (h/w swapped)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 5, 3, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


@exercise(
    "07.1",
    "squeeze: 2×2 patches into channels",
    reference=squeeze_reference,
    wrong=[_squeeze_by_reshape, _squeeze_wrong_order],
    hint=(
        "Split each spatial axis in two with `x.view(b, c, h // 2, 2, w // 2, 2)`: the size-2 axes "
        "are the position inside a 2×2 patch. Move them next to the channel axis with `permute` "
        "(channel, row-in-patch, column-in-patch, patch row, patch column), then `reshape` to "
        "`(b, 4 * c, h // 2, w // 2)`. A plain `reshape` of `x` is not enough: it does not move "
        "the patch axes."
    ),
    answer=(
        "`x.view(b, c, h//2, 2, w//2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4*c, h//2, w//2)`; "
        "the order (channel, row offset, column offset) is normflows' `Squeeze`, so the result "
        "equals `nf.flows.Squeeze().inverse(x)[0]`."
    ),
)
def _check_squeeze(fn) -> None:
    squeezer = nf.flows.Squeeze()
    for shape in [(1, 1, 4, 4), (2, 3, 6, 8), (3, 2, 28, 28)]:
        x = torch.randn(shape)
        got = fn(x.clone())
        want = squeezer.inverse(x)[0]
        what = f"squeeze of an input of shape {shape}"
        expect(
            isinstance(got, Tensor),
            f"{what} should be a tensor, got {type(got).__name__}",
        )
        expect_close(got, want, what, atol=0, rtol=0)
        # and normflows' forward (un-squeeze) must give the input back
        expect_close(squeezer.forward(got)[0], x, f"un-squeezing your {what}", atol=0, rtol=0)


# ----------------------------------------------------------- 07.2 dequantization


def dequantize_reference(k: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``u = (k + v) / 256`` with ``v ~ U[0, 1)`` per pixel: 8-bit ``k`` into ``[0, 1)``."""
    v = torch.rand(k.shape, generator=generator)
    return (k.float() + v) / 256


def _dequantize_no_noise(k: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Only rescales: every image is a point, so a density can spike on it."""
    return k.float() / 256


def _dequantize_by_255(k: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Divides by 255: the bins overlap and the top bin leaves [0, 1)."""
    return (k.float() + torch.rand(k.shape, generator=generator)) / 255


def _dequantize_same_noise(k: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One noise value for the whole batch: the bins are not filled evenly."""
    v = torch.rand((), generator=generator)
    return (k.float() + v) / 256


@exercise(
    "07.2",
    "uniform dequantization",
    reference=dequantize_reference,
    wrong=[_dequantize_no_noise, _dequantize_by_255, _dequantize_same_noise],
    hint=(
        "Draw `v = torch.rand(k.shape, generator=generator)`, one independent value in [0, 1) "
        "per pixel, add it to `k.float()` and divide by 256 (there are 256 bins of width 1/256)."
    ),
    answer=(
        "`(k.float() + torch.rand(k.shape, generator=generator)) / 256`. Dividing by 255 makes "
        "the bins overlap; noise shared across pixels does not fill each bin evenly."
    ),
)
def _check_dequantize(fn) -> None:
    k = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    k[0] = 255  # the top bin must stay below 1
    k[1] = 0
    u = fn(k, torch.Generator().manual_seed(0))
    expect(isinstance(u, Tensor), f"the result should be a tensor, got {type(u).__name__}")
    expect(u.shape == k.shape, f"the result has shape {tuple(u.shape)}, should be {tuple(k.shape)}")
    expect(u.is_floating_point(), f"the result should be floating point, got {u.dtype}")
    expect(bool((u >= 0).all() and (u < 1).all()), "every value should lie in [0, 1)")
    expect(
        torch.equal((u.double() * 256).floor().long(), k.long()),
        "each value must stay in its integer's bin: floor(256 · u) should give k back",
    )
    again = fn(k, torch.Generator().manual_seed(1))
    expect(not torch.equal(u, again), "another generator should give other noise")
    frac = (u.double() * 256 - k.double()).flatten()  # the noise v itself
    # v ~ U[0, 1): mean 1/2, variance 1/12, and no two pixels share it
    expect(abs(frac.mean().item() - 0.5) < 0.01, "the noise should average 1/2 over the pixels")
    expect(abs(frac.var().item() - 1 / 12) < 0.005, "the noise should be uniform in [0, 1)")
    expect(
        frac.view(len(k), -1).std(1).min().item() > 0.2,
        "each pixel should get its own noise value",
    )


# ---------------------------------------------------------- 07.3 bits per dimension


def bits_per_dim_reference(log_p: Tensor, num_dims: int) -> Tensor:
    """Bits/dim from ``log p(u)`` in nats: ``(-log p / D + log 256) / log 2``."""
    return (-log_p / num_dims + math.log(256)) / math.log(2)


def _bpd_without_log_256(log_p: Tensor, num_dims: int) -> Tensor:
    """Forgets the ``D log 256`` of the change from [0, 256) to [0, 1)."""
    return -log_p / (num_dims * math.log(2))


def _bpd_in_nats(log_p: Tensor, num_dims: int) -> Tensor:
    """Leaves the result in nats per dimension."""
    return -log_p / num_dims + math.log(256)


def _bpd_sign(log_p: Tensor, num_dims: int) -> Tensor:
    """Uses +log p instead of the negative log-likelihood."""
    return (log_p / num_dims + math.log(256)) / math.log(2)


@exercise(
    "07.3",
    "bits per dimension from log p(u)",
    reference=bits_per_dim_reference,
    wrong=[_bpd_without_log_256, _bpd_in_nats, _bpd_sign],
    hint=(
        "The discrete NLL of 8-bit images is `-log p(u) + D · log 256` nats (u = k/256 shrinks "
        "each of the D axes by 256). Divide by D for 'per dimension' and by log 2 to turn nats "
        "into bits. Check: a uniform density on [0, 1)^D (log p = 0) must give exactly 8."
    ),
    answer=(
        "`(-log_p / num_dims + math.log(256)) / math.log(2)`, i.e. `-log p / (D log 2) + 8`. "
        "Without the log 256 term a uniform density would score 0 instead of 8."
    ),
)
def _check_bits_per_dim(fn) -> None:
    expect_close(fn(torch.zeros(1), 784), torch.tensor([8.0]), "bits/dim of log p = 0 (uniform)")
    d = 784
    cases = torch.tensor([1000.0, -250.0, 2 * d * math.log(2)])
    want = -cases / (d * math.log(2)) + 8
    expect_close(fn(cases.clone(), d), want, f"bits/dim of log p = {cases.tolist()} with D = {d}")
    expect_close(
        fn(torch.tensor([3.0 * 2 * math.log(2)]), 3),
        torch.tensor([6.0]),
        "bits/dim of log p = 6 log 2 with D = 3 (two bits per dimension saved)",
    )
