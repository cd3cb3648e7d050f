"""The from-scratch flow layers of lesson 02.

Direction convention, the same as normflows' so that lesson 03 can swap the
library in: a layer's ``forward(z)`` maps **latent → data** and returns
``(x, log|det ∂x/∂z|)``; ``inverse(x)`` maps **data → latent** and returns
``(z, log|det ∂z/∂x|)``. A :class:`Flow` lists its layers from the base
distribution to the data, so density evaluation runs the inverses in reverse
order:

    log p(x) = log p_Z(z) + Σ_k log|det ∂z_k/∂z_{k+1}|,   z = f⁻¹(x).

All layers here act on vectors of shape ``(batch, dim)``.

:data:`MOONS_RECIPE` holds the settings of lesson 02's two moons models; the
notebook and ``benchmarks/moons.py`` both read it, so they cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "coupling_mask",
    "StandardNormal",
    "AffineCoupling",
    "InvertibleLinear",
    "Permutation",
    "Flow",
    "alternating_masks",
    "realnvp",
    "MoonsRecipe",
    "MOONS_RECIPE",
]

Tensor = torch.Tensor


def _check_vectors(x: Tensor, dim: int, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != dim:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (batch, {dim}), got {got}")


def _check_finite(x: Tensor, name: str = "x") -> None:
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"{name} contains NaN or inf values (in {bad} of {len(x)} rows)")


class StandardNormal(nn.Module):
    """The base distribution N(0, I) in ``dim`` dimensions, as a module.

    Being a module (with a buffer) it follows ``.to(device)`` and ``.double()``
    with the flow, and so do its samples.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("_zero", torch.zeros(()))

    def log_prob(self, z: Tensor) -> Tensor:
        """``(batch, dim) -> (batch,)`` log-density in nats."""
        return -0.5 * (z**2).sum(1) - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples of shape ``(n, dim)``, on the module's device and dtype.

        Drawn on the CPU, so a CPU ``generator`` gives the same samples everywhere.
        """
        z = torch.randn(n, self.dim, generator=generator)
        return z.to(self._zero)


def coupling_mask(mask: Sequence[float] | Tensor) -> Tensor:
    """A coupling layer's mask as a float tensor, checked: 1D, zeros and ones, both present."""
    mask = torch.as_tensor(mask, dtype=torch.float32)
    if mask.ndim != 1 or not torch.all((mask == 0) | (mask == 1)):
        raise ValueError(f"mask must be a 1D tensor of zeros and ones, got {mask}")
    if mask.sum() in (0, len(mask)):
        raise ValueError("mask must keep some coordinates and transform the others")
    return mask


class AffineCoupling(nn.Module):
    """RealNVP's affine coupling layer with a binary mask.

    The coordinates where ``mask == 1`` pass through unchanged and condition a
    scale ``s`` and shift ``t`` for the others:

        x = m ⊙ z + (1 − m) ⊙ (z ⊙ exp(s(m ⊙ z)) + t(m ⊙ z)),
        log|det ∂x/∂z| = Σ (1 − m) ⊙ s.

    The Jacobian is triangular, which is why its determinant is this cheap sum.
    ``s`` is squashed by ``tanh`` times a learned scale so that early training
    cannot produce ``exp`` of a huge number.

    Args:
        mask: ``(dim,)`` of zeros and ones.
        hidden: width of the two hidden layers of the conditioner network.
    """

    def __init__(self, mask: Sequence[float] | Tensor, hidden: int = 64) -> None:
        super().__init__()
        mask = coupling_mask(mask)
        self.dim = len(mask)
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(
            nn.Linear(self.dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, 2 * self.dim),
        )
        # Start as the identity map: a well-behaved flow from step one.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.s_scale = nn.Parameter(torch.ones(self.dim))

    def _scale_shift(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(kept).chunk(2, dim=1)
        free = 1 - self.mask
        return self.s_scale * torch.tanh(s) * free, t * free

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data: ``(batch, dim) -> ((batch, dim), (batch,))``."""
        _check_vectors(z, self.dim, "z")
        s, t = self._scale_shift(z * self.mask)
        return z * torch.exp(s) + t, s.sum(1)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent: ``(batch, dim) -> ((batch, dim), (batch,))``."""
        _check_vectors(x, self.dim)
        s, t = self._scale_shift(x * self.mask)
        return (x - t) * torch.exp(-s), -s.sum(1)


class InvertibleLinear(nn.Module):
    """A learned invertible linear map ``x = W z``, LU-parametrised (Glow's 1×1 conv).

    On vectors, Glow's invertible 1×1 convolution is just a ``dim × dim``
    matrix. Writing ``W = P L (U + diag(sign · exp(log_s)))`` with a fixed
    permutation ``P``, unit-lower-triangular ``L`` and strictly upper ``U``
    keeps it invertible and makes ``log|det W| = Σ log_s``, an O(dim) sum
    instead of an O(dim³) determinant.

    Args:
        dim: the dimension.
        seed: seeds the random orthogonal matrix the layer starts from.
    """

    def __init__(self, dim: int, seed: int = 0) -> None:
        super().__init__()
        self.dim = dim
        g = torch.Generator().manual_seed(seed)
        w0, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
        p, lower, upper = torch.linalg.lu(w0)
        diag = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(diag.abs()))

    def weight(self) -> Tensor:
        """The matrix ``W`` (``dim × dim``)."""
        eye = torch.eye(self.dim, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data: ``x = z Wᵀ``, log|det| = Σ log_s."""
        _check_vectors(z, self.dim, "z")
        log_det = self.log_s.sum().expand(len(z))
        return z @ self.weight().T, log_det

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent: ``z = x W⁻ᵀ`` by a linear solve."""
        _check_vectors(x, self.dim)
        z = torch.linalg.solve(self.weight(), x.T).T
        return z, -self.log_s.sum().expand(len(x))


class Permutation(nn.Module):
    """A fixed random permutation of the coordinates: volume-preserving, log|det| = 0.

    In 2D there are only two permutations, the identity and the swap, so a
    "random permutation" is one of those two, each with probability 1/2.

    Args:
        dim: the dimension.
        seed: seeds the permutation, which never changes afterwards.
    """

    def __init__(self, dim: int, seed: int = 0) -> None:
        super().__init__()
        self.dim = dim
        perm = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data: ``x = z[:, perm]``, log|det| = 0."""
        _check_vectors(z, self.dim, "z")
        return z[:, self.perm], z.new_zeros(len(z))

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent: ``z = x[:, argsort(perm)]``, log|det| = 0."""
        _check_vectors(x, self.dim)
        return x[:, self.inv_perm], x.new_zeros(len(x))


class Flow(nn.Module):
    """A normalizing flow: a base distribution and a chain of invertible layers.

    ``layers`` are listed from the base towards the data. ``log_prob`` runs
    their inverses (data → latent) and adds up the log-determinants;
    ``sample`` draws from the base and runs the forwards (latent → data).

    Args:
        base: a module with ``dim``, ``log_prob(z)`` and ``sample(n)``, e.g.
            :class:`StandardNormal`.
        layers: invertible layers with ``forward`` / ``inverse`` as in this
            module, listed from the base to the data.

    Raises:
        ValueError: a layer's ``dim`` differs from the base's.

    >>> flow = Flow(StandardNormal(2), [Permutation(2), AffineCoupling([1, 0])])
    >>> tuple(flow.log_prob(torch.zeros(5, 2)).shape), tuple(flow.sample(3).shape)
    ((5,), (3, 2))
    """

    def __init__(self, base: nn.Module, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        for k, layer in enumerate(layers):
            dim = getattr(layer, "dim", base.dim)
            if dim != base.dim:
                raise ValueError(
                    f"layer {k} ({type(layer).__name__}) acts on dim {dim}, "
                    f"but the base distribution has dim {base.dim}"
                )
        self.base = base
        self.layers = nn.ModuleList(layers)

    @property
    def dim(self) -> int:
        """The dimension of the data (and of the latent space)."""
        return self.base.dim

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent.

        Args:
            x: ``(batch, dim)`` finite data points.

        Returns:
            ``z`` of shape ``(batch, dim)`` and ``Σ log|det ∂z/∂x|`` of shape ``(batch,)``.

        Raises:
            ValueError: ``x`` has the wrong shape or holds NaN/inf.
        """
        _check_vectors(x, self.dim)
        _check_finite(x)
        log_det = x.new_zeros(len(x))
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x)
            log_det = log_det + ld
        return x, log_det

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data.

        Args:
            z: ``(batch, dim)`` finite latent points.

        Returns:
            ``x`` of shape ``(batch, dim)`` and ``Σ log|det ∂x/∂z|`` of shape ``(batch,)``.

        Raises:
            ValueError: ``z`` has the wrong shape or holds NaN/inf.
        """
        _check_vectors(z, self.dim, "z")
        _check_finite(z, "z")
        log_det = z.new_zeros(len(z))
        for layer in self.layers:
            z, ld = layer(z)
            log_det = log_det + ld
        return z, log_det

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density by change of variables.

        Args:
            x: ``(batch, dim)`` data points.

        Returns:
            ``(batch,)`` values of ``log p(x) = log p_Z(f⁻¹(x)) + log|det ∂z/∂x|`` in nats.
        """
        z, log_det = self.inverse(x)
        return self.base.log_prob(z) + log_det

    def forward_kld(self, x: Tensor) -> Tensor:
        """The training loss: mean NLL of a data batch (forward KL up to a constant).

        Named as in normflows. Despite the name it runs the *inverse*
        (data → latent), because that is the direction that gives ``log p(x)``.

        Args:
            x: ``(batch, dim)`` data points.

        Returns:
            A scalar tensor, ``−mean(log p(x))`` in nats.
        """
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw from the model: base samples pushed through the layers (latent → data).

        Args:
            n: number of samples.
            generator: optional torch generator for reproducible samples.

        Returns:
            ``(n, dim)`` samples.
        """
        if n < 1:
            raise ValueError(f"n must be a positive number of samples, got {n}")
        x, _ = self.forward(self.base.sample(n, generator))
        return x


def alternating_masks(dim: int, n: int) -> list[Tensor]:
    """``n`` masks alternating between keeping the first and the second half.

    Args:
        dim: the dimension.
        n: how many masks.

    Returns:
        ``n`` float tensors of shape ``(dim,)`` with 1 = kept, 0 = transformed.

    >>> [m.tolist() for m in alternating_masks(2, 3)]
    [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    """
    first = (torch.arange(dim) < (dim + 1) // 2).float()
    return [first if k % 2 == 0 else 1 - first for k in range(n)]


def realnvp(dim: int = 2, n_couplings: int = 8, hidden: int = 64, mixing: str = "linear") -> Flow:
    """A RealNVP-style flow: couplings with alternating masks and a mixing layer between.

    Args:
        dim: data dimension.
        n_couplings: number of affine coupling layers.
        hidden: hidden width of each coupling network.
        mixing: ``"linear"`` for a learned :class:`InvertibleLinear` between
            couplings, ``"permutation"`` for a fixed random :class:`Permutation`
            (the ``k``-th one seeded with ``k``, so the model is reproducible).

    Returns:
        The :class:`Flow` with a standard normal base; its layers alternate
        coupling, mixing, coupling, ..., coupling.

    >>> [type(layer).__name__ for layer in realnvp(n_couplings=2).layers]
    ['AffineCoupling', 'InvertibleLinear', 'AffineCoupling']
    """
    if mixing not in {"linear", "permutation"}:
        raise ValueError(f"mixing must be 'linear' or 'permutation', got {mixing!r}")
    if n_couplings < 1:
        raise ValueError(f"n_couplings must be at least 1, got {n_couplings}")
    layers: list[nn.Module] = []
    for k, mask in enumerate(alternating_masks(dim, n_couplings)):
        layers.append(AffineCoupling(mask, hidden))
        if k < n_couplings - 1:
            mix = InvertibleLinear if mixing == "linear" else Permutation
            layers.append(mix(dim, seed=k))
    return Flow(StandardNormal(dim), layers)


@dataclass(frozen=True)
class MoonsRecipe:
    """The settings of lesson 02's moons models, in one place.

    Tuned so that both models reach a held-out NLL well under 1.10 nats in
    well under a minute each on a laptop CPU (see ``benchmarks/moons.py``).

    Attributes:
        n_train: training points. Moons are generated, so more points are
            free and keep the flow from over-fitting a small sample.
        n_test: held-out points.
        noise: the ``noise`` of ``make_moons``.
        n_couplings: affine coupling layers per flow.
        hidden: hidden width of each coupling network.
        epochs: passes over the training set.
        batch_size: mini-batch size.
        lr: Adam's initial learning rate, decayed to zero by a cosine schedule.
        cosine: whether to use that cosine schedule (stepped every batch).
        threads: ``torch.set_num_threads`` for training; tiny 2D networks run
            fastest on one thread (threads only add synchronisation).
        seed: seeds model initialisation and batch order.
    """

    n_train: int = 20_000
    n_test: int = 2_000
    noise: float = 0.1
    n_couplings: int = 8
    hidden: int = 64
    epochs: int = 30
    batch_size: int = 512
    lr: float = 3e-3
    cosine: bool = True
    threads: int = 1
    seed: int = 0

    def steps(self, epochs: int | None = None) -> int:
        """Optimisation steps of a run of ``epochs`` (default :attr:`epochs`).

        >>> MoonsRecipe(n_train=1000, batch_size=512, epochs=3).steps()
        6
        """
        return (self.epochs if epochs is None else epochs) * math.ceil(
            self.n_train / self.batch_size
        )

    def optimizer(
        self, model: nn.Module, epochs: int | None = None
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        """Adam at :attr:`lr` and, if :attr:`cosine`, its cosine decay over the whole run.

        Args:
            model: the model whose parameters are optimised.
            epochs: the run's length (default :attr:`epochs`); the schedule
                must know it to reach zero at the last step.

        Returns:
            ``(optimizer, scheduler)``, the scheduler None without :attr:`cosine`;
            pass both to :func:`course_utils.core.train.train`.
        """
        # foreach: the default loop's numbers, bit for bit, in fewer kernel calls
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, foreach=True)
        if not self.cosine:
            return opt, None
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.steps(epochs))


MOONS_RECIPE = MoonsRecipe()
"""The one recipe of lesson 02, shared by the notebook and the benchmark."""
