"""Target densities of lesson 05: what variational inference is asked to fit.

A target is an *unnormalised* log-density ``log p̃ : (n, 2) -> (n,)``; its
normalising constant ``Z`` is what VI never needs. This module holds

* the four 2D potentials ``U1``–``U4`` of Rezende & Mohamed (2015, Table 1),
  with a soft wall that makes ``U2``–``U4`` proper densities;
* a Bayesian logistic-regression posterior with two parameters;
* a mixture of two Gaussians whose modes are a chosen distance apart (mode seeking);
* :func:`grid_density`, which normalises any 2D density numerically on a grid,
  the reference against which the lesson measures every fitted flow;
* :func:`noisy_moons` (lesson 11): the two moons with a noise level per point,
  data whose shape depends on a context, for a conditional flow ``p(x | c)``.

The flows and the VI loss live in :mod:`course_utils.flows2d.inference`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_utils.core.checks import check_float, check_int
from course_utils.core.plots import grid_2d
from course_utils.flows2d.flows import _check_vectors

__all__ = [
    "evaluate_log_density",
    "GridDensity",
    "grid_density",
    "WALL_EDGE",
    "WALL_WIDTH",
    "soft_wall",
    "u1",
    "u2",
    "u3",
    "u4",
    "POTENTIALS",
    "log_z_closed_form",
    "logistic_data",
    "LogisticPosterior",
    "two_modes",
    "noisy_moons",
]

Tensor = torch.Tensor
LogDensity = Callable[[Tensor], Tensor]


def evaluate_log_density(log_density: LogDensity, x: Tensor, name: str = "log_target") -> Tensor:
    """``log_density(x)``, checked to be one number per point.

    Args:
        log_density: ``(n, dim) -> (n,)``.
        x: ``(n, dim)`` points.
        name: the argument's name in the error message.

    Returns:
        ``(n,)`` log-densities.

    Raises:
        ValueError: the function returns anything but a tensor of shape ``(n,)``.
    """
    value = log_density(x)
    if not isinstance(value, torch.Tensor) or value.shape != (len(x),):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must map (n, dim) points to shape ({len(x)},), got {got}")
    return value


# ------------------------------------------------------- grid normalisation


@dataclass(frozen=True)
class GridDensity:
    """A 2D density normalised numerically on a regular grid (the reference of the lesson).

    Attributes:
        points: ``(n*n, 2)`` grid points (float64).
        log_prob: ``(n*n,)`` normalised log-density at the points.
        log_z: log of the normalising constant, ``log Σ p̃ · cell area``.
        cell_area: area of one grid cell.
        n: grid points per axis.
    """

    points: Tensor
    log_prob: Tensor
    log_z: float
    cell_area: float
    n: int

    def weights(self) -> Tensor:
        """Probability of each cell, ``(n*n,)``, summing to 1."""
        return torch.softmax(self.log_prob, 0)

    def mean(self) -> Tensor:
        """The mean, shape ``(2,)``."""
        return self.weights() @ self.points

    def cov(self) -> Tensor:
        """The covariance matrix, shape ``(2, 2)``."""
        d = self.points - self.mean()
        return (self.weights()[:, None] * d).T @ d

    def std(self) -> Tensor:
        """The marginal standard deviations, shape ``(2,)``."""
        return self.cov().diagonal().sqrt()

    def kl_to(self, log_q: LogDensity) -> float:
        """The forward divergence ``KL(p ‖ q)`` by quadrature on the grid.

        Args:
            log_q: a normalised log-density, e.g. a flow's ``log_prob``;
                called in chunks on float32 points.

        Returns:
            ``Σ p_i (log p_i − log q_i)`` over the grid cells, in nats.
        """
        pts = self.points.float()
        with torch.no_grad():
            lq = torch.cat([log_q(chunk).double() for chunk in pts.split(8192)])
        w = self.weights()
        keep = w > 0  # cells without mass contribute nothing, even where q = 0
        return float((w[keep] * (self.log_prob[keep] - lq[keep])).sum())


def grid_density(
    log_density: LogDensity,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n: int = 400,
) -> GridDensity:
    """Normalise an unnormalised 2D log-density by a Riemann sum on an ``n × n`` grid.

    The window must hold (almost) all the mass; for smooth densities sampled
    with several points per feature width, the sum is then very accurate.

    Args:
        log_density: ``(m, 2) -> (m,)``, evaluated in float64 chunks.
        xlim, ylim: the window.
        n: points per axis (at least 2).

    Returns:
        A :class:`GridDensity`.

    >>> g = grid_density(lambda z: -0.5 * (z**2).sum(1), (-8, 8), (-8, 8), 200)
    >>> round(g.log_z, 6) == round(math.log(2 * math.pi), 6)
    True
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 points per axis, got {n}")
    if not (xlim[1] > xlim[0] and ylim[1] > ylim[0]):
        raise ValueError(f"xlim and ylim must be increasing, got {xlim} and {ylim}")
    _, _, pts = grid_2d(xlim, ylim, n)
    pts = pts.double()  # the sums below in float64; the points keep their float32 values
    with torch.no_grad():
        chunks = [evaluate_log_density(log_density, c, "log_density") for c in pts.split(65536)]
        log_p = torch.cat(chunks).double()
    area = (xlim[1] - xlim[0]) / (n - 1) * (ylim[1] - ylim[0]) / (n - 1)
    log_z = float(torch.logsumexp(log_p, 0)) + math.log(area)
    return GridDensity(pts, log_p - log_z, log_z, area, n)


# ---------------------------------------------------------------- potentials


def _check_2d(z: Tensor) -> None:
    _check_vectors(z, 2, "z")


def _w1(z1: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z1 / 4)


def _w2(z1: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)


def _w3(z1: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z1 - 1) / 0.3)


WALL_EDGE = 4.0
WALL_WIDTH = 0.2


def soft_wall(z1: Tensor) -> Tensor:
    """``½ (max(|z₁| − 4, 0) / 0.2)²``: zero on ``[−4, 4]``, steep outside.

    ``U2``–``U4`` do not grow along ``z₁`` (``w₁`` is periodic), so ``exp(−U)``
    would have infinite mass. This wall makes them proper densities without
    changing them on the window ``[−4, 4]`` where the paper draws them. Its
    integral is ``∫ exp(−wall) dz₁ = 8 + 0.2 √(2π)``.
    """
    return 0.5 * (F.relu(z1.abs() - WALL_EDGE) / WALL_WIDTH) ** 2


def u1(z: Tensor) -> Tensor:
    """``U1``: a ring of radius 2 split into two lobes. ``(n, 2) -> (n,)``."""
    _check_2d(z)
    z1 = z[:, 0]
    ring = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2
    return ring - torch.logaddexp(-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2)


def u2(z: Tensor) -> Tensor:
    """``U2``: a sine wave (with :func:`soft_wall`). ``(n, 2) -> (n,)``."""
    _check_2d(z)
    z1, z2 = z[:, 0], z[:, 1]
    return 0.5 * ((z2 - _w1(z1)) / 0.4) ** 2 + soft_wall(z1)


def u3(z: Tensor) -> Tensor:
    """``U3``: a sine wave and a second branch that dips below it near ``z₁ = 1``."""
    _check_2d(z)
    z1, z2 = z[:, 0], z[:, 1]
    a = -0.5 * ((z2 - _w1(z1)) / 0.35) ** 2
    b = -0.5 * ((z2 - _w1(z1) + _w2(z1)) / 0.35) ** 2
    return -torch.logaddexp(a, b) + soft_wall(z1)


def u4(z: Tensor) -> Tensor:
    """``U4``: a sine wave and a second branch shifted down by 3 for ``z₁ > 1``."""
    _check_2d(z)
    z1, z2 = z[:, 0], z[:, 1]
    a = -0.5 * ((z2 - _w1(z1)) / 0.4) ** 2
    b = -0.5 * ((z2 - _w1(z1) + _w3(z1)) / 0.35) ** 2
    return -torch.logaddexp(a, b) + soft_wall(z1)


#: The four potentials of Rezende & Mohamed (2015, Table 1); the target is ``exp(−U)``.
POTENTIALS: dict[str, Callable[[Tensor], Tensor]] = {"U1": u1, "U2": u2, "U3": u3, "U4": u4}


def log_z_closed_form(name: str) -> float:
    """``log ∫ exp(−U)`` in closed form for ``U2``–``U4`` (``U1`` has none).

    Along ``z₂`` each branch is a Gaussian of width ``σ`` (integral ``σ√(2π)``)
    whatever ``z₁`` is; along ``z₁`` only the wall remains.

    >>> round(log_z_closed_form("U2"), 4)
    2.1429
    """
    widths = {"U2": [0.4], "U3": [0.35, 0.35], "U4": [0.4, 0.35]}
    if name not in widths:
        raise ValueError(f"no closed form for {name!r}; choose one of {sorted(widths)}")
    along_z1 = 2 * WALL_EDGE + WALL_WIDTH * math.sqrt(2 * math.pi)
    return math.log(sum(widths[name]) * math.sqrt(2 * math.pi) * along_z1)


# ------------------------------------------------------ logistic regression


def logistic_data(
    n: int = 20, intercept: float = -1.0, slope: float = 2.0, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """A small synthetic dataset for Bayesian logistic regression.

    ``x ~ N(0, 1)`` and ``y ~ Bernoulli(sigmoid(intercept + slope · x))``.

    Args:
        n: number of points.
        intercept, slope: the true parameters.
        seed: seeds the draws.

    Returns:
        ``(x, y)``, float32 tensors of shape ``(n,)``; ``y`` holds 0s and 1s.

    >>> x, y = logistic_data(5)
    >>> tuple(x.shape), sorted(set(y.tolist())) <= [0.0, 1.0]
    ((5,), True)
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g)
    y = torch.bernoulli(torch.sigmoid(intercept + slope * x), generator=g)
    return x, y


class LogisticPosterior:
    """Unnormalised log-posterior of ``θ = (intercept, slope)`` of a logistic regression.

    ``log p̃(θ) = log N(θ; 0, prior_std² I) + Σᵢ log Bernoulli(yᵢ; sigmoid(θ₀ + θ₁ xᵢ))``.

    Args:
        x: ``(n,)`` inputs.
        y: ``(n,)`` labels in {0, 1}.
        prior_std: standard deviation of the Gaussian prior on both parameters.
    """

    def __init__(self, x: Tensor, y: Tensor, prior_std: float = 2.0) -> None:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if x.ndim != 1 or y.shape != x.shape:
            raise ValueError(
                f"x and y must both have shape (n,), got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if not bool(((y == 0) | (y == 1)).all()):
            raise ValueError("y must hold only 0s and 1s")
        if prior_std <= 0:
            raise ValueError(f"prior_std must be positive, got {prior_std}")
        self.x, self.y, self.prior_std = x, y, prior_std

    def __call__(self, theta: Tensor) -> Tensor:
        """``(batch, 2) -> (batch,)`` unnormalised log-posterior."""
        _check_vectors(theta, 2, "theta")
        x, y = self.x.to(theta), self.y.to(theta)
        logits = theta[:, :1] + theta[:, 1:] * x  # (batch, n)
        log_lik = -F.binary_cross_entropy_with_logits(
            logits, y.expand_as(logits), reduction="none"
        ).sum(1)
        log_prior = -0.5 * (theta**2).sum(1) / self.prior_std**2 - math.log(
            2 * math.pi * self.prior_std**2
        )
        return log_prior + log_lik


# ---------------------------------------------------------------- two modes


def two_modes(separation: float = 6.0, std: float = 0.5, centre: float = -1.0):
    """An equal mixture of two round Gaussians on the ``x₁`` axis, ``separation`` apart.

    The modes sit at ``(centre ∓ separation / 2, 0)``; the default puts them at
    ``(−4, 0)`` and ``(2, 0)``, so that a flow starting as N(0, I) starts a
    little nearer the right one. The mixture is normalised (``Z = 1``).

    Args:
        separation: distance between the two means (``>= 0``).
        std: standard deviation of each component.
        centre: ``x₁`` of the midpoint between the modes.

    Returns:
        A ``torch.distributions.MixtureSameFamily`` with ``log_prob`` and ``sample``.

    >>> p = two_modes(6.0)
    >>> p.component_distribution.mean.tolist()
    [[-4.0, 0.0], [2.0, 0.0]]
    """
    if not math.isfinite(separation) or separation < 0:
        raise ValueError(f"separation must be a finite number >= 0, got {separation}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    d = torch.distributions
    means = torch.tensor([[centre - separation / 2, 0.0], [centre + separation / 2, 0.0]])
    return d.MixtureSameFamily(
        d.Categorical(torch.tensor([0.5, 0.5])), d.Independent(d.Normal(means, std), 1)
    )


# ------------------------------------------------- moons with a context (lesson 11)


def noisy_moons(
    n: int,
    noise: float | None = None,
    noise_range: tuple[float, float] = (0.02, 0.25),
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The two moons, each point with its own noise level: data ``x`` and its context ``c``.

    A point lies on the upper arc ``(cos θ, sin θ)`` or the lower arc
    ``(1 − cos θ, 0.5 − sin θ)`` (either with probability 1/2, ``θ ~ U[0, π]``,
    the arcs of scikit-learn's ``make_moons``), plus Gaussian noise of standard
    deviation ``σ``. ``σ`` is the context: drawn uniformly in ``noise_range``
    for every point, or fixed. A flow ``p(x | c)`` trained on such pairs learns
    the whole family, from thin moons (small ``σ``) to two blurred clouds.

    Args:
        n: points, >= 1.
        noise: one ``σ`` for every point (>= 0), or None to draw each point's.
        noise_range: ``(low, high)``, ``0 <= low <= high``, the range ``σ`` is drawn in.
        generator: seeds the draws.

    Returns:
        ``(x, c)``: float32 ``(n, 2)`` points and ``(n, 1)`` noise levels.

    Raises:
        ValueError: ``n`` below 1, a negative ``noise``, or a range that is not
            two finite numbers with ``0 <= low <= high``.

    >>> x, c = noisy_moons(5, noise=0.1, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape), tuple(c.shape), c.unique().numel()  # one noise level for all
    ((5, 2), (5, 1), 1)
    """
    n = check_int("n", n, minimum=1)
    if noise is not None:
        noise = check_float("noise", noise, minimum=0)
    if not isinstance(noise_range, (tuple, list)) or len(noise_range) != 2:
        raise ValueError(f"noise_range must be (low, high), got {noise_range!r}")
    low = check_float("noise_range low", noise_range[0], minimum=0)
    high = check_float("noise_range high", noise_range[1], minimum=0)
    if low > high:
        raise ValueError(f"noise_range must have low <= high, got {tuple(noise_range)}")
    theta = torch.rand(n, generator=generator) * math.pi
    lower = torch.rand(n, generator=generator) < 0.5
    arc = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    arc = torch.where(lower[:, None], torch.tensor([1.0, 0.5]) - arc, arc)
    if noise is None:
        sigma = low + (high - low) * torch.rand(n, 1, generator=generator)
    else:
        sigma = torch.full((n, 1), noise)
    x = arc + sigma * torch.randn(n, 2, generator=generator)
    return x.float(), sigma.float()
