"""Lesson 02's exercises: an affine coupling layer, a flow's log-density, the LU matrix.

The oracles share no code with the answers: the coupling is judged by its
round trip and by the determinant of the autograd Jacobian; the flow's
log-density by a flow of linear layers only, whose density
``torch.distributions.MultivariateNormal`` knows, and by the sampling
direction, ``log p(f(z)) = log p_Z(z) − log|det ∂x/∂z|``; the LU matrix by its
determinant and by a product of the factors written out differently.
"""

from __future__ import annotations

import torch
from torch import nn

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close
from course_utils.flows2d import flows

__all__ = [
    "lu_weight_reference",
]

Tensor = torch.Tensor


def _perturb(module: nn.Module, scale: float = 0.5, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _autograd_log_det(fn, z: Tensor) -> Tensor:
    jacobians = [torch.autograd.functional.jacobian(lambda v: fn(v[None])[0], zi) for zi in z]
    return torch.linalg.slogdet(torch.stack(jacobians))[1]


def _pair(out, what: str) -> tuple[Tensor, Tensor]:
    expect(
        isinstance(out, tuple | list) and len(out) == 2,
        f"{what} should return a pair (values, log_det), got {type(out).__name__}",
    )
    return out[0], out[1]


# ---------------------------------------------------------- 02.2 affine coupling


class _CouplingLogDetNegated(flows.AffineCoupling):
    """Returns −Σ s from forward: the log-determinant of the inverse step."""

    def forward(self, z):
        x, log_det = super().forward(z)
        return x, -log_det


class _CouplingShiftBeforeScale(flows.AffineCoupling):
    """Inverts as x · e^(−s) − t, undoing the scale and the shift in the wrong order."""

    def inverse(self, x):
        s, t = self._scale_shift(x * self.mask)
        return x * torch.exp(-s) - t, -s.sum(1)


class _CouplingReadsEverything(flows.AffineCoupling):
    """Feeds the whole z to the network, not m ⊙ z: the inverse cannot see the same input."""

    def forward(self, z):
        s, t = self._scale_shift(z)
        return z * torch.exp(s) + t, s.sum(1)


@exercise(
    "02.2",
    "an affine coupling layer",
    reference=flows.AffineCoupling,
    wrong=[_CouplingLogDetNegated, _CouplingShiftBeforeScale, _CouplingReadsEverything],
    hint=(
        "Both directions start the same way: `s, t = self._scale_shift(... * self.mask)`, "
        "with the kept coordinates only. In `forward` the kept part of `z` equals the kept "
        "part of `x`, so the network sees the same numbers in `inverse`.\n\n"
        "`_scale_shift` already returns zeros on the kept coordinates, so `z * exp(s) + t` "
        "leaves them alone. The log-determinant is a sum over dimension 1; the inverse's is "
        "its negative."
    ),
    answer=(
        "`forward`: `s, t = self._scale_shift(z * self.mask)`; return `(z * exp(s) + t, "
        "s.sum(1))`. `inverse`: `s, t = self._scale_shift(x * self.mask)`; return "
        "`((x - t) * exp(-s), -s.sum(1))`."
    ),
)
def _check_coupling(cls) -> None:
    for k, mask in enumerate(([1.0, 0.0], [0.0, 1.0], [1.0, 0.0, 1.0])):
        dim = len(mask)
        layer = _perturb(cls(mask, hidden=16), seed=k).double()
        z = torch.randn(40, dim, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
        where = f"with mask {mask}"
        x, log_det = _pair(layer.forward(z), "forward(z)")
        expect_close(x.shape[0], 40, f"the number of rows of forward(z) {where}")
        kept = torch.tensor(mask) == 1
        expect_close(x[:, kept], z[:, kept], f"the kept coordinates of forward(z) {where}")
        expect(
            not torch.allclose(x[:, ~kept], z[:, ~kept]),
            f"forward(z) {where} leaves the transformed coordinates unchanged "
            "(the parameters were perturbed, so it should move them)",
        )
        z_back, inv_log_det = _pair(layer.inverse(x), "inverse(x)")
        expect_close(z_back, z, f"inverse(forward(z)) {where}", atol=1e-8)
        want = _autograd_log_det(lambda v, f=layer: f.forward(v)[0], z[:10])
        expect_close(log_det[:10], want, f"the log-det of forward {where} (autograd)", atol=1e-8)
        expect_close(inv_log_det, -log_det, f"the log-det of inverse {where}", atol=1e-8)


# ------------------------------------------------------------ 02.1 log-density


class _FlowNoLogDet(flows.Flow):
    """Forgets the log-determinants: log p(x) = log p_Z(f⁻¹(x)) only."""

    def log_prob(self, x):
        z, _ = self.inverse(x)
        return self.base.log_prob(z)


class _FlowLogDetSubtracted(flows.Flow):
    """Subtracts Σ log|det ∂z/∂x| instead of adding it."""

    def log_prob(self, x):
        z, log_det = self.inverse(x)
        return self.base.log_prob(z) - log_det


class _FlowInverseInOrder(flows.Flow):
    """Runs the inverses from the first layer to the last, not from the data side."""

    def inverse(self, x):
        log_det = x.new_zeros(len(x))
        for layer in self.layers:
            x, ld = layer.inverse(x)
            log_det = log_det + ld
        return x, log_det


@exercise(
    "02.1",
    "a flow's inverse and log-density",
    reference=flows.Flow,
    wrong=[_FlowNoLogDet, _FlowLogDetSubtracted, _FlowInverseInOrder],
    hint=(
        "`self.layers` is listed from the base to the data, and the density starts at the "
        "data, so `inverse` walks the list backwards (`reversed(self.layers)`), adding up "
        "each layer's log-determinant.\n\n"
        "Then `log_prob` is the formula of lesson 01 in the inverse direction: the base "
        "log-density of `z` plus the summed log-determinant of `∂z/∂x`."
    ),
    answer=(
        "`inverse`: start from `log_det = zeros(len(x))`, and for each layer in "
        "`reversed(self.layers)` do `x, ld = layer.inverse(x)` and add `ld`; return "
        "`(x, log_det)`. `log_prob`: `z, log_det = self.inverse(x)`; return "
        "`self.base.log_prob(z) + log_det`."
    ),
)
def _check_flow(cls) -> None:
    gen = torch.Generator().manual_seed(0)
    # Linear layers only: x = W2 W1 z, so p(x) is N(0, A Aᵀ) with A = W2 W1.
    linear = [_perturb(flows.InvertibleLinear(2, seed=k), 0.3, seed=k).double() for k in (1, 2)]
    flow = cls(flows.StandardNormal(2), linear).double()
    x = 2 * torch.randn(50, 2, generator=gen, dtype=torch.float64)
    a = linear[1].weight() @ linear[0].weight()
    mvn = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), a @ a.T)
    with torch.no_grad():
        expect_close(
            flow.log_prob(x), mvn.log_prob(x), "log_prob of a flow of two linear layers", atol=1e-8
        )
    # Couplings and a linear layer: score the samples the forward direction makes.
    layers = [
        _perturb(flows.AffineCoupling([1.0, 0.0], hidden=8), 0.4, seed=3),
        _perturb(flows.InvertibleLinear(2, seed=4), 0.3, seed=4),
        _perturb(flows.AffineCoupling([0.0, 1.0], hidden=8), 0.4, seed=5),
    ]
    flow = cls(flows.StandardNormal(2), [layer.double() for layer in layers]).double()
    z = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        x, log_det = z, torch.zeros(50, dtype=torch.float64)
        for layer in layers:  # sampling, written out: base → data
            x, ld = layer.forward(x)
            log_det = log_det + ld
        z_back, _ = _pair(flow.inverse(x), "inverse(x)")
        expect_close(z_back, z, "inverse(x) for x made from z by the layers", atol=1e-8)
        want = flows.StandardNormal(2).log_prob(z) - log_det
        expect_close(flow.log_prob(x), want, "log_prob(f(z)) = log p_Z(z) - log|det ∂x/∂z|")


# ---------------------------------------------------------------- 02.3 LU matrix


def lu_weight_reference(p, lower, upper, sign, log_s):
    """``W = P L (U + diag(sign · exp(log_s)))`` with unit-lower ``L`` and strictly upper ``U``."""
    eye = torch.eye(len(log_s), dtype=log_s.dtype)
    return (
        p @ (torch.tril(lower, -1) + eye) @ (torch.triu(upper, 1) + torch.diag(sign * log_s.exp()))
    )


def _lu_keeps_lower_diagonal(p, lower, upper, sign, log_s):
    """Uses tril(lower) with its diagonal, so L's diagonal is not 1 and det W ≠ Π s."""
    return p @ torch.tril(lower) @ (torch.triu(upper, 1) + torch.diag(sign * log_s.exp()))


def _lu_no_sign(p, lower, upper, sign, log_s):
    """Leaves out the signs: the diagonal of U is exp(log_s), always positive."""
    eye = torch.eye(len(log_s), dtype=log_s.dtype)
    return p @ (torch.tril(lower, -1) + eye) @ (torch.triu(upper, 1) + torch.diag(log_s.exp()))


def _lu_upper_first(p, lower, upper, sign, log_s):
    """Multiplies in the order P U L."""
    eye = torch.eye(len(log_s), dtype=log_s.dtype)
    return (
        p @ (torch.triu(upper, 1) + torch.diag(sign * log_s.exp())) @ (torch.tril(lower, -1) + eye)
    )


@exercise(
    "02.3",
    "the LU-parametrised matrix",
    reference=lu_weight_reference,
    wrong=[_lu_keeps_lower_diagonal, _lu_no_sign, _lu_upper_first],
    hint=(
        "Build the two triangular factors first: `torch.tril(lower, -1)` keeps what is "
        "strictly below the diagonal, and adding `torch.eye(d)` puts the ones there. "
        "`torch.triu(upper, 1)` keeps what is strictly above.\n\n"
        "The diagonal of the upper factor is `sign * exp(log_s)`. Multiply in the order "
        "of the formula, P first."
    ),
    answer=(
        "`P @ (tril(lower, -1) + I) @ (triu(upper, 1) + diag(sign * exp(log_s)))`. Then "
        "`log|det W| = Σ log_s` whatever the parameters, and `W` stays invertible."
    ),
)
def _check_lu(fn) -> None:
    gen = torch.Generator().manual_seed(0)
    for d in (2, 3, 5):
        p = torch.eye(d, dtype=torch.float64)[torch.randperm(d, generator=gen)]
        lower, upper = (torch.randn(d, d, generator=gen, dtype=torch.float64) for _ in range(2))
        sign = torch.where(torch.rand(d, generator=gen) < 0.5, -1.0, 1.0).double()
        log_s = 0.5 * torch.randn(d, generator=gen, dtype=torch.float64)
        w = fn(p, lower, upper, sign, log_s)
        if not isinstance(w, torch.Tensor) or w.shape != (d, d):
            shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ExerciseFailed(f"for d={d} W should have shape ({d}, {d}), got {shape}")
        sign_det, log_abs_det = torch.linalg.slogdet(w)
        expect_close(log_abs_det, log_s.sum(), f"log|det W| for d={d} (should be Σ log_s)")
        expect_close(sign_det, torch.linalg.det(p) * sign.prod(), f"the sign of det W for d={d}")
        # The factors written out entry by entry, as a check of the order of the product.
        unit_lower = torch.eye(d, dtype=torch.float64)
        upper_full = torch.diag(sign * log_s.exp())
        for i in range(d):
            for j in range(d):
                if i > j:
                    unit_lower[i, j] = lower[i, j]
                elif i < j:
                    upper_full[i, j] = upper[i, j]
        expect_close(w, p @ unit_lower @ upper_full, f"W for d={d}", atol=1e-10)
