"""Hand-made bijections of lesson 01, with their inverses and log-derivatives.

Each one maps a latent ``z`` to data ``x`` (``forward``) and back
(``inverse``), elementwise or as a fixed matrix, and reports
``log|det ∂x/∂z|`` so that the change-of-variables formula

    log p_X(x) = log p_Z(f⁻¹(x)) − log|det ∂x/∂z| evaluated at z = f⁻¹(x)

can be written in one line (:func:`pushforward_log_prob`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from course_utils.core.checks import check_float

__all__ = [
    "standard_normal_log_prob",
    "SinhArcsinh",
    "pushforward_log_prob",
    "Linear2D",
    "Banana",
    "TanhBump",
]

Tensor = torch.Tensor


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Log-density of N(0, I) summed over the last axis of ``z`` when it is 2D.

    Args:
        z: ``(n,)`` for 1D points or ``(n, d)`` for d-dimensional points.

    Returns:
        ``(n,)`` log-densities in nats.
    """
    lp = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    return lp.sum(-1) if z.ndim == 2 else lp


@dataclass
class SinhArcsinh:
    """The sinh-arcsinh map ``x = loc + scale · sinh((arcsinh(z) + skew) / tail)``.

    Applied to a standard normal ``z`` it gives the sinh-arcsinh family of
    Jones & Pewsey (2009): ``skew`` tilts the density, ``tail`` < 1 fattens the
    tails and > 1 thins them, ``loc``/``scale`` move and stretch it. It is
    strictly increasing for ``scale > 0`` and ``tail > 0``, hence invertible in
    closed form. With ``skew=0, tail=1`` it is the affine map ``loc + scale·z``.

    >>> f = SinhArcsinh(skew=0.5, tail=0.8)
    >>> z = torch.linspace(-3, 3, 7)
    >>> bool(torch.allclose(f.inverse(f.forward(z)), z, atol=1e-5))
    True
    """

    skew: float = 0.0
    tail: float = 1.0
    loc: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        # Every parameter a finite number: a NaN skew or shift (a slider, a typo) would
        # otherwise draw an empty figure instead of saying what is wrong.
        self.skew = check_float("skew", self.skew)
        self.loc = check_float("loc", self.loc)
        if not self.tail > 0 or not self.scale > 0:
            raise ValueError(
                f"tail and scale must be positive for a bijection, got {self.tail}, {self.scale}"
            )
        self.tail = check_float("tail", self.tail, positive=True)
        self.scale = check_float("scale", self.scale, positive=True)

    def forward(self, z: Tensor) -> Tensor:
        """Latent → data."""
        return self.loc + self.scale * torch.sinh((torch.asinh(z) + self.skew) / self.tail)

    def inverse(self, x: Tensor) -> Tensor:
        """Data → latent."""
        return torch.sinh(self.tail * torch.asinh((x - self.loc) / self.scale) - self.skew)

    def log_abs_det(self, z: Tensor) -> Tensor:
        """``log|dx/dz|`` at ``z`` (the chain rule through sinh, 1/tail and arcsinh)."""
        u = (torch.asinh(z) + self.skew) / self.tail
        return (
            math.log(self.scale)
            + torch.log(torch.cosh(u))
            - math.log(self.tail)
            - 0.5 * torch.log1p(z**2)
        )


def pushforward_log_prob(
    x: Tensor,
    inverse: Callable[[Tensor], Tensor],
    log_abs_det: Callable[[Tensor], Tensor],
    base_log_prob: Callable[[Tensor], Tensor] = standard_normal_log_prob,
) -> Tensor:
    """The change-of-variables formula: ``log p_X(x) = log p_Z(z) − log|det ∂x/∂z|``.

    Args:
        x: data points, ``(n,)`` or ``(n, d)``.
        inverse: data → latent.
        log_abs_det: ``log|det ∂x/∂z|`` as a function of ``z``, shape ``(n,)``.
        base_log_prob: the latent log-density (standard normal by default).

    Returns:
        ``(n,)`` log-densities of ``x``.
    """
    z = inverse(x)
    return base_log_prob(z) - log_abs_det(z)


@dataclass
class Linear2D:
    """The linear map ``x = A z`` of the plane, with ``|det A|`` its change of area.

    Args:
        matrix: a 2×2 invertible matrix, as nested lists or a tensor.
    """

    matrix: Tensor

    def __post_init__(self) -> None:
        self.matrix = torch.as_tensor(self.matrix, dtype=torch.float32)
        if self.matrix.shape != (2, 2):
            raise ValueError(f"matrix must have shape (2, 2), got {tuple(self.matrix.shape)}")
        if abs(float(torch.linalg.det(self.matrix))) < 1e-8:
            raise ValueError("matrix is singular: a flow needs an invertible map")

    def forward(self, z: Tensor) -> Tensor:
        """``(n, 2)`` latent points → data points."""
        return z @ self.matrix.T

    def inverse(self, x: Tensor) -> Tensor:
        """``(n, 2)`` data points → latent points."""
        return torch.linalg.solve(self.matrix, x.T).T

    def log_abs_det(self, z: Tensor) -> Tensor:
        """``log|det A|``, the same at every point."""
        return torch.log(torch.linalg.det(self.matrix).abs()).expand(len(z))


@dataclass
class Banana:
    """A volume-preserving bend of the plane: ``x₁ = z₁``, ``x₂ = z₂ + bend · (z₁² − 1)``.

    Its Jacobian is lower triangular with ones on the diagonal, so
    ``det = 1``: it moves probability mass without compressing it. A coupling
    layer (lesson 02) is this idea with the bend learned by a network.
    """

    bend: float = 0.5

    def forward(self, z: Tensor) -> Tensor:
        return torch.stack([z[:, 0], z[:, 1] + self.bend * (z[:, 0] ** 2 - 1)], 1)

    def inverse(self, x: Tensor) -> Tensor:
        return torch.stack([x[:, 0], x[:, 1] - self.bend * (x[:, 0] ** 2 - 1)], 1)

    def log_abs_det(self, z: Tensor) -> Tensor:
        return z.new_zeros(len(z))


@dataclass
class TanhBump:
    """``x = z + a · tanh(b z)``: a map whose slope has a bump at 0, of height ``1 + a b``.

    Strictly increasing when ``1 + a b > 0`` (its slope ``1 + a b sech²(b z)`` then
    stays positive). With ``a, b > 0`` it is steep near 0 and flat far out: it
    drains the centre of a standard normal and piles the mass up on both sides,
    and the result has two modes exactly when ``2 a b³ > 1 + a b``
    (:meth:`two_modes`). There is no closed-form inverse; :meth:`inverse`
    bisects, which works for any increasing map.

    >>> f = TanhBump(a=2.0, b=2.0)
    >>> z = torch.linspace(-3, 3, 7, dtype=torch.float64)
    >>> bool(torch.allclose(f.inverse(f.forward(z)), z, atol=1e-10)), f.two_modes()
    (True, True)
    """

    a: float = 2.0
    b: float = 2.0

    def __post_init__(self) -> None:
        if not self.b > 0:
            raise ValueError(f"b must be positive, got {self.b}")
        if not 1 + self.a * self.b > 0:
            raise ValueError(
                f"a must be above -1/b for an increasing map, got a={self.a} with b={self.b}"
            )

    def forward(self, z: Tensor) -> Tensor:
        """Latent → data."""
        return z + self.a * torch.tanh(self.b * z)

    def inverse(self, x: Tensor, iterations: int = 60) -> Tensor:
        """Data → latent, by bisection: ``z`` is in ``[x − |a|, x + |a|]`` as ``|tanh| ≤ 1``."""
        low, high = x - abs(self.a), x + abs(self.a)
        for _ in range(iterations):
            mid = (low + high) / 2
            above = self.forward(mid) > x
            high = torch.where(above, mid, high)
            low = torch.where(above, low, mid)
        return (low + high) / 2

    def log_abs_det(self, z: Tensor) -> Tensor:
        """``log|dx/dz| = log(1 + a b sech²(b z))``."""
        return torch.log1p(self.a * self.b / torch.cosh(self.b * z) ** 2)

    def two_modes(self) -> bool:
        """Whether ``x`` has two modes: the density of ``z = 0`` is a dip when ``2ab³ > 1 + ab``.

        In the latent coordinate, ``log p_X(f(z)) = log φ(z) − log f'(z)``; at
        ``z = 0`` its second derivative is ``−1 + 2ab³ / (1 + ab)``.
        """
        return 2 * self.a * self.b**3 > 1 + self.a * self.b
