"""Continuous normalizing flows (neural ODEs, FFJORD-style) of lesson 06, from scratch.

A continuous flow moves points with a learned velocity field ``f(z, t)``:

    dz/dt = f(z(t), t),        d log p(z(t))/dt = −tr(∂f/∂z)   (instantaneous
                                                               change of variables).

Time runs from the **base** at ``t = 0`` to the **data** at ``t = t1``. As in
:mod:`course_utils.flows2d.flows` (and normflows), ``forward(z)`` maps latent → data
(integrating forwards in time) and returns ``(x, log|det ∂x/∂z|)``;
``inverse(x)`` maps data → latent (integrating backwards) and returns
``(z, log|det ∂z/∂x|)``. Both integrate the same augmented state
``[z, a]`` with ``da/dt = tr(∂f/∂z)`` and ``a = 0`` at the start, so that

    log|det ∂x/∂z| = ∫₀^t1 tr(∂f/∂z) dt,   log p(x) = log p_Z(z(0)) − ∫₀^t1 tr(∂f/∂z) dt.

The solvers are fixed-step (Euler, classical Runge–Kutta 4) and written by
hand. With a fixed step the computed map is invertible and its log-determinant
right only up to the solver's error, which shrinks as ``h⁴`` for RK4.

The divergence ``tr(∂f/∂z)`` is either exact (``D`` vector-Jacobian products,
one per dimension) or Hutchinson's unbiased estimate ``εᵀ (∂f/∂z) ε`` with
``E[ε εᵀ] = I`` (one product per probe ``ε``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_utils.flows2d.flows import StandardNormal, _check_finite, _check_vectors

Tensor = torch.Tensor
Field = Callable[[float, Tensor], Tensor]
"""A right-hand side ``f(t, y)`` returning a tensor of the shape of ``y``."""

PROBES = ("rademacher", "gaussian")
TRACES = ("exact", *PROBES)


# ------------------------------------------------------------------ solvers


def euler_step(f: Field, t: float, y: Tensor, h: float) -> Tensor:
    """One explicit Euler step, ``y + h f(t, y)`` (error O(h) over a fixed interval).

    Args:
        f: the right-hand side ``f(t, y)``.
        t: the current time.
        y: the current state, any shape.
        h: the step (negative to integrate backwards in time).

    Returns:
        The state at ``t + h``, shaped like ``y``.
    """
    return y + h * f(t, y)


def rk4_step(f: Field, t: float, y: Tensor, h: float) -> Tensor:
    """One classical Runge–Kutta step (four evaluations of ``f``, error O(h⁴)).

    Args:
        f: the right-hand side ``f(t, y)``.
        t: the current time.
        y: the current state, any shape.
        h: the step (negative to integrate backwards in time).

    Returns:
        The state at ``t + h``, shaped like ``y``.
    """
    k1 = f(t, y)
    k2 = f(t + h / 2, y + (h / 2) * k1)
    k3 = f(t + h / 2, y + (h / 2) * k2)
    k4 = f(t + h, y + h * k3)
    return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


SOLVERS: dict[str, Callable[[Field, float, Tensor, float], Tensor]] = {
    "euler": euler_step,
    "rk4": rk4_step,
}
"""The fixed-step solvers by name, and how many evaluations of ``f`` a step costs."""

EVALS_PER_STEP = {"euler": 1, "rk4": 4}


def _checked(f: Field) -> Field:
    """``f`` wrapped so that a wrong output shape is a clear error, not a broadcast."""

    def g(t: float, y: Tensor) -> Tensor:
        out = f(t, y)
        if not isinstance(out, torch.Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"f(t, y) must return the shape of y, {tuple(y.shape)}, got {got}")
        return out

    return g


def odeint(
    f: Field,
    y0: Tensor,
    t0: float,
    t1: float,
    steps: int,
    method: str = "rk4",
    return_path: bool = False,
) -> Tensor:
    """Integrate ``dy/dt = f(t, y)`` from ``t0`` to ``t1`` in ``steps`` equal steps.

    ``t1 < t0`` integrates backwards in time (the step is negative).

    Args:
        f: the right-hand side ``f(t, y)``; ``t`` is a Python float.
        y0: the state at ``t0``, any shape.
        t0: start time.
        t1: end time.
        steps: number of steps, at least 1.
        method: ``"rk4"`` or ``"euler"``.
        return_path: also return every intermediate state.

    Returns:
        The state at ``t1`` (shaped like ``y0``), or with ``return_path`` the
        states at all ``steps + 1`` times, stacked: ``(steps + 1, *y0.shape)``.

    Raises:
        ValueError: unknown method, ``steps < 1``, or ``f`` returns another shape.

    >>> y = odeint(lambda t, y: -y, torch.ones(1, dtype=torch.float64), 0.0, 1.0, steps=10)
    >>> print(f"{y.item():.6f}, exact exp(-1) = {torch.exp(torch.tensor(-1.0)).item():.6f}")
    0.367880, exact exp(-1) = 0.367879
    """
    if method not in SOLVERS:
        raise ValueError(f"method must be one of {sorted(SOLVERS)}, got {method!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    step, g = SOLVERS[method], _checked(f)
    h = (t1 - t0) / steps
    y, path = y0, [y0]
    for k in range(steps):
        y = step(g, t0 + k * h, y, h)
        if return_path:
            path.append(y)
    return torch.stack(path) if return_path else y


# --------------------------------------------------------------- divergence


def _check_pair(f_z: Tensor, z: Tensor) -> None:
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z must have shape (batch, D), got {got}")
    if f_z.shape != z.shape:
        raise ValueError(
            f"f_z must have the shape of z, (batch, dim) = {tuple(z.shape)}, got {tuple(f_z.shape)}"
        )
    if not z.requires_grad or f_z.grad_fn is None:
        raise ValueError("f_z must be computed from z with gradients on (z.requires_grad=True)")


def divergence_exact(f_z: Tensor, z: Tensor, create_graph: bool = False) -> Tensor:
    """The exact divergence ``tr(∂f/∂z)`` of every row, with ``D`` vector-Jacobian products.

    Row ``b`` of ``f_z`` depends on row ``b`` of ``z`` only, so one backward pass
    of ``f_z[:, i].sum()`` gives ``∂f_i/∂z_i`` for the whole batch at once.

    Args:
        f_z: ``(batch, D)``, the field evaluated at ``z``.
        z: ``(batch, D)`` with ``requires_grad=True``.
        create_graph: keep the graph, to backpropagate through the result (training).

    Returns:
        ``(batch,)`` divergences.

    >>> z = torch.randn(4, 3, requires_grad=True)
    >>> divergence_exact(z @ torch.diag(torch.tensor([1.0, 2.0, -0.5])), z).tolist()
    [2.5, 2.5, 2.5, 2.5]
    """
    _check_pair(f_z, z)
    div = torch.zeros(len(z), dtype=z.dtype, device=z.device)
    for i in range(z.shape[1]):
        (grad,) = torch.autograd.grad(
            f_z[:, i].sum(), z, create_graph=create_graph, retain_graph=True
        )
        div = div + grad[:, i]
    return div


def probes(
    shape: tuple[int, ...],
    kind: str = "rademacher",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Random probe vectors with ``E[ε εᵀ] = I``, for Hutchinson's estimator.

    Args:
        shape: e.g. ``(batch, D)`` or ``(n_probes, batch, D)``.
        kind: ``"rademacher"`` (±1 with probability ½ each) or ``"gaussian"`` (N(0, 1)).
        generator: a CPU generator, for reproducible probes.
        dtype: the probes' dtype.
        device: where the probes go (drawn on the CPU, so a generator gives
            the same probes everywhere).

    Returns:
        A tensor of ``shape``.
    """
    if kind not in PROBES:
        raise ValueError(f"kind must be one of {PROBES}, got {kind!r}")
    if kind == "gaussian":
        eps = torch.randn(shape, generator=generator, dtype=dtype)
    else:
        eps = torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1
    return eps.to(device)


def divergence_hutchinson(
    f_z: Tensor, z: Tensor, eps: Tensor, create_graph: bool = False, reduce: bool = True
) -> Tensor:
    """Hutchinson's estimate ``εᵀ (∂f/∂z) ε`` of the divergence, one VJP per probe.

    ``εᵀ (∂f/∂z)`` is a single vector-Jacobian product whatever ``D`` is, and
    ``E[εᵀ J ε] = tr(J E[ε εᵀ]) = tr(J)``: unbiased, at the price of variance.

    Args:
        f_z: ``(batch, D)``, the field evaluated at ``z``.
        z: ``(batch, D)`` with ``requires_grad=True``.
        eps: probes ``(batch, D)`` or ``(n_probes, batch, D)``, see :func:`probes`.
        create_graph: keep the graph, to backpropagate through the result.
        reduce: average over the probes; otherwise return each probe's estimate.

    Returns:
        ``(batch,)`` estimates, or ``(n_probes, batch)`` without ``reduce``.

    >>> z = torch.randn(2, 3, requires_grad=True)
    >>> eps = probes((5, 2, 3), "rademacher")  # a diagonal Jacobian: every ±1 probe is exact
    >>> divergence_hutchinson(z * torch.tensor([1.0, 2.0, -0.5]), z, eps).tolist()
    [2.5, 2.5]
    """
    _check_pair(f_z, z)
    many = eps.ndim == 3
    if eps.shape[-2:] != z.shape or eps.ndim not in (2, 3):
        raise ValueError(
            f"eps must have shape (batch, D) = {tuple(z.shape)} or (n_probes, batch, D), "
            f"got {tuple(eps.shape)}"
        )
    estimates = []
    for e in eps if many else eps[None]:
        (vjp,) = torch.autograd.grad(f_z, z, e, create_graph=create_graph, retain_graph=True)
        estimates.append((vjp * e).sum(1))
    out = torch.stack(estimates)
    return out.mean(0) if reduce else out


def hutchinson_variance(jacobian: Tensor, kind: str = "rademacher") -> Tensor:
    """The variance of one probe's estimate ``εᵀ J ε``, in closed form.

    With ``S = (J + Jᵀ)/2`` (only the symmetric part counts, ``εᵀ J ε = εᵀ S ε``):
    Gaussian probes give ``2 ‖S‖²_F``; Rademacher probes ``2 Σ_{i≠j} S_ij²``,
    which drops the diagonal and is never larger.

    Args:
        jacobian: ``(batch, D, D)`` Jacobians.
        kind: ``"rademacher"`` or ``"gaussian"``.

    Returns:
        ``(batch,)`` variances.

    >>> hutchinson_variance(torch.tensor([[[1.0, 2.0], [0.0, 3.0]]]), "gaussian").tolist()
    [24.0]
    """
    if jacobian.ndim != 3 or jacobian.shape[1] != jacobian.shape[2]:
        raise ValueError(f"jacobian must have shape (batch, D, D), got {tuple(jacobian.shape)}")
    if kind not in PROBES:
        raise ValueError(f"kind must be one of {PROBES}, got {kind!r}")
    s = (jacobian + jacobian.transpose(1, 2)) / 2
    total = 2 * (s**2).sum((1, 2))
    if kind == "gaussian":
        return total
    return total - 2 * (torch.diagonal(s, dim1=1, dim2=2) ** 2).sum(1)


# ------------------------------------------------------------- the model


class TimeMLP(nn.Module):
    """A velocity field ``f(z, t)``: an MLP that sees ``t`` as one more input.

    Tanh keeps the field smooth, which a solver with a fixed step needs.

    Args:
        dim: the dimension ``D`` of ``z``.
        hidden: width of the hidden layers.
        n_hidden: number of hidden layers.
        zero_init: start with a zero last layer, so the flow starts as the identity.

    >>> field = TimeMLP(2, hidden=8)
    >>> field(0.5, torch.randn(3, 2)).abs().max().item()  # zero-initialised: no motion yet
    0.0
    """

    def __init__(
        self, dim: int = 2, hidden: int = 64, n_hidden: int = 2, zero_init: bool = True
    ) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or n_hidden < 1:
            raise ValueError(
                f"dim, hidden and n_hidden must be positive, got {dim}, {hidden}, {n_hidden}"
            )
        self.dim = dim
        layers: list[nn.Module] = []
        width = dim + 1
        for _ in range(n_hidden):
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        if zero_init:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, t: float | Tensor, z: Tensor) -> Tensor:
        """``(batch, D) -> (batch, D)``, the velocity at time ``t`` (a float or 0-d tensor)."""
        _check_vectors(z, self.dim, "z")
        t_col = torch.as_tensor(t, dtype=z.dtype, device=z.device).reshape(1, 1)
        return self.net(torch.cat([z, t_col.expand(len(z), 1)], 1))


class CNF(nn.Module):
    """A continuous normalizing flow: a base N(0, I) and a velocity field integrated in time.

    The state ``[z, a]`` of shape ``(batch, D + 1)`` is integrated with
    ``dz/dt = f(z, t)`` and ``da/dt = tr(∂f/∂z)``; see the module docstring for
    the directions. Hutchinson probes are drawn once per integration and kept
    for all its steps, so the solver integrates one fixed, smooth ODE.

    Under ``torch.no_grad()`` (evaluation, sampling) the divergence still
    needs autograd; it is switched on inside and the results are detached.

    Args:
        field: a module ``field(t, z) -> (batch, D)`` with a ``dim`` attribute,
            e.g. :class:`TimeMLP`.
        steps: solver steps for the full interval ``[0, t1]``.
        method: ``"rk4"`` or ``"euler"``.
        trace: ``"exact"``, or Hutchinson with ``"rademacher"`` or ``"gaussian"`` probes.
        t1: the time at which the flow reaches the data.

    >>> cnf = CNF(TimeMLP(2, hidden=8), steps=4)
    >>> tuple(cnf.log_prob(torch.zeros(5, 2)).shape), tuple(cnf.sample(3).shape)
    ((5,), (3, 2))
    """

    def __init__(
        self,
        field: nn.Module,
        steps: int = 10,
        method: str = "rk4",
        trace: str = "exact",
        t1: float = 1.0,
    ) -> None:
        super().__init__()
        if method not in SOLVERS:
            raise ValueError(f"method must be one of {sorted(SOLVERS)}, got {method!r}")
        if trace not in TRACES:
            raise ValueError(f"trace must be one of {TRACES}, got {trace!r}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not t1 > 0:
            raise ValueError(f"t1 must be positive, got {t1}")
        self.field = field
        self.base = StandardNormal(field.dim)
        self.steps, self.method, self.trace, self.t1 = steps, method, trace, float(t1)
        self.generator: torch.Generator | None = None  # for reproducible Hutchinson probes
        self.evaluations = 0  # calls of the field so far (each one also computes a trace)

    @property
    def dim(self) -> int:
        """The dimension of the data (and of the latent space)."""
        return self.field.dim

    def _steps_for(self, t: float) -> int:
        """Steps for an interval of length ``t``: the same step size as for ``[0, t1]``."""
        return max(1, round(self.steps * abs(t) / self.t1))

    def _check_time(self, t: float | None) -> float:
        t = self.t1 if t is None else float(t)
        if not 0 < t <= self.t1:
            raise ValueError(f"t must be in (0, t1] = (0, {self.t1}], got {t}")
        return t

    def _augmented(self, eps: Tensor | None, create_graph: bool) -> Field:
        """The right-hand side of the state ``[z, a]``: ``[f(z, t), tr(∂f/∂z)]``."""
        dim = self.dim

        def rhs(t: float, state: Tensor) -> Tensor:
            self.evaluations += 1
            with torch.enable_grad():
                z = state[:, :dim]
                if not z.requires_grad:  # data, or a no-grad evaluation
                    z = z.detach().requires_grad_(True)
                f_z = self.field(t, z)
                if eps is None:
                    div = divergence_exact(f_z, z, create_graph=create_graph)
                else:
                    div = divergence_hutchinson(f_z, z, eps, create_graph=create_graph)
            if not create_graph:
                f_z, div = f_z.detach(), div.detach()
            return torch.cat([f_z, div[:, None]], 1)

        return rhs

    def integrate(
        self, y: Tensor, t0: float, t1: float, steps: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Move points ``y`` from time ``t0`` to ``t1`` and accumulate ``∫ tr(∂f/∂z) dt``.

        Args:
            y: ``(batch, D)`` points at time ``t0``.
            t0: start time.
            t1: end time (smaller than ``t0`` to go backwards, data → latent).
            steps: solver steps; default: the step size of ``self.steps`` on ``[0, t1]``.

        Returns:
            The points at ``t1``, ``(batch, D)``, and ``∫_{t0}^{t1} tr(∂f/∂z) dt``,
            ``(batch,)``, which is ``log|det ∂y(t1)/∂y(t0)|``.
        """
        _check_vectors(y, self.dim, "y")
        _check_finite(y, "y")
        steps = self._steps_for(t1 - t0) if steps is None else steps
        eps = None
        if self.trace != "exact":
            eps = probes(tuple(y.shape), self.trace, self.generator, y.dtype, y.device)
        state = torch.cat([y, y.new_zeros(len(y), 1)], 1)
        rhs = self._augmented(eps, create_graph=torch.is_grad_enabled())
        out = odeint(rhs, state, t0, t1, steps, self.method)
        return out[:, : self.dim], out[:, self.dim]

    def forward(self, z: Tensor, t: float | None = None) -> tuple[Tensor, Tensor]:
        """Latent → data (forwards in time, from 0 to ``t``, default ``t1``).

        Args:
            z: ``(batch, D)`` latent points.
            t: where to stop, in ``(0, t1]``.

        Returns:
            ``x`` of shape ``(batch, D)`` and ``log|det ∂x/∂z|`` of shape ``(batch,)``.
        """
        _check_vectors(z, self.dim, "z")
        return self.integrate(z, 0.0, self._check_time(t))

    def inverse(self, x: Tensor, t: float | None = None) -> tuple[Tensor, Tensor]:
        """Data → latent (backwards in time, from ``t``, default ``t1``, to 0).

        Args:
            x: ``(batch, D)`` points at time ``t``.
            t: the time of ``x``, in ``(0, t1]``.

        Returns:
            ``z`` of shape ``(batch, D)`` and ``log|det ∂z/∂x|`` of shape ``(batch,)``.
        """
        _check_vectors(x, self.dim)
        return self.integrate(x, self._check_time(t), 0.0)

    def log_prob(self, x: Tensor, t: float | None = None) -> Tensor:
        """``log p_t(x) = log p_Z(z(0)) + log|det ∂z/∂x|``, the density at time ``t``.

        Args:
            x: ``(batch, D)`` points.
            t: the time whose density is evaluated (default ``t1``: the model's density).

        Returns:
            ``(batch,)`` log-densities in nats.
        """
        z, log_det = self.inverse(x, t)
        return self.base.log_prob(z) + log_det

    def forward_kld(self, x: Tensor) -> Tensor:
        """The training loss: mean NLL of a batch in nats (named as in normflows)."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples ``(n, D)``: base samples integrated from 0 to ``t1``."""
        if n < 1:
            raise ValueError(f"n must be a positive number of samples, got {n}")
        x, _ = self.forward(self.base.sample(n, generator))
        return x

    @torch.no_grad()
    def trajectories(self, z: Tensor, steps: int | None = None) -> Tensor:
        """The paths of latent points ``z`` from ``t = 0`` to ``t1`` (no log-density needed).

        Args:
            z: ``(batch, D)`` latent points.
            steps: solver steps (default ``self.steps``); the path has ``steps + 1`` points.

        Returns:
            ``(steps + 1, batch, D)``: the positions at ``t = k · t1 / steps``.
        """
        _check_vectors(z, self.dim, "z")
        _check_finite(z, "z")
        steps = self.steps if steps is None else steps
        return odeint(self.field, z, 0.0, self.t1, steps, self.method, return_path=True)

    def cost_per_pass(self) -> int:
        """Field evaluations of one pass through the flow (each also needs a trace)."""
        return self.steps * EVALS_PER_STEP[self.method]


def moons_cnf(hidden: int = 64, steps: int = 10, method: str = "rk4", trace: str = "exact") -> CNF:
    """The CNF of lesson 06: a 2D :class:`TimeMLP` with two hidden layers, ``t1 = 1``.

    >>> sum(p.numel() for p in moons_cnf(hidden=64).parameters())
    4546
    """
    return CNF(TimeMLP(2, hidden, 2), steps=steps, method=method, trace=trace)


def gaussian_log_prob_after_linear_flow(x: Tensor, a: Tensor, t: float = 1.0) -> Tensor:
    """Closed form for the linear field ``f(z) = A z``: ``x = e^{tA} z`` is N(0, e^{tA} e^{tAᵀ}).

    An oracle for tests and the lesson, independent of any solver.

    Args:
        x: ``(batch, D)`` points.
        a: ``(D, D)`` matrix ``A``.
        t: the time.

    Returns:
        ``(batch,)`` log-densities.
    """
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a must be a square matrix (D, D), got {tuple(a.shape)}")
    _check_vectors(x, a.shape[0])
    m = torch.linalg.matrix_exp(t * a.to(x.dtype))
    cov = m @ m.T
    dist = torch.distributions.MultivariateNormal(torch.zeros(len(a), dtype=x.dtype), cov)
    return dist.log_prob(x)


__all__ = [
    "CNF",
    "EVALS_PER_STEP",
    "PROBES",
    "SOLVERS",
    "TimeMLP",
    "divergence_exact",
    "divergence_hutchinson",
    "euler_step",
    "gaussian_log_prob_after_linear_flow",
    "hutchinson_variance",
    "moons_cnf",
    "odeint",
    "probes",
    "rk4_step",
]
