"""Conditional flows in 2-D, from scratch: a density ``p(x | c)`` for every context ``c``.

A coupling layer becomes conditional when its networks also see the context:
the scale and shift of the transformed coordinates are functions of the kept
coordinates *and* of ``c``,

    x = m ⊙ z + (1 − m) ⊙ (z ⊙ exp(s(m ⊙ z, c)) + t(m ⊙ z, c)),
    log|det ∂x/∂z| = Σ (1 − m) ⊙ s(m ⊙ z, c).

For a fixed ``c`` this is an ordinary coupling (the same triangular Jacobian,
the same cheap log-determinant), so each context gets its own invertible map
and ``log p(x | c) = log N(f⁻¹(x; c)) + log|det ∂f⁻¹/∂x|``. One network
learns the whole family at once.

Direction convention as in :mod:`course_utils.flows2d.flows`: ``forward`` maps
latent → data, ``inverse`` data → latent, each returning ``(values, log_det)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from course_utils.core.checks import check_int
from course_utils.flows2d.flows import (
    InvertibleLinear,
    Permutation,
    StandardNormal,
    _check_finite,
    _check_vectors,
    alternating_masks,
    coupling_mask,
)

__all__ = [
    "ConditionalAffineCoupling",
    "ConditionalFlow",
    "check_context",
    "conditional_realnvp",
]

Tensor = torch.Tensor


def check_context(context: object, n: int, context_dim: int, name: str = "context") -> Tensor:
    """``context`` as a float ``(n, context_dim)`` tensor, one row per point.

    A single context ``(context_dim,)`` (or a number, when ``context_dim`` is
    1) is the same for all ``n`` points.

    Raises:
        ValueError: the context is missing, not finite, or of another shape.
    """
    if context is None:
        raise ValueError(
            f"{name} is missing: this flow models p(x | {name}); give one context of "
            f"{context_dim} numbers, or one row per point"
        )
    c = torch.as_tensor(context)
    if not c.is_floating_point():
        c = c.float()
    if c.ndim == 0 and context_dim == 1:
        c = c.reshape(1)
    if c.ndim == 1 and c.shape[0] == context_dim:
        c = c.expand(n, context_dim)
    if c.shape != (n, context_dim):
        raise ValueError(
            f"{name} must have shape ({n}, {context_dim}) (one row per point) or "
            f"({context_dim},) (the same for all), got {tuple(c.shape)}"
        )
    _check_finite(c, name)
    return c


class ConditionalAffineCoupling(nn.Module):
    """RealNVP's affine coupling whose conditioner also sees a context vector.

    The network reads the kept coordinates ``m ⊙ z`` next to the context ``c``
    and returns the scale ``s`` and shift ``t`` of the others; as in
    :class:`course_utils.flows2d.flows.AffineCoupling`, ``s`` is squashed by
    ``tanh`` times a learned scale and the layer starts as the identity.

    Args:
        mask: ``(dim,)`` of zeros and ones (1 = kept).
        context_dim: length of the context vector, >= 1.
        hidden: width of the two hidden layers of the conditioner network.
    """

    def __init__(self, mask: Sequence[float] | Tensor, context_dim: int, hidden: int = 64) -> None:
        super().__init__()
        mask = coupling_mask(mask)
        self.dim = len(mask)
        self.context_dim = check_int("context_dim", context_dim, minimum=1)
        hidden = check_int("hidden", hidden, minimum=1)
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(
            nn.Linear(self.dim + self.context_dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, 2 * self.dim),
        )
        nn.init.zeros_(self.net[-1].weight)  # the identity map at the start
        nn.init.zeros_(self.net[-1].bias)
        self.s_scale = nn.Parameter(torch.ones(self.dim))

    def _scale_shift(self, kept: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        context = check_context(context, len(kept), self.context_dim).to(kept)
        s, t = self.net(torch.cat([kept, context], dim=1)).chunk(2, dim=1)
        free = 1 - self.mask
        return self.s_scale * torch.tanh(s) * free, t * free

    def forward(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data given the context: ``(batch, dim) -> ((batch, dim), (batch,))``."""
        _check_vectors(z, self.dim, "z")
        s, t = self._scale_shift(z * self.mask, context)
        return z * torch.exp(s) + t, s.sum(1)

    def inverse(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent given the context: ``(batch, dim) -> ((batch, dim), (batch,))``."""
        _check_vectors(x, self.dim)
        s, t = self._scale_shift(x * self.mask, context)
        return (x - t) * torch.exp(-s), -s.sum(1)


class ConditionalFlow(nn.Module):
    """A flow ``p(x | c)``: a base and layers, the conditional ones given the context.

    Layers are listed from the base to the data, as in
    :class:`course_utils.flows2d.flows.Flow`; a :class:`ConditionalAffineCoupling`
    receives the context, any other layer (a mixing layer) does not.

    Args:
        base: a module with ``dim``, ``log_prob(z)`` and ``sample(n)``.
        layers: invertible layers, latent → data.
    """

    def __init__(self, base: nn.Module, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        dims = {getattr(layer, "dim", base.dim) for layer in layers}
        if dims - {base.dim}:
            raise ValueError(f"every layer must act on dim {base.dim}, got dims {sorted(dims)}")
        contexts = {layer.context_dim for layer in layers if _conditional(layer)}
        if len(contexts) != 1:
            raise ValueError(
                "a conditional flow needs at least one ConditionalAffineCoupling, all with the "
                f"same context_dim; got context sizes {sorted(contexts)}"
            )
        self.base = base
        self.layers = nn.ModuleList(layers)
        self.context_dim = contexts.pop()

    @property
    def dim(self) -> int:
        return self.base.dim

    def inverse(self, x: Tensor, context: object) -> tuple[Tensor, Tensor]:
        """Data → latent given the context: ``z`` and ``Σ log|det ∂z/∂x|``."""
        _check_vectors(x, self.dim)
        _check_finite(x)
        c = check_context(context, len(x), self.context_dim).to(x)
        log_det = x.new_zeros(len(x))
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x, c) if _conditional(layer) else layer.inverse(x)
            log_det = log_det + ld
        return x, log_det

    def forward(self, z: Tensor, context: object) -> tuple[Tensor, Tensor]:
        """Latent → data given the context: ``x`` and ``Σ log|det ∂x/∂z|``."""
        _check_vectors(z, self.dim, "z")
        _check_finite(z, "z")
        c = check_context(context, len(z), self.context_dim).to(z)
        log_det = z.new_zeros(len(z))
        for layer in self.layers:
            z, ld = layer(z, c) if _conditional(layer) else layer(z)
            log_det = log_det + ld
        return z, log_det

    def log_prob(self, x: Tensor, context: object) -> Tensor:
        """``log p(x | c)`` ``(batch,)`` in nats, by change of variables."""
        z, log_det = self.inverse(x, context)
        return self.base.log_prob(z) + log_det

    def forward_kld(self, x: Tensor, context: object) -> Tensor:
        """The training loss: mean NLL of a batch given its contexts."""
        return -self.log_prob(x, context).mean()

    @torch.no_grad()
    def sample(self, n: int, context: object, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws ``(n, dim)`` from ``p(x | c)``: one context for all, or one per draw."""
        n = check_int("n", n, minimum=1)
        x, _ = self.forward(self.base.sample(n, generator), context)
        return x


def _conditional(layer: nn.Module) -> bool:
    return isinstance(layer, ConditionalAffineCoupling)


def conditional_realnvp(
    dim: int = 2,
    context_dim: int = 1,
    n_couplings: int = 8,
    hidden: int = 64,
    mixing: str = "linear",
) -> ConditionalFlow:
    """:func:`course_utils.flows2d.flows.realnvp` whose couplings see a context.

    Args:
        dim: data dimension.
        context_dim: length of the context vector.
        n_couplings: conditional coupling layers, >= 1.
        hidden: hidden width of each coupling network.
        mixing: ``"linear"`` (a learned :class:`~course_utils.flows2d.flows.InvertibleLinear`
            between couplings) or ``"permutation"`` (a fixed random one).

    >>> flow = conditional_realnvp(context_dim=1, n_couplings=2)
    >>> tuple(flow.sample(3, context=[0.5]).shape)
    (3, 2)
    """
    if mixing not in {"linear", "permutation"}:
        raise ValueError(f"mixing must be 'linear' or 'permutation', got {mixing!r}")
    n_couplings = check_int("n_couplings", n_couplings, minimum=1)
    layers: list[nn.Module] = []
    for k, mask in enumerate(alternating_masks(dim, n_couplings)):
        layers.append(ConditionalAffineCoupling(mask, context_dim, hidden))
        if k < n_couplings - 1:
            mix = InvertibleLinear if mixing == "linear" else Permutation
            layers.append(mix(dim, seed=k))
    return ConditionalFlow(StandardNormal(dim), layers)
