"""Lesson 07's exercises: squeeze, ActNorm's data-dependent start, and a Glow block inverted.

The oracles: ``normflows``' own ``Squeeze`` (its inverse squeezes) on random
shapes, with a round trip through its forward; for ActNorm's initialisation
``normflows``' own ``ActNorm`` started on the same batch, and what the start
promises (every channel leaves with mean 0 and standard deviation 1); for a
Glow block run from the data side, the round trip through the layers'
``forward`` and the log-determinant of the brute-force autograd Jacobian.
"""

from __future__ import annotations

import normflows as nf
import torch

from course_utils.exercises import exercise, expect, expect_close
from course_utils.glow.layers import glow_block

__all__ = [
    "squeeze_reference",
    "actnorm_start_reference",
    "encode_block_reference",
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


# ----------------------------------------------- 07.2 ActNorm's data-dependent start


def actnorm_start_reference(h: Tensor) -> tuple[Tensor, Tensor]:
    """``(t, s)``, each ``(1, C, 1, 1)``: ``(h − t)·e^{−s}`` has mean 0 and std 1 per channel."""
    t = h.mean(dim=(0, 2, 3), keepdim=True)
    s = torch.log(h.std(dim=(0, 2, 3), keepdim=True) + 1e-6)
    return t, s


def _actnorm_whole_batch(h: Tensor) -> tuple[Tensor, Tensor]:
    """One mean and one spread for all channels together: the channels stay unequal."""
    t = h.mean().expand(1, h.shape[1], 1, 1)
    return t, torch.log(h.std() + 1e-6).expand(1, h.shape[1], 1, 1)


def _actnorm_per_position(h: Tensor) -> tuple[Tensor, Tensor]:
    """Statistics over the batch only: one per pixel, not one per channel."""
    return h.mean(dim=0, keepdim=True), torch.log(h.std(dim=0, keepdim=True) + 1e-6)


def _actnorm_sign(h: Tensor) -> tuple[Tensor, Tensor]:
    """The log-scale of the latent → data direction: divides by the spread twice over."""
    t, s = actnorm_start_reference(h)
    return t, -s


def _actnorm_no_log(h: Tensor) -> tuple[Tensor, Tensor]:
    """The spread itself as the log-scale."""
    t, s = actnorm_start_reference(h)
    return t, s.exp()


@exercise(
    "07.2",
    "ActNorm's data-dependent start",
    reference=actnorm_start_reference,
    wrong=[_actnorm_whole_batch, _actnorm_per_position, _actnorm_sign, _actnorm_no_log],
    hint=(
        "ActNorm has one shift and one scale per channel, so its statistics are taken over "
        "everything but the channel axis: the batch and both image axes. From the data side "
        "the layer computes `(h - t) * exp(-s)`: which `t` makes every channel's mean 0, and "
        "which `s` makes its standard deviation 1? In code: `h.mean(dim=(0, 2, 3), "
        "keepdim=True)`, and the log of `h.std(...)` over the same axes."
    ),
    answer=(
        "`t = h.mean(dim=(0, 2, 3), keepdim=True)` and `s = torch.log(h.std(dim=(0, 2, 3), "
        "keepdim=True) + 1e-6)`: per channel, over batch, rows and columns. This is what "
        "normflows' `ActNorm.inverse` does on the first batch it sees; afterwards `t` and `s` "
        "are ordinary parameters that training moves."
    ),
)
def _check_actnorm_start(fn) -> None:
    g = torch.Generator().manual_seed(0)
    for shape in [(16, 4, 14, 14), (8, 8, 7, 7)]:
        # channels with very different means and spreads, as activations of a real batch have
        c = shape[1]
        h = torch.randn(shape, generator=g) * torch.linspace(0.2, 5.0, c).view(1, c, 1, 1)
        h = h + torch.linspace(-3.0, 3.0, c).view(1, c, 1, 1)
        got = fn(h.clone())
        expect(
            isinstance(got, tuple) and len(got) == 2,
            "return the pair (t, s): the shift and the log-scale",
        )
        t, s = got
        for name, v in (("t", t), ("s", s)):
            expect(isinstance(v, Tensor), f"{name} should be a tensor, got {type(v).__name__}")
            expect(
                tuple(v.shape) == (1, c, 1, 1),
                f"{name} should hold one value per channel, shape {(1, c, 1, 1)}, "
                f"got {tuple(v.shape)}",
            )
        out = (h - t) * torch.exp(-s)
        expect_close(
            out.mean(dim=(0, 2, 3)),
            torch.zeros(c),
            f"the mean of every channel of (h - t)·exp(-s), input {shape}",
            atol=1e-3,
        )
        expect_close(
            out.std(dim=(0, 2, 3)),
            torch.ones(c),
            f"the standard deviation of every channel of (h - t)·exp(-s), input {shape}",
            atol=1e-3,
        )
        layer = nf.flows.ActNorm((c, 1, 1))
        layer.inverse(h)  # normflows starts its ActNorm on the first batch it sees
        expect_close(s, layer.s.detach(), "s against normflows' ActNorm started on h", atol=1e-3)
        expect_close(t, layer.t.detach(), "t against normflows' ActNorm started on h", atol=1e-3)


# --------------------------------------------------- 07.3 a Glow block, data side


def encode_block_reference(block: list, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(z, log_det)``: each layer's ``inverse``, last listed first; log-dets summed."""
    log_det = torch.zeros(len(x))
    for layer in reversed(block):
        x, ld = layer.inverse(x)
        log_det = log_det + ld
    return x, log_det


def _encode_in_list_order(block: list, x: Tensor) -> tuple[Tensor, Tensor]:
    """Runs the inverses in the listed order: ActNorm last instead of first."""
    log_det = torch.zeros(len(x))
    for layer in block:
        x, ld = layer.inverse(x)
        log_det = log_det + ld
    return x, log_det


def _encode_forward(block: list, x: Tensor) -> tuple[Tensor, Tensor]:
    """Runs ``forward`` (latent → data) instead of ``inverse``."""
    log_det = torch.zeros(len(x))
    for layer in reversed(block):
        x, ld = layer(x)
        log_det = log_det + ld
    return x, log_det


def _encode_without_log_det(block: list, x: Tensor) -> tuple[Tensor, Tensor]:
    """Keeps only the last layer's log-determinant."""
    for layer in reversed(block):
        x, ld = layer.inverse(x)
    return x, ld + torch.zeros(len(x))


def _started_block(channels: int, seed: int) -> list:
    """A Glow block away from its identity start, its ActNorm already started."""
    torch.manual_seed(seed)
    block = glow_block(channels, hidden=8, layers=1)
    with torch.no_grad():
        for layer in block:
            for p in layer.parameters():
                p.add_(0.3 * torch.randn(p.shape))
        block[-1].data_dep_init_done.fill_(1.0)
    return block


@exercise(
    "07.3",
    "a Glow block, from the data side",
    reference=encode_block_reference,
    wrong=[_encode_in_list_order, _encode_forward, _encode_without_log_det],
    hint=(
        "normflows lists a block's layers from the latent towards the data, so an image meets "
        "them in the reverse order. Each layer's `inverse` maps data → latent and returns "
        "`(output, log_det)`; the log-determinants of maps run one after the other add up. "
        "In code: `for layer in reversed(block): x, ld = layer.inverse(x)`, accumulating `ld`."
    ),
    answer=(
        "Start from `log_det = torch.zeros(len(x))`; `for layer in reversed(block): x, ld = "
        "layer.inverse(x); log_det = log_det + ld`; return `(x, log_det)`. The image meets "
        "ActNorm first, then the 1×1 convolution, then the coupling; the chain rule makes the "
        "log-determinants add."
    ),
)
def _check_encode_block(fn) -> None:
    with torch.random.fork_rng(devices=[]):
        block = _started_block(4, seed=0)
        x = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            got = fn(block, x.clone())
        expect(
            isinstance(got, tuple) and len(got) == 2,
            "return the pair (z, log_det)",
        )
        z, log_det = got
        expect(
            isinstance(z, Tensor) and z.shape == x.shape,
            f"z should be a tensor of the input's shape {tuple(x.shape)}",
        )
        # the oracle for z: the layers' forward, in the listed order, gives x back
        with torch.no_grad():
            back = z
            for layer in block:
                back, _ = layer(back)
        expect_close(back, x, "the block's forward (latent → data) of your z", atol=1e-4)
        # the oracle for log_det: log|det| of the brute-force Jacobian of x -> z, image by image
        expect(
            isinstance(log_det, Tensor) and log_det.shape == (len(x),),
            f"log_det should hold one value per image, shape ({len(x)},)",
        )
        want = []
        for xi in x:

            def one(v, xi=xi):
                out, _ = encode_block_reference(block, v.view(1, *xi.shape))
                return out.flatten()

            jac = torch.autograd.functional.jacobian(one, xi.flatten())
            want.append(torch.linalg.slogdet(jac.double())[1].float())
        expect_close(log_det, torch.stack(want), "log_det against the autograd Jacobian", atol=1e-3)
