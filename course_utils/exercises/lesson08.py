"""Lesson 08's exercises: one ascent step on the hole, latent MAP's objective, MALA's ratio.

The oracles: for the ascent step, autograd's gradient of a quadratic
log-density whose gradient is also known by hand, and the rule that the known
values never move; for latent MAP's objective, torch's own Gaussian densities
of the known pixels and of every level's latents (minus their constants); for
the acceptance ratio, torch's own Gaussian densities of the forward and the
backward Langevin proposals.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_utils.exercises import exercise, expect, expect_close

__all__ = [
    "ascent_step_reference",
    "latent_map_objective_reference",
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


# ------------------------------------------------------ 08.2 latent MAP's objective


def latent_map_objective_reference(
    decoded: Tensor, x: Tensor, mask: Tensor, z: list[Tensor], sigma: float
) -> Tensor:
    """``‖(1 − M)·(f⁻¹(z) − x)‖² / 2σ² + ‖z‖² / 2`` per image, ``z`` summed over every level."""
    known = (~mask).to(decoded.dtype)
    fit = ((decoded - x) ** 2 * known).flatten(1).sum(1) / (2 * sigma**2)
    return fit + sum(0.5 * (t**2).flatten(1).sum(1) for t in z)


def _objective_whole_image(decoded, x, mask, z, sigma):
    """Fits the hole too: the true image's hole is unknown, so this cheats (or fits zeros)."""
    fit = ((decoded - x) ** 2).flatten(1).sum(1) / (2 * sigma**2)
    return fit + sum(0.5 * (t**2).flatten(1).sum(1) for t in z)


def _objective_first_level(decoded, x, mask, z, sigma):
    """Penalises the first level's latents only: the others can grow without a cost."""
    known = (~mask).to(decoded.dtype)
    fit = ((decoded - x) ** 2 * known).flatten(1).sum(1) / (2 * sigma**2)
    return fit + 0.5 * (z[0] ** 2).flatten(1).sum(1)


def _objective_sigma_not_squared(decoded, x, mask, z, sigma):
    """Divides the misfit by 2σ instead of 2σ²: the known pixels weigh 20 times too little."""
    known = (~mask).to(decoded.dtype)
    fit = ((decoded - x) ** 2 * known).flatten(1).sum(1) / (2 * sigma)
    return fit + sum(0.5 * (t**2).flatten(1).sum(1) for t in z)


def _objective_batch_total(decoded, x, mask, z, sigma):
    """One number for the whole batch: the images' fits are no longer separate."""
    known = (~mask).to(decoded.dtype)
    fit = ((decoded - x) ** 2 * known).sum() / (2 * sigma**2)
    return (fit + sum(0.5 * (t**2).sum() for t in z)).expand(len(x))


@exercise(
    "08.2",
    "latent MAP's objective",
    reference=latent_map_objective_reference,
    wrong=[
        _objective_whole_image,
        _objective_first_level,
        _objective_sigma_not_squared,
        _objective_batch_total,
    ],
    hint=(
        "The objective is minus a log posterior of the latents, up to constants: minus the log "
        "of a Gaussian of scale σ around `decoded` at the **known** pixels of `x` (the hole is "
        "what we do not know, so it cannot be scored), plus minus the log of the standard "
        "normal at **every level's** latents in the list `z`. Per image: "
        "`((decoded - x)**2 * (~mask)).flatten(1).sum(1) / (2 * sigma**2)` plus "
        "`sum(0.5 * (t**2).flatten(1).sum(1) for t in z)`."
    ),
    answer=(
        "`known = (~mask).float(); fit = ((decoded - x)**2 * known).flatten(1).sum(1) / "
        "(2 * sigma**2); return fit + sum(0.5 * (t**2).flatten(1).sum(1) for t in z)`. Asim et al. "
        "write it `‖(1 − M)(f⁻¹(z) − x)‖² + γ‖z‖²`, the same objective times 2σ², with "
        "γ = σ²: a smaller σ trusts the known pixels more, a larger one the prior."
    ),
)
def _check_latent_map_objective(fn) -> None:
    torch.manual_seed(0)
    x, decoded = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    mask = torch.rand(3, 1, 4, 4) < 0.4
    mask[1] = False
    mask[1, :, :2] = True  # holes of different sizes
    z = [torch.randn(3, 4, 2, 2), torch.randn(3, 2, 1, 1)]  # two levels, as a Glow's
    for sigma in (0.05, 0.3):
        got = fn(decoded, x, mask, z, sigma)
        expect(
            isinstance(got, Tensor), f"the objective should be a tensor, got {type(got).__name__}"
        )
        expect(tuple(got.shape) == (3,), f"one value per image: shape (3,), got {tuple(got.shape)}")
        # The oracle: minus the log-densities, without their constants.
        known = ~mask
        pixels = torch.distributions.Normal(decoded, sigma).log_prob(x)
        n_known = known.flatten(1).sum(1)
        log_lik = (pixels * known).flatten(1).sum(1) + n_known * (
            math.log(sigma) + 0.5 * math.log(2 * math.pi)
        )
        normal = torch.distributions.Normal(0.0, 1.0)
        log_prior = sum(
            normal.log_prob(t).flatten(1).sum(1) + t[0].numel() * 0.5 * math.log(2 * math.pi)
            for t in z
        )
        expect_close(
            got, -log_lik - log_prior, f"the objective of 3 images, two latent levels, σ = {sigma}"
        )
    moved = torch.where(mask, torch.rand(3, 1, 4, 4), decoded)
    expect_close(
        fn(moved, x, mask, z, 0.05),
        fn(decoded, x, mask, z, 0.05),
        "the objective after changing the decoded hole only (it should not change)",
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
