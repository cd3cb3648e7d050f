"""Lesson 01's exercises: a change-of-variables density, an inverse by bisection, a 2D log-det.

The oracles share no code with the answers: ``torch.distributions.LogNormal``
(a textbook density) for the exponential map, the round trip ``f(f⁻¹(x)) = x``
for the bisection, and the determinant of the autograd Jacobian for the 2D map.
"""

from __future__ import annotations

import math

import torch

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close

__all__ = [
    "exp_map_log_prob_reference",
    "invert_increasing_reference",
    "coupled_tanh_log_det_reference",
]

Tensor = torch.Tensor

# ------------------------------------------------------- 01.1 the exponential map


def exp_map_log_prob_reference(x, mu, sigma):
    """``log p_X(x)`` for ``x = exp(mu + sigma z)``, ``z ~ N(0, 1)``."""
    z = (torch.log(x) - mu) / sigma  # inverse: data -> latent
    log_slope = math.log(sigma) + mu + sigma * z  # log f'(z) = log(sigma e^(mu + sigma z))
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - log_slope


def _exp_no_jacobian(x, mu, sigma):
    """Leaves out the Jacobian: the density of z at f⁻¹(x), not a density of x."""
    z = (torch.log(x) - mu) / sigma
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi)


def _exp_jacobian_added(x, mu, sigma):
    """Adds log f'(z) instead of subtracting it."""
    z = (torch.log(x) - mu) / sigma
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi) + math.log(sigma) + mu + sigma * z


def _exp_forgets_sigma(x, mu, sigma):
    """Takes f'(z) = e^(mu + sigma z), forgetting the factor sigma of the chain rule."""
    z = (torch.log(x) - mu) / sigma
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - (mu + sigma * z)


@exercise(
    "01.1",
    "the density of x = exp(mu + sigma z)",
    reference=exp_map_log_prob_reference,
    wrong=[_exp_no_jacobian, _exp_jacobian_added, _exp_forgets_sigma],
    hint=(
        "Two steps, as in section 1. The inverse: solve `x = exp(mu + sigma z)` for `z`. "
        "The slope: differentiate `f(z) = exp(mu + sigma z)` by the chain rule; its log is "
        "simple.\n\n"
        "Then `log p_X(x) = log p_Z(z) - log f'(z)`, with `log p_Z(z) = -z²/2 - log(2π)/2`."
    ),
    answer=(
        "`z = (log x - mu) / sigma`, `log f'(z) = log sigma + mu + sigma z` (which equals "
        "`log sigma + log x`), so `log p_X(x) = -z²/2 - log(2π)/2 - log sigma - log x`: the "
        "log-normal density, as `torch.distributions.LogNormal(mu, sigma)` computes it."
    ),
)
def _check_exp_map(fn) -> None:
    gen = torch.Generator().manual_seed(0)
    for mu, sigma in ((0.0, 1.0), (0.5, 0.4), (-1.0, 2.0)):
        x = torch.exp(mu + sigma * torch.randn(200, generator=gen, dtype=torch.float64))
        got = fn(x, mu, sigma)
        want = torch.distributions.LogNormal(mu, sigma).log_prob(x)
        expect_close(got, want, f"exp_map_log_prob(x, mu={mu}, sigma={sigma})", atol=1e-6)


# ------------------------------------------------------------ 01.2 bisection


def invert_increasing_reference(f, x, low, high, iterations=60):
    """``z`` with ``f(z) = x`` for an increasing ``f``, by bisection in ``[low, high]``."""
    for _ in range(iterations):
        mid = (low + high) / 2
        above = f(mid) > x  # the root lies left of mid where f(mid) is already above x
        high = torch.where(above, mid, high)
        low = torch.where(above, low, mid)
    return (low + high) / 2


def _bisect_wrong_half(f, x, low, high, iterations=60):
    """Keeps the wrong half: moves ``low`` up where ``f(mid)`` is above ``x``."""
    for _ in range(iterations):
        mid = (low + high) / 2
        above = f(mid) > x
        low = torch.where(above, mid, low)
        high = torch.where(above, high, mid)
    return (low + high) / 2


def _bisect_few_steps(f, x, low, high, iterations=60):
    """Stops after 8 halvings, whatever ``iterations`` says: off by up to (high - low) / 512."""
    return invert_increasing_reference(f, x, low, high, iterations=8)


@exercise(
    "01.2",
    "an inverse by bisection",
    reference=invert_increasing_reference,
    wrong=[_bisect_wrong_half, _bisect_few_steps],
    hint=(
        "Keep a bracket `[low, high]` around the answer for every point. Each step, look at "
        "the middle `mid`: if `f(mid) > x`, the answer is left of `mid`, so `mid` becomes the "
        "new `high`; otherwise it becomes the new `low`.\n\n"
        "`torch.where(condition, a, b)` does this for all points at once. After the loop, "
        "return the middle of the bracket."
    ),
    answer=(
        "Loop `iterations` times: `mid = (low + high) / 2`; `above = f(mid) > x`; "
        "`high = torch.where(above, mid, high)`; `low = torch.where(above, low, mid)`; return "
        "`(low + high) / 2`. Each step halves the bracket, so 60 steps reach float64 round-off."
    ),
)
def _check_bisection(fn) -> None:
    cases = {
        "z + 2 tanh(2z)": (lambda z: z + 2 * torch.tanh(2 * z), 2.0),
        "z + z³": (lambda z: z + z**3, 0.0),
        "sinh(z / 2)": (lambda z: torch.sinh(z / 2), 0.0),
    }
    gen = torch.Generator().manual_seed(0)
    for name, (f, width) in cases.items():
        z = 3 * torch.randn(100, generator=gen, dtype=torch.float64)
        x = f(z)
        # a bracket that surely holds the answer: [z - 1 - width, z + 1 + width]
        low = z - 1.0 - width - torch.rand(100, generator=gen, dtype=torch.float64)
        high = z + 1.0 + width + torch.rand(100, generator=gen, dtype=torch.float64)
        got = fn(f, x, low.clone(), high.clone())
        if not isinstance(got, torch.Tensor) or got.shape != z.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ExerciseFailed(f"for f(z) = {name}, z should have shape (100,), got {shape}")
        err = (f(got) - x).abs().max().item()
        expect(
            err < 1e-9,
            f"for f(z) = {name}, f(z) misses x by up to {err:.3g} (should be below 1e-9): "
            "does the bracket shrink towards the answer, and for enough steps?",
        )


# ------------------------------------------------------------ 01.3 a 2D log-det


def coupled_tanh_log_det_reference(z, a, b):
    """``log|det J|`` of ``x₁ = z₁ + a tanh(z₂)``, ``x₂ = z₂ + b tanh(z₁)``, per point."""
    sech2_1 = 1 / torch.cosh(z[:, 0]) ** 2
    sech2_2 = 1 / torch.cosh(z[:, 1]) ** 2
    return torch.log(torch.abs(1 - a * b * sech2_1 * sech2_2))


def _log_det_diagonal_only(z, a, b):
    """Multiplies the diagonal only, as if the Jacobian were triangular (log 1 = 0)."""
    return torch.zeros(len(z), dtype=z.dtype)


def _log_det_plus(z, a, b):
    """Adds the off-diagonal product instead of subtracting it."""
    sech2 = 1 / torch.cosh(z) ** 2
    return torch.log(1 + a * b * sech2[:, 0] * sech2[:, 1])


def _log_det_swapped(z, a, b):
    """Differentiates both tanh terms at z₁ (a sech²(z₁) instead of a sech²(z₂))."""
    sech2_1 = 1 / torch.cosh(z[:, 0]) ** 2
    return torch.log(torch.abs(1 - a * b * sech2_1**2))


@exercise(
    "01.3",
    "log|det J| of a 2D map by hand",
    reference=coupled_tanh_log_det_reference,
    wrong=[_log_det_diagonal_only, _log_det_plus, _log_det_swapped],
    hint=(
        "Write the 2×2 Jacobian entry by entry: `∂x₁/∂z₁`, `∂x₁/∂z₂`, `∂x₂/∂z₁`, `∂x₂/∂z₂`. "
        "The derivative of `tanh(u)` is `1 / cosh(u)²`.\n\n"
        "This Jacobian is not triangular: both off-diagonal entries count in "
        "`det = J₁₁ J₂₂ − J₁₂ J₂₁`."
    ),
    answer=(
        "`J = [[1, a sech²(z₂)], [b sech²(z₁), 1]]`, so `det J = 1 − a b sech²(z₁) sech²(z₂)` "
        "and the answer is `log|1 − a b sech²(z₁) sech²(z₂)|` (positive for `|a b| < 1`)."
    ),
)
def _check_coupled_tanh(fn) -> None:
    gen = torch.Generator().manual_seed(0)
    z = 1.5 * torch.randn(30, 2, generator=gen, dtype=torch.float64)
    for a, b in ((0.8, 0.9), (-0.7, 0.5), (0.9, -1.0)):

        def f(v, a=a, b=b):
            return torch.stack([v[0] + a * torch.tanh(v[1]), v[1] + b * torch.tanh(v[0])])

        want = torch.stack(
            [torch.linalg.det(torch.autograd.functional.jacobian(f, zi)).abs().log() for zi in z]
        )
        expect_close(fn(z, a, b), want, f"log_abs_det for a={a}, b={b}", atol=1e-8)
