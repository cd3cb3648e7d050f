"""Lesson 05's exercises: the reverse-KL loss, the planar log-determinant and its constraint.

Oracles: the closed-form KL divergence between Gaussians (and its gradient)
for the loss, the autograd Jacobian for the log-determinant, and the
constraint's defining properties for ``û`` (``wᵀû = −1 + softplus(wᵀu)``,
``û − u`` along ``w``, and an increasing map along ``w``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close
from course_utils.flows2d.flows import Flow, StandardNormal
from course_utils.flows2d.inference import LocScale

__all__ = [
    "reverse_kl_reference",
    "planar_log_det_reference",
    "u_hat_reference",
]

Tensor = torch.Tensor

# ------------------------------------------------------------- 05.1 reverse KL


def reverse_kl_reference(flow, log_target, n, generator=None):
    """``E_q[log q(x) − log p̃(x)]`` from ``n`` samples of the flow (the sampling direction only)."""
    z = flow.base.sample(n, generator)
    x, log_det = flow.forward(z)
    log_q = flow.base.log_prob(z) - log_det
    return (log_q - log_target(x)).mean()


def _reverse_kl_flipped(flow, log_target, n, generator=None):
    """Returns the ELBO, E_q[log p̃ − log q], instead of its negative."""
    return -reverse_kl_reference(flow, log_target, n, generator)


def _reverse_kl_plus_log_det(flow, log_target, n, generator=None):
    """Adds the forward log-determinant to log p_Z (the density direction's sign)."""
    z = flow.base.sample(n, generator)
    x, log_det = flow.forward(z)
    return (flow.base.log_prob(z) + log_det - log_target(x)).mean()


def _reverse_kl_detached(flow, log_target, n, generator=None):
    """Detaches the samples, so no gradient reaches the flow through x = f(z)."""
    z = flow.base.sample(n, generator)
    x, log_det = flow.forward(z)
    return (flow.base.log_prob(z) - log_det - log_target(x.detach())).mean()


def _gaussian_flow(loc, scale):

    return Flow(StandardNormal(2), [LocScale(2, loc=torch.tensor(loc), scale=torch.tensor(scale))])


@exercise(
    "05.1",
    "The reverse-KL loss from the flow's own samples",
    reference=reverse_kl_reference,
    wrong=[_reverse_kl_flipped, _reverse_kl_plus_log_det, _reverse_kl_detached],
    hint=(
        "Three lines: draw `z` from `flow.base` (pass it `generator`), push it through "
        "`flow.forward`, which also gives log|det ∂x/∂z|, and use the change of variables in the "
        "sampling direction for log q(x).\n\n"
        "The loss is the mean over the samples of log q(x) − log p̃(x); keep x attached to the "
        "graph, because the gradient reaches the flow through x = f(z)."
    ),
    answer=(
        "`z = flow.base.sample(n, generator)`, `x, log_det = flow.forward(z)`, "
        "`log_q = flow.base.log_prob(z) - log_det`, return `(log_q - log_target(x)).mean()`. "
        "It equals KL(q‖p) − log Z, so minimising it needs no Z; the gradient flows through "
        "`x = f(z)` (the reparametrisation trick)."
    ),
)
def _check_reverse_kl(fn) -> None:
    # q = N(μ, diag σ²) against p̃ = c · N(0, I): the loss is KL(q ‖ N(0, I)) − log c exactly.
    loc, scale, log_c = [0.7, -1.2], [0.5, 1.6], 1.3
    flow = _gaussian_flow(loc, scale)
    standard = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    log_target = lambda x: standard.log_prob(x) + log_c  # noqa: E731
    mu, sigma = torch.tensor(loc), torch.tensor(scale)
    kl = 0.5 * (sigma**2 + mu**2 - 1 - 2 * sigma.log()).sum().item()
    n = 20_000
    loss = fn(flow, log_target, n, torch.Generator().manual_seed(0))
    expect(
        isinstance(loss, torch.Tensor) and loss.numel() == 1,
        f"the loss should be a scalar tensor, got {type(loss).__name__}",
    )
    with torch.no_grad():  # the Monte Carlo error: the spread of log q − log p̃ over samples
        x, log_det = flow.forward(flow.base.sample(n, torch.Generator().manual_seed(1)))
        spread = (flow.log_prob(x) - log_target(x)).std().item()
    tolerance = 5 * spread / math.sqrt(n)
    if abs(loss.item() - (kl - log_c)) > tolerance:
        raise ExerciseFailed(
            f"for q = N(({loc[0]}, {loc[1]}), diag({scale[0] ** 2:g}, {scale[1] ** 2:g})) and "
            f"p̃ = e^{log_c} · N(0, I) the loss "
            f"should be KL(q‖p) − log Z = {kl:.3f} − {log_c} = {kl - log_c:.3f} (up to Monte "
            f"Carlo error), got {loss.item():.3f}"
        )
    expect(
        loss.requires_grad,
        "the loss carries no gradient: keep the samples x = flow.forward(z) attached to the graph",
    )
    loss.backward()
    grad = flow.layers[0].loc.grad
    expect(
        grad is not None and grad.abs().sum() > 0,
        "no gradient reaches the flow's location through log p̃(x): do not detach x",
    )
    # d/dμ of the loss is E[x] = μ for this target, up to the Monte Carlo error.
    expect_close(grad, mu, "the gradient of the loss with respect to the flow's location", atol=0.1)


# ------------------------------------------------------------ 05.2 planar log-det


def planar_log_det_reference(z, w, u_hat, b):
    """``log|1 + h'(wᵀz + b) wᵀû|`` with ``h = tanh``, one number per row of ``z``."""
    h_prime = 1 - torch.tanh(z @ w + b) ** 2
    return torch.log(torch.abs(1 + h_prime * (w @ u_hat)))


def _log_det_no_h_prime(z, w, u_hat, b):
    """Forgets the factor h'(wᵀz + b): log|1 + wᵀû| for every point."""
    return torch.log(torch.abs(1 + (w @ u_hat) * torch.ones(len(z), dtype=z.dtype)))


def _log_det_tanh_not_derivative(z, w, u_hat, b):
    """Uses tanh(wᵀz + b) where its derivative belongs."""
    return torch.log(torch.abs(1 + torch.tanh(z @ w + b) * (w @ u_hat)))


def _log_det_norms(z, w, u_hat, b):
    """Uses the product of the norms, ‖w‖‖û‖, instead of the dot product wᵀû."""
    h_prime = 1 - torch.tanh(z @ w + b) ** 2
    return torch.log(torch.abs(1 + h_prime * w.norm() * u_hat.norm()))


@exercise(
    "05.2",
    "The planar log-determinant by the matrix determinant lemma",
    reference=planar_log_det_reference,
    wrong=[_log_det_no_h_prime, _log_det_tanh_not_derivative, _log_det_norms],
    hint=(
        "The Jacobian is I + û ψᵀ with ψ = h'(wᵀz + b) w, and det(I + û ψᵀ) = 1 + ψᵀû.\n\n"
        "For h = tanh, h'(a) = 1 − tanh(a)²; `z @ w + b` gives wᵀz + b for every row at once."
    ),
    answer=(
        "`h1 = 1 - torch.tanh(z @ w + b) ** 2`, return "
        "`torch.log(torch.abs(1 + h1 * (w @ u_hat)))` (or `torch.log1p(h1 * (w @ u_hat))`, "
        "since the constraint keeps the argument positive). Cost O(D) per point instead of "
        "the O(D³) of a determinant."
    ),
)
def _check_planar_log_det(fn) -> None:
    for dim in (2, 5):
        w = torch.randn(dim, dtype=torch.float64)
        u = torch.randn(dim, dtype=torch.float64)
        u_hat = u + (F.softplus(w @ u) - 1 - w @ u) * w / (w @ w)  # invertible: wᵀû > −1
        b = torch.tensor(0.3, dtype=torch.float64)
        z = 1.5 * torch.randn(20, dim, dtype=torch.float64)
        got = fn(z, w, u_hat, b)
        expect(
            isinstance(got, torch.Tensor) and got.shape == (len(z),),
            f"the log-determinant for z of shape {tuple(z.shape)} should have shape ({len(z)},), "
            f"one number per point, got {getattr(got, 'shape', type(got).__name__)}",
        )

        def planar(v, w=w, u_hat=u_hat, b=b):
            return v + u_hat * torch.tanh(v @ w + b)

        jacobians = torch.stack([torch.autograd.functional.jacobian(planar, zi) for zi in z])
        want = torch.linalg.slogdet(jacobians)[1]
        expect_close(got, want, f"log|det J| for D = {dim} (against autograd's Jacobian)")


# ---------------------------------------------------------- 05.3 the constraint


def u_hat_reference(w, u):
    """``û = u + (m(wᵀu) − wᵀu) w / ‖w‖²`` with ``m(a) = −1 + softplus(a)``."""
    wu = w @ u
    return u + (F.softplus(wu) - 1 - wu) * w / (w @ w)


def _u_hat_over_norm(w, u):
    """Divides by ‖w‖ instead of ‖w‖², so wᵀû misses its target unless ‖w‖ = 1."""
    wu = w @ u
    return u + (F.softplus(wu) - 1 - wu) * w / w.norm()


def _u_hat_without_minus_one(w, u):
    """Uses m(a) = softplus(a), without the −1, so wᵀû > 0 instead of the paper's > −1."""
    wu = w @ u
    return u + (F.softplus(wu) - wu) * w / (w @ w)


def _u_hat_unchanged(w, u):
    """Returns u as it is: for wᵀu < −1 the layer folds."""
    return u.clone()


@exercise(
    "05.3",
    "The planar flow's invertibility constraint",
    reference=u_hat_reference,
    wrong=[_u_hat_over_norm, _u_hat_without_minus_one, _u_hat_unchanged],
    hint=(
        "Only the part of u along w matters for invertibility, so move u along w: "
        "û = u + c · w for a number c.\n\n"
        "Choose c so that wᵀû comes out as m(wᵀu) = −1 + softplus(wᵀu): write wᵀû = wᵀu + c · wᵀw "
        "and solve for c. `torch.nn.functional.softplus` is softplus."
    ),
    answer=(
        "`wu = w @ u`; return `u + (F.softplus(wu) - 1 - wu) * w / (w @ w)`. Dividing by "
        "‖w‖² (not ‖w‖) is what makes wᵀû = −1 + softplus(wᵀu) > −1 exactly; û differs from u "
        "only along w."
    ),
)
def _check_u_hat(fn) -> None:
    gen = torch.Generator().manual_seed(5)
    for norm in (0.3, 2.5):  # a unit w would hide a division by ‖w‖ instead of ‖w‖²
        for target in (-5.0, -1.5, 0.0, 2.0):  # wᵀu, folding or not
            w = torch.randn(3, generator=gen, dtype=torch.float64)
            w = norm * w / w.norm()
            u = torch.randn(3, generator=gen, dtype=torch.float64)
            u = u + (target - w @ u) * w / (w @ w)  # now wᵀu = target
            got = fn(w, u)
            where = f"for ‖w‖ = {norm} and wᵀu = {target}"
            expect(
                isinstance(got, torch.Tensor) and got.shape == u.shape,
                f"û should have the shape of u, {tuple(u.shape)}",
            )
            m = -1 + F.softplus(torch.tensor(target, dtype=torch.float64))
            expect_close(w @ got, m, f"wᵀû {where} (it should be m(wᵀu) = −1 + softplus(wᵀu))")
            along = (got - u) - ((got - u) @ w) * w / (w @ w)
            expect_close(along.norm(), 0.0, f"the part of û − u across w {where}", atol=1e-8)
            alpha = torch.linspace(-6, 6, 241, dtype=torch.float64)
            profile = alpha + (w @ got) * torch.tanh(alpha)
            expect(
                bool((torch.diff(profile) > 0).all()),
                f"{where} the map along w, wᵀz ↦ wᵀx, is not increasing: the layer folds",
            )
