"""Lesson 08's exercises: one ascent step on the hole, the hole's PSNR, MALA's acceptance ratio.

The oracles: for the ascent step, autograd's gradient of a quadratic
log-density whose gradient is also known by hand, and the rule that the known
values never move; for the PSNR, :func:`course_utils.core.metrics.masked_psnr` and
hand computations (a hole off by 0.1 everywhere scores 20 dB, whatever the
known pixels do); for the acceptance ratio, torch's own Gaussian densities of
the forward and the backward Langevin proposals.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_utils.core.metrics import masked_psnr
from course_utils.exercises import exercise, expect, expect_close

__all__ = [
    "ascent_step_reference",
    "hole_psnr_reference",
    "mala_log_acceptance_reference",
]

Tensor = torch.Tensor

# ------------------------------------------------------- 08.1 one ascent step


def ascent_step_reference(
    log_prob: Callable[[Tensor], Tensor], y: Tensor, mask: Tensor, lr: float
) -> Tensor:
    """One ascent step ``y + lr · ∇ log p(y)`` on the hole (``mask``); known values kept."""
    y = y.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_prob(y).sum(), y)
    return torch.where(mask, y + lr * grad, y).detach()


def _ascent_moves_everything(log_prob, y, mask, lr):
    """Steps every value, the known ones too."""
    y = y.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_prob(y).sum(), y)
    return (y + lr * grad).detach()


def _ascent_descends(log_prob, y, mask, lr):
    """Steps against the gradient: log p goes down."""
    y = y.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_prob(y).sum(), y)
    return torch.where(mask, y - lr * grad, y).detach()


def _ascent_inverted_mask(log_prob, y, mask, lr):
    """Moves the known values and keeps the hole."""
    y = y.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_prob(y).sum(), y)
    return torch.where(~mask, y + lr * grad, y).detach()


@exercise(
    "08.1",
    "one ascent step on the hole",
    reference=ascent_step_reference,
    wrong=[_ascent_moves_everything, _ascent_descends, _ascent_inverted_mask],
    hint=(
        "Make `y` a leaf that needs a gradient (`y = y.detach().requires_grad_(True)`), take "
        "`torch.autograd.grad(log_prob(y).sum(), y)`, and return `torch.where(mask, y + lr * grad, "
        "y)`: the step goes *up* the gradient, and only where `mask` is True (the hole)."
    ),
    answer=(
        "`grad = torch.autograd.grad(log_prob(y).sum(), y)[0]` on `y.detach().requires_grad_()`, "
        "then `torch.where(mask, y + lr * grad, y).detach()`. Summing over the batch is fine: "
        "each image's hole only changes its own term."
    ),
)
def _check_ascent_step(fn) -> None:
    torch.manual_seed(0)
    centre = torch.rand(3, 1, 4, 4)
    scale = 0.5 + torch.rand(3, 1, 4, 4)

    def log_prob(y: Tensor) -> Tensor:  # a Gaussian: ∇ = −(y − centre) / scale²
        return -(((y - centre) / scale) ** 2 / 2).flatten(1).sum(1)

    y = torch.randn(3, 1, 4, 4)
    mask = torch.rand(3, 1, 4, 4) < 0.5
    lr = 0.1
    got = fn(log_prob, y.clone(), mask, lr)
    expect(isinstance(got, Tensor), f"the step should return a tensor, got {type(got).__name__}")
    expect(tuple(got.shape) == tuple(y.shape), f"the result has shape {tuple(got.shape)}")
    expect(torch.equal(got.detach()[~mask], y[~mask]), "the known values (mask False) moved")
    want = torch.where(mask, y - lr * (y - centre) / scale**2, y)
    expect_close(got, want, "the hole after one step of lr 0.1 on a Gaussian log-density")
    expect(
        bool((log_prob(got.detach()) >= log_prob(y)).all()),
        "a small ascent step should not lower log p",
    )


# ---------------------------------------------------------------- 08.2 hole PSNR


def hole_psnr_reference(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PSNR in dB of each image's hole (peak 1): ``−10 log10(MSE over the masked pixels)``."""
    m = mask.flatten(1).to(pred.dtype)
    mse = ((pred - target).flatten(1) ** 2 * m).sum(1) / m.sum(1)
    return -10 * torch.log10(mse)


def _psnr_every_pixel(pred, target, mask):
    """Scores every pixel, the copied known ones too: every method looks better."""
    mse = ((pred - target).flatten(1) ** 2).mean(1)
    return -10 * torch.log10(mse)


def _psnr_peak_255(pred, target, mask):
    """Uses the 8-bit peak 255 on images in [0, 1]."""
    m = mask.flatten(1).to(pred.dtype)
    mse = ((pred - target).flatten(1) ** 2 * m).sum(1) / m.sum(1)
    return 10 * torch.log10(255**2 / mse)


def _psnr_batch_mean(pred, target, mask):
    """One MSE for the whole batch instead of one PSNR per image."""
    m = mask.to(pred.dtype)
    mse = ((pred - target) ** 2 * m).sum() / m.sum()
    return (-10 * torch.log10(mse)).expand(len(pred))


@exercise(
    "08.2",
    "the hole's PSNR",
    reference=hole_psnr_reference,
    wrong=[_psnr_every_pixel, _psnr_peak_255, _psnr_batch_mean],
    hint=(
        "Per image: the mean of `(pred − target)²` over the pixels where `mask` is True only "
        "(sum the masked squares, divide by the number of masked pixels), then `−10 · log10` of "
        "it (the peak value is 1). Return one number per image: shape `(batch,)`."
    ),
    answer=(
        "`m = mask.flatten(1).float(); mse = ((pred - target).flatten(1)**2 * m).sum(1) / "
        "m.sum(1); return -10 * torch.log10(mse)`. The known pixels are copied by every method, "
        "so scoring them would flatter all of them alike."
    ),
)
def _check_hole_psnr(fn) -> None:

    target = torch.rand(4, 1, 6, 6)
    mask = torch.zeros(4, 1, 6, 6, dtype=torch.bool)
    mask[:, :, 1:4, 2:5] = True
    mask[2, :, 0] = True  # images with holes of different sizes
    pred = torch.where(mask, target + 0.1, torch.rand(4, 1, 6, 6))  # known pixels way off
    got = fn(pred, target, mask)
    expect(isinstance(got, Tensor), f"the PSNR should be a tensor, got {type(got).__name__}")
    expect_close(got, torch.full((4,), 20.0), "the PSNR of holes off by 0.1 everywhere", atol=1e-3)
    pred = torch.where(mask, torch.rand(4, 1, 6, 6), target)
    expect_close(
        fn(pred, target, mask), masked_psnr(pred, target, mask), "the PSNR of random holes"
    )
    expect(
        abs(
            float(fn(pred[:1], target[:1], mask[:1])[0]) - float(masked_psnr(pred, target, mask)[0])
        )
        < 1e-4,
        "each image's PSNR should depend on that image only",
    )


# ------------------------------------------------------- 08.3 MALA's acceptance


def mala_log_acceptance_reference(
    y: Tensor,
    proposal: Tensor,
    log_p: Tensor,
    log_p_proposal: Tensor,
    grad: Tensor,
    grad_proposal: Tensor,
    h: float,
) -> Tensor:
    """``log a = log π(y') − log π(y) + log q(y | y') − log q(y' | y)`` per row."""
    forward = ((proposal - y - h / 2 * grad) ** 2).flatten(1).sum(1) / (2 * h)
    backward = ((y - proposal - h / 2 * grad_proposal) ** 2).flatten(1).sum(1) / (2 * h)
    return log_p_proposal - log_p - backward + forward


def _mala_without_proposal(y, proposal, log_p, log_p_proposal, grad, grad_proposal, h):
    """Random-walk Metropolis's ratio: forgets that Langevin proposals are not symmetric."""
    return log_p_proposal - log_p


def _mala_swapped(y, proposal, log_p, log_p_proposal, grad, grad_proposal, h):
    """Swaps the forward and the backward proposal densities."""
    forward = ((proposal - y - h / 2 * grad) ** 2).flatten(1).sum(1) / (2 * h)
    backward = ((y - proposal - h / 2 * grad_proposal) ** 2).flatten(1).sum(1) / (2 * h)
    return log_p_proposal - log_p + backward - forward


def _mala_same_gradient(y, proposal, log_p, log_p_proposal, grad, grad_proposal, h):
    """Uses the current state's gradient for the backward proposal too."""
    forward = ((proposal - y - h / 2 * grad) ** 2).flatten(1).sum(1) / (2 * h)
    backward = ((y - proposal - h / 2 * grad) ** 2).flatten(1).sum(1) / (2 * h)
    return log_p_proposal - log_p - backward + forward


@exercise(
    "08.3",
    "MALA's acceptance ratio",
    reference=mala_log_acceptance_reference,
    wrong=[_mala_without_proposal, _mala_swapped, _mala_same_gradient],
    hint=(
        "The proposal from `y` is Gaussian with mean `y + h/2 · grad` and variance `h`, so "
        "`log q(y' | y) = −‖y' − y − h/2 · grad‖² / 2h` (+ a constant that cancels). The way "
        "back, `q(y | y')`, is centred at `y' + h/2 · grad_proposal`. Then "
        "`log a = log π(y') − log π(y) + log q(y | y') − log q(y' | y)`, one value per row."
    ),
    answer=(
        "`fwd = ((proposal - y - h/2*grad)**2).flatten(1).sum(1) / (2*h)`, `bwd = ((y - proposal "
        "- h/2*grad_proposal)**2).flatten(1).sum(1) / (2*h)`, `log_p_proposal - log_p - bwd + "
        "fwd`. Without the two proposal terms the chain samples the wrong distribution."
    ),
)
def _check_mala(fn) -> None:
    torch.manual_seed(0)
    y, prop, grad, grad2 = (torch.randn(5, 1, 3, 3) for _ in range(4))
    log_p, log_p2 = torch.randn(5), torch.randn(5)
    for h in (0.05, 0.7):
        got = fn(y, prop, log_p, log_p2, grad, grad2, h)
        expect(isinstance(got, Tensor), f"log a should be a tensor, got {type(got).__name__}")
        q_there = torch.distributions.Normal(y + h / 2 * grad, math.sqrt(h))
        q_back = torch.distributions.Normal(prop + h / 2 * grad2, math.sqrt(h))
        want = (
            log_p2
            - log_p
            + q_back.log_prob(y).flatten(1).sum(1)
            - q_there.log_prob(prop).flatten(1).sum(1)
        )
        expect_close(got, want, f"log a of 5 proposals with h = {h}", atol=1e-4)
    same = fn(y, y, log_p, log_p, grad, grad, 0.3)
    expect_close(same, torch.zeros(5), "log a of a proposal equal to the state", atol=1e-5)
