"""Lesson 06's exercises: one Runge–Kutta 4 step, the exact divergence, Hutchinson's estimate.

Oracles: ODEs with known solutions (a cubic in ``t``, which RK4 integrates
exactly, and a linear field against the matrix exponential, whose one-step
error must shrink like ``h⁵``), and the full Jacobian from autograd for both
traces, with the estimator's mean over many probes against the exact trace.
"""

from __future__ import annotations

import math

import torch

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close
from course_utils.flows2d.continuous import TimeMLP, probes

__all__ = [
    "rk4_reference",
    "divergence_reference",
    "hutchinson_reference",
]

Tensor = torch.Tensor

# ------------------------------------------------------------------- 06.1 RK4


def rk4_reference(f, t, y, h):
    """One classical Runge–Kutta step from ``(t, y)`` to ``t + h``."""
    k1 = f(t, y)
    k2 = f(t + h / 2, y + (h / 2) * k1)
    k3 = f(t + h / 2, y + (h / 2) * k2)
    k4 = f(t + h, y + h * k3)
    return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


def _rk4_is_euler(f, t, y, h):
    """Takes an Euler step, y + h f(t, y)."""
    return y + h * f(t, y)


def _rk4_midpoint(f, t, y, h):
    """Takes a midpoint (second-order Runge–Kutta) step."""
    return y + h * f(t + h / 2, y + (h / 2) * f(t, y))


def _rk4_no_time_offsets(f, t, y, h):
    """Evaluates every slope at time t, without the offsets h/2 and h."""
    k1 = f(t, y)
    k2 = f(t, y + (h / 2) * k1)
    k3 = f(t, y + (h / 2) * k2)
    k4 = f(t, y + h * k3)
    return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


def _rk4_equal_weights(f, t, y, h):
    """Averages the four slopes with equal weights instead of 1, 2, 2, 1."""
    k1 = f(t, y)
    k2 = f(t + h / 2, y + (h / 2) * k1)
    k3 = f(t + h / 2, y + (h / 2) * k2)
    k4 = f(t + h, y + h * k3)
    return y + (h / 4) * (k1 + k2 + k3 + k4)


@exercise(
    "06.1",
    "One Runge–Kutta 4 step",
    reference=rk4_reference,
    wrong=[_rk4_is_euler, _rk4_midpoint, _rk4_no_time_offsets, _rk4_equal_weights],
    hint=(
        "Four slopes: k1 at the start (t, y); k2 at the middle of the step, t + h/2, from y "
        "moved half a step along k1; k3 at the middle again, from y moved half a step along "
        "k2; k4 at the end, t + h, from y moved a whole step along k3.\n\n"
        "The step averages them with the weights of Simpson's rule: 1, 2, 2, 1, divided by 6."
    ),
    answer=(
        "`k1 = f(t, y)`, `k2 = f(t + h/2, y + h/2 * k1)`, `k3 = f(t + h/2, y + h/2 * k2)`, "
        "`k4 = f(t + h, y + h * k3)`, return `y + h/6 * (k1 + 2*k2 + 2*k3 + k4)`. Its error over "
        "a fixed interval falls like h⁴ (h⁵ per step), at four evaluations of f per step."
    ),
)
def _check_rk4(fn) -> None:
    # dy/dt = 3t² + 2t: RK4 integrates cubics in t exactly (it is Simpson's rule for them).
    y0 = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    t, h = 0.5, 0.3
    got = fn(lambda s, y: (3 * s**2 + 2 * s) * torch.ones_like(y), t, y0, h)
    expect(
        isinstance(got, torch.Tensor) and got.shape == y0.shape,
        f"one step should return a state of the shape of y, {tuple(y0.shape)}",
    )
    exact = y0 + ((t + h) ** 3 - t**3) + ((t + h) ** 2 - t**2)
    expect_close(
        got,
        exact,
        f"one step of dy/dt = 3t² + 2t from t = {t} with h = {h} (RK4 is exact for it; check "
        "the times at which each slope is taken, and the weights)",
        atol=1e-10,
        rtol=0,
    )
    # dy/dt = A y: the one-step error against exp(hA) y must fall like h⁵.
    a = torch.tensor([[-0.3, 2.0], [-1.5, 0.2]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0], [0.3, -0.7]], dtype=torch.float64)
    errors = []
    for step in (0.2, 0.1):
        one = fn(lambda s, v: v @ a.T, 0.0, y, step)
        errors.append((one - y @ torch.linalg.matrix_exp(step * a).T).norm().item())
    ratio = errors[0] / max(errors[1], 1e-300)
    if not 20 < ratio < 50:
        order = math.log2(ratio) - 1 if ratio > 0 else float("nan")
        raise ExerciseFailed(
            f"on dz/dt = Az, halving h divided the one-step error by {ratio:.1f}; RK4's should "
            f"fall about 32-fold (error ∝ h⁵ per step), yours behaves like order {order:.1f}"
        )


# --------------------------------------------------------- 06.2 exact divergence


def divergence_reference(f_z, z):
    """``tr(∂f/∂z)`` of every row, one backward pass per dimension."""
    div = torch.zeros(len(z), dtype=z.dtype)
    for i in range(z.shape[1]):
        (grad_i,) = torch.autograd.grad(f_z[:, i].sum(), z, retain_graph=True)
        div = div + grad_i[:, i]
    return div


def _divergence_of_the_sum(f_z, z):
    """Differentiates the sum of all outputs: the sum of every Jacobian entry, not the trace."""
    (grad,) = torch.autograd.grad(f_z.sum(), z, retain_graph=True)
    return grad.sum(1)


def _divergence_whole_rows(f_z, z):
    """Adds the whole gradient of each f_i, not only its i-th entry."""
    div = torch.zeros(len(z), dtype=z.dtype)
    for i in range(z.shape[1]):
        (grad_i,) = torch.autograd.grad(f_z[:, i].sum(), z, retain_graph=True)
        div = div + grad_i.sum(1)
    return div


def _divergence_first_only(f_z, z):
    """Stops after the first dimension's backward pass."""
    (grad_0,) = torch.autograd.grad(f_z[:, 0].sum(), z, retain_graph=True)
    return grad_0[:, 0]


def _random_field(dim: int):

    torch.manual_seed(dim)
    return TimeMLP(dim, hidden=16, zero_init=False).double()


def _field_and_jacobian(dim: int, batch: int = 8):
    field = _random_field(dim)
    z = torch.randn(batch, dim, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda v: field(0.5, v).sum(0), z.detach())
    return field, z, jac.permute(1, 0, 2)  # (batch, D, D): row b's Jacobian


@exercise(
    "06.2",
    "The exact divergence in D backward passes",
    reference=divergence_reference,
    wrong=[_divergence_of_the_sum, _divergence_whole_rows, _divergence_first_only],
    hint=(
        "One backward pass of `f_z[:, i].sum()` with respect to `z` gives ∂f_i/∂z_j for every "
        "row and every j at once (the rows do not interact). You only need the j = i column.\n\n"
        "Loop over i, keep `grad_i[:, i]`, add them up; pass `retain_graph=True` to "
        "`torch.autograd.grad`, because the same graph is used D times."
    ),
    answer=(
        "`div = 0`; for each i: `(g,) = torch.autograd.grad(f_z[:, i].sum(), z, "
        "retain_graph=True)`, `div = div + g[:, i]`; return `div`. D backward passes, one per "
        "diagonal entry; differentiating `f_z.sum()` once would add up all D² entries."
    ),
)
def _check_divergence(fn) -> None:
    for dim in (3, 6):
        field, z, jac = _field_and_jacobian(dim)
        got = fn(field(0.5, z), z)
        expect(
            isinstance(got, torch.Tensor) and got.shape == (len(z),),
            f"the divergence for z of shape {tuple(z.shape)} should have shape ({len(z)},)",
        )
        want = jac.diagonal(dim1=1, dim2=2).sum(1)
        expect_close(got, want, f"tr(∂f/∂z) for D = {dim} (against autograd's full Jacobian)")


# ------------------------------------------------------------- 06.3 Hutchinson


def hutchinson_reference(f_z, z, eps):
    """``εᵀ (∂f/∂z) ε`` of every row, from one vector-Jacobian product."""
    (vjp,) = torch.autograd.grad(f_z, z, grad_outputs=eps, retain_graph=True)
    return (vjp * eps).sum(1)


def _hutchinson_one_epsilon(f_z, z, eps):
    """Forgets the second ε: returns εᵀJ·1, the row sums, which is biased."""
    (vjp,) = torch.autograd.grad(f_z, z, grad_outputs=eps, retain_graph=True)
    return vjp.sum(1)


def _hutchinson_squared(f_z, z, eps):
    """Returns ‖εᵀJ‖², a squared norm, not the quadratic form εᵀJε."""
    (vjp,) = torch.autograd.grad(f_z, z, grad_outputs=eps, retain_graph=True)
    return (vjp * vjp).sum(1)


def _hutchinson_ones_then_eps(f_z, z, eps):
    """Takes the VJP with a vector of ones, then multiplies by ε: its mean is 0, not the trace."""
    (vjp,) = torch.autograd.grad(f_z, z, grad_outputs=torch.ones_like(eps), retain_graph=True)
    return (vjp * eps).sum(1)


@exercise(
    "06.3",
    "Hutchinson's unbiased trace estimate",
    reference=hutchinson_reference,
    wrong=[_hutchinson_one_epsilon, _hutchinson_squared, _hutchinson_ones_then_eps],
    hint=(
        "`torch.autograd.grad(f_z, z, grad_outputs=eps, retain_graph=True)` returns εᵀJ for "
        "every row in one backward pass.\n\n"
        "What is left is a dot product of that row vector with ε itself, row by row."
    ),
    answer=(
        "`(vjp,) = torch.autograd.grad(f_z, z, grad_outputs=eps, retain_graph=True)`; return "
        "`(vjp * eps).sum(1)`. Unbiased because E[εεᵀ] = I gives E[εᵀJε] = tr J; its variance "
        "is 2‖S‖²_F for Gaussian probes (S the symmetric part of J) and smaller for Rademacher."
    ),
)
def _check_hutchinson(fn) -> None:

    field, z, jac = _field_and_jacobian(4)
    f_z = field(0.5, z)
    gen = torch.Generator().manual_seed(0)
    eps = probes(tuple(z.shape), "gaussian", gen, dtype=torch.float64)
    got = fn(f_z, z, eps)
    expect(
        isinstance(got, torch.Tensor) and got.shape == (len(z),),
        f"the estimate for z of shape {tuple(z.shape)} should have shape ({len(z)},)",
    )
    want = torch.einsum("bi,bij,bj->b", eps, jac, eps)
    expect_close(got, want, "εᵀJε for one probe per point (against autograd's Jacobian)")
    # Unbiased: the mean over many Rademacher probes converges to the exact trace.
    n = 2000
    estimates = torch.stack(
        [
            fn(f_z, z, probes(tuple(z.shape), "rademacher", gen, dtype=torch.float64))
            for _ in range(n)
        ]
    ).detach()
    exact = jac.diagonal(dim1=1, dim2=2).sum(1)
    stderr = estimates.std(0) / math.sqrt(n) + 1e-12
    worst = ((estimates.mean(0) - exact).abs() / stderr).max().item()
    expect(
        worst < 5,
        f"the mean of {n} estimates misses the exact trace by {worst:.1f} standard errors: the "
        "estimate is biased",
    )
