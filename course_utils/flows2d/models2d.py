"""Lesson 03's 2D flows built with normflows, and measures of a density on the moons.

Direction convention (normflows', kept throughout the course): a flow's
``forward(z)`` maps **latent → data** and is what ``sample`` runs;
``inverse(x)`` maps **data → latent** and is what ``log_prob`` runs. The
training loss ``forward_kld(x)`` is the mean NLL of a data batch, so despite
its name it runs the *inverse*. ``nf.NormalizingFlow`` lists its layers from
the base distribution to the data, like :class:`course_utils.flows2d.flows.Flow`.

What is here:

* :func:`realnvp_nf` — lesson 02's two RealNVP-style models (affine couplings
  with alternating masks, and between them a learned invertible linear layer or
  a fixed permutation) made of normflows layers, with the same conditioner
  network (:class:`CouplingNet`) so that only the library differs;
* :func:`copy_from_scratch` — load the weights of a lesson-02 model into one of
  these, which must then compute the same numbers;
* :func:`spline_flow` — a neural spline flow (rational-quadratic spline
  couplings with LU-linear mixing);
* :func:`gaussian_mixture` — a learnable Gaussian-mixture base distribution;
* :func:`fit_moons` — lesson 02's training recipe for any of these;
* :func:`moons_log_prob` — the exact density of the moons data;
* :func:`bridge_density` — the density on the best path from one moon to the
  other (the height of the "bridge" between the moons).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import normflows as nf
import torch
from torch import nn

from course_utils.core.checks import check_float, check_int
from course_utils.core.train import History, train
from course_utils.flows2d import flows as scratch
from course_utils.flows2d.flows import MOONS_RECIPE, MoonsRecipe

__all__ = [
    "CouplingNet",
    "realnvp_nf",
    "copy_from_scratch",
    "spline_flow",
    "gaussian_mixture",
    "fit_moons",
    "moons_log_prob",
    "bridge_density",
]

Tensor = torch.Tensor


def _check_points(x: Tensor, dim: int = 2, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != dim:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (batch, {dim}), got {got}")


# ----------------------------------------------------------- affine models


class CouplingNet(nn.Module):
    """Lesson 02's coupling conditioner, in the output layout of normflows' affine coupling.

    ``nf.flows.AffineCoupling`` reads its network's output as interleaved
    ``(shift, log-scale)`` pairs, ``param[:, 0::2]`` and ``param[:, 1::2]``, and
    scales by ``exp(log-scale)``. This network returns exactly that, with the
    log-scale limited as in :class:`course_utils.flows2d.flows.AffineCoupling`:
    ``s = s_scale · tanh(raw)``. The last layer starts at zero, so the coupling
    starts as the identity.

    Args:
        n_in: kept coordinates (the network's input).
        n_out: transformed coordinates.
        hidden: width of the two hidden layers.

    >>> net = CouplingNet(1, 1, hidden=8)
    >>> tuple(net(torch.zeros(5, 1)).shape)
    (5, 2)
    """

    def __init__(self, n_in: int, n_out: int, hidden: int = 64) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, 2 * n_out),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.s_scale = nn.Parameter(torch.ones(n_out))

    def forward(self, kept: Tensor) -> Tensor:
        """``(batch, n_in) -> (batch, 2 * n_out)``: ``[t_0, s_0, t_1, s_1, ...]``."""
        _check_points(kept, self.n_in, "kept")
        raw, shift = self.net(kept).chunk(2, dim=1)
        log_scale = self.s_scale * torch.tanh(raw)
        return torch.stack([shift, log_scale], dim=2).reshape(len(kept), 2 * self.n_out)


def _seeded_permute(dim: int, seed: int) -> nf.flows.Permute:
    """normflows' ``Permute`` holding the permutation of ``flows.Permutation(dim, seed)``."""
    layer = nf.flows.Permute(dim, mode="shuffle")
    perm = scratch.Permutation(dim, seed=seed).perm
    layer.perm.copy_(perm)
    layer.inv_perm.copy_(torch.argsort(perm))
    return layer


def realnvp_nf(
    dim: int = 2,
    n_couplings: int = 8,
    hidden: int = 64,
    mixing: str = "linear",
    base: nn.Module | None = None,
) -> nf.NormalizingFlow:
    """Lesson 02's RealNVP-style flow, made of normflows layers.

    The layers, from the base to the data, are ``nf.flows.AffineCouplingBlock``
    with alternating splits (``"channel"``: keep the first half, transform the
    second; ``"channel_inv"``: the other way round, which is lesson 02's
    alternating masks) and, between couplings, ``nf.flows.InvertibleAffine``
    (LU-parametrised, random orthogonal start) or ``nf.flows.Permute``. The
    ``k``-th permutation is the one :func:`course_utils.flows2d.flows.realnvp` draws
    (seed ``k``): in 2D there are only two permutations, so which ones are drawn
    changes the model (see lesson 02).

    Args:
        dim: data dimension (at least 2).
        n_couplings: number of affine couplings.
        hidden: hidden width of each :class:`CouplingNet`.
        mixing: ``"linear"`` or ``"permutation"``.
        base: the base distribution; default a fixed standard normal,
            ``nf.distributions.DiagGaussian(dim, trainable=False)``.

    Returns:
        The ``nf.NormalizingFlow``.

    >>> [type(f).__name__ for f in realnvp_nf(n_couplings=2).flows]
    ['AffineCouplingBlock', 'InvertibleAffine', 'AffineCouplingBlock']
    """
    if mixing not in {"linear", "permutation"}:
        raise ValueError(f"mixing must be 'linear' or 'permutation', got {mixing!r}")
    if n_couplings < 1:
        raise ValueError(f"n_couplings must be at least 1, got {n_couplings}")
    if dim < 2:
        raise ValueError(f"dim must be at least 2 for a coupling to split it, got {dim}")
    first = (dim + 1) // 2  # as flows.alternating_masks: the first half keeps ceil(dim / 2)
    layers: list[nn.Module] = []
    for k in range(n_couplings):
        kept = first if k % 2 == 0 else dim - first
        net = CouplingNet(kept, dim - kept, hidden)
        split = "channel" if k % 2 == 0 else "channel_inv"
        layers.append(nf.flows.AffineCouplingBlock(net, scale=True, split_mode=split))
        if k < n_couplings - 1:
            if mixing == "linear":
                layers.append(nf.flows.InvertibleAffine(dim, use_lu=True))
            else:
                layers.append(_seeded_permute(dim, seed=k))
    if base is None:
        base = nf.distributions.DiagGaussian(dim, trainable=False)
    return nf.NormalizingFlow(base, layers)


@torch.no_grad()
def copy_from_scratch(target: nf.NormalizingFlow, source: scratch.Flow) -> nf.NormalizingFlow:
    """Load the weights of a lesson-02 model into a :func:`realnvp_nf` model.

    Afterwards both compute the same ``log_prob`` and the same ``forward``
    (up to round-off), which checks that the two libraries agree on
    directions and log-determinant signs.

    The maps between the parametrisations: a coupling network's first layer
    keeps only the columns of the kept coordinates (lesson 02 feeds the masked
    vector, whose other entries are zero), the last layer only the rows of the
    transformed ones. Lesson 02's linear layer is ``x = W z``; normflows'
    ``InvertibleAffine`` computes ``x = z V⁻¹`` for row vectors with
    ``V = P L U``, so ``V = W⁻ᵀ``, decomposed anew.

    Args:
        target: built by :func:`realnvp_nf` with the same ``dim``,
            ``n_couplings``, ``hidden`` and ``mixing`` as ``source``.
        source: built by :func:`course_utils.flows2d.flows.realnvp`.

    Returns:
        ``target``, changed in place.

    Raises:
        ValueError: the two models do not have the same layers.
    """
    src, dst = list(source.layers), list(target.flows)
    kinds = {
        scratch.AffineCoupling: nf.flows.AffineCouplingBlock,
        scratch.InvertibleLinear: nf.flows.InvertibleAffine,
        scratch.Permutation: nf.flows.Permute,
    }
    if len(src) != len(dst) or any(
        kinds.get(type(a)) is not type(b) for a, b in zip(src, dst, strict=True)
    ):
        names = [type(layer).__name__ for layer in src], [type(layer).__name__ for layer in dst]
        raise ValueError(
            f"source and target must have matching layers (AffineCoupling/AffineCouplingBlock, "
            f"InvertibleLinear/InvertibleAffine, Permutation/Permute), got {names[0]} "
            f"and {names[1]}"
        )
    for a, b in zip(src, dst, strict=True):
        if isinstance(a, scratch.AffineCoupling):
            net = b.flows[1].param_map
            kept = a.mask.nonzero().flatten()
            free = (a.mask == 0).nonzero().flatten()
            if (
                net.net[0].in_features != len(kept)
                or net.net[0].out_features != a.net[0].out_features
            ):
                raise ValueError(
                    f"coupling networks differ: {net.net[0]} in the target, "
                    f"{a.net[0]} in the source"
                )
            net.net[0].weight.copy_(a.net[0].weight[:, kept])
            net.net[0].bias.copy_(a.net[0].bias)
            net.net[2].load_state_dict(a.net[2].state_dict())
            rows = torch.cat([free, a.dim + free])  # the s rows, then the t rows
            net.net[4].weight.copy_(a.net[4].weight[rows])
            net.net[4].bias.copy_(a.net[4].bias[rows])
            net.s_scale.copy_(a.s_scale[free])
        elif isinstance(a, scratch.InvertibleLinear):
            v = torch.linalg.inv(a.weight().double()).T
            p, lower, upper = torch.linalg.lu(v)
            diag = torch.diagonal(upper)
            b.P.copy_(p)
            b.L.copy_(lower)
            b.U.copy_(torch.triu(upper, 1))
            b.sign_S.copy_(torch.sign(diag))
            b.log_S.copy_(torch.log(diag.abs()))
        else:
            b.perm.copy_(a.perm)
            b.inv_perm.copy_(a.inv_perm)
    return target


# ------------------------------------------------------------ spline flows


def spline_flow(
    dim: int = 2,
    n_layers: int = 4,
    hidden: int = 64,
    n_blocks: int = 2,
    n_bins: int = 8,
    tail_bound: float = 3.0,
    base: nn.Module | None = None,
) -> nf.NormalizingFlow:
    """A neural spline flow: rational-quadratic spline couplings with LU-linear mixing.

    Each ``nf.flows.CoupledRationalQuadraticSpline`` maps the transformed
    coordinates through a monotone piecewise rational-quadratic function with
    ``n_bins`` bins on ``[-tail_bound, tail_bound]`` (the identity outside),
    whose knots a residual network computes from the kept coordinates. The
    masks alternate, and an ``nf.flows.LULinearPermute`` (a fixed permutation
    and a learned LU-parametrised linear map, starting at the identity) sits
    between couplings, as in Durkan et al. (2019).

    Args:
        dim: data dimension (at least 2).
        n_layers: number of spline couplings.
        hidden: hidden width of each residual network.
        n_blocks: residual blocks per network.
        n_bins: spline bins.
        tail_bound: the spline acts on ``[-tail_bound, tail_bound]``.
        base: the base distribution; default a fixed standard normal.

    Returns:
        The ``nf.NormalizingFlow``.

    >>> flow = spline_flow(n_layers=2, hidden=8, n_blocks=1)
    >>> tuple(flow.log_prob(torch.zeros(3, 2)).shape)
    (3,)
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    if dim < 2:
        raise ValueError(f"dim must be at least 2 for a coupling to split it, got {dim}")
    layers: list[nn.Module] = []
    for k in range(n_layers):
        layers.append(
            nf.flows.CoupledRationalQuadraticSpline(
                dim,
                n_blocks,
                hidden,
                num_bins=n_bins,
                tail_bound=tail_bound,
                reverse_mask=k % 2 == 1,
            )
        )
        if k < n_layers - 1:
            layers.append(nf.flows.LULinearPermute(dim))
    if base is None:
        base = nf.distributions.DiagGaussian(dim, trainable=False)
    return nf.NormalizingFlow(base, layers)


# --------------------------------------------------------------- the base


def gaussian_mixture(
    n_modes: int = 2, dim: int = 2, spread: float = 2.0, trainable: bool = True
) -> nf.distributions.GaussianMixture:
    """A Gaussian-mixture base distribution with unit-variance modes on a line.

    The modes start at equal weights, evenly spaced on the first axis between
    ``-spread`` and ``+spread``; with ``trainable`` their means, scales and
    weights are learned with the flow. normflows stores them as float64
    (it builds them from numpy arrays), which would make samples float64 and
    break a float32 flow, so they are converted to float32 here.

    Args:
        n_modes: number of modes (at least 1).
        dim: dimension.
        spread: the outermost modes start at ``±spread`` on the first axis.
        trainable: learn the parameters.

    Returns:
        The distribution, float32.

    >>> base = gaussian_mixture(2, 2)
    >>> base.loc.dtype, tuple(base.loc.shape)
    (torch.float32, (1, 2, 2))
    """
    if n_modes < 1:
        raise ValueError(f"n_modes must be at least 1, got {n_modes}")
    loc = torch.zeros(n_modes, dim)
    if n_modes > 1:
        loc[:, 0] = torch.linspace(-spread, spread, n_modes)
    base = nf.distributions.GaussianMixture(
        n_modes, dim, loc=loc.tolist(), scale=[[1.0] * dim] * n_modes, trainable=trainable
    )
    return base.float()


# --------------------------------------------------------------- training


def fit_moons(
    model: nn.Module,
    train_x: Tensor,
    test_x: Tensor,
    recipe: MoonsRecipe = MOONS_RECIPE,
    epochs: int | None = None,
) -> History:
    """Train a 2D flow with lesson 02's recipe, recording the held-out NLL per epoch.

    Adam with cosine decay, mini-batches and seed from ``recipe``; the loss is
    ``model.forward_kld(x)``, the mean NLL (which runs the inverse direction).

    Args:
        model: any flow with ``forward_kld`` and ``log_prob`` (normflows' or lesson 02's).
        train_x: ``(n, 2)`` training points.
        test_x: ``(m, 2)`` held-out points.
        recipe: the settings, default :data:`course_utils.flows2d.flows.MOONS_RECIPE`.
        epochs: override ``recipe.epochs`` (e.g. in fast mode).

    Returns:
        The :class:`course_utils.core.train.History`; ``eval`` holds the held-out
        NLL in nats after each epoch and ``seconds`` the training time.
    """
    _check_points(train_x, 2, "train_x")
    _check_points(test_x, 2, "test_x")
    epochs = recipe.epochs if epochs is None else epochs
    optimizer, scheduler = recipe.optimizer(model, epochs=epochs)
    return train(
        model,
        lambda m, x: m.forward_kld(x),
        train_x,
        epochs=epochs,
        batch_size=recipe.batch_size,
        optimizer=optimizer,
        scheduler=scheduler,
        eval_fn=lambda m: float(m.forward_kld(test_x)),
        device="cpu",
        progress=False,
        seed=recipe.seed,
    )


# ------------------------------------------------- where the mass lies


def _arcs(n_arc: int) -> Tensor:
    theta = torch.linspace(0, math.pi, n_arc, dtype=torch.float64)
    upper = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    lower = torch.stack([1 - torch.cos(theta), 0.5 - torch.sin(theta)], 1)
    return torch.cat([upper, lower])


def moons_log_prob(x: Tensor, noise: float = 0.1, n_arc: int = 1000) -> Tensor:
    """The exact log-density of ``make_moons(noise=noise)`` (lesson 02's floor).

    ``make_moons`` puts points uniformly in angle on the upper arc
    ``(cos θ, sin θ)`` and the lower arc ``(1 − cos θ, 0.5 − sin θ)``,
    ``θ ∈ [0, π]``, half on each, then adds isotropic Gaussian noise: the density
    is an average of Gaussian bumps centred all along the arcs, here ``n_arc``
    per arc.

    Args:
        x: ``(batch, 2)`` points.
        noise: the noise's standard deviation, > 0.
        n_arc: bump centres per arc.

    Returns:
        ``(batch,)`` log-densities, float64.
    """
    _check_points(x)
    noise = check_float("noise", noise, positive=True)
    centres = _arcs(check_int("n_arc", n_arc, minimum=2))
    log_norm = math.log(len(centres)) + math.log(2 * math.pi * noise**2)
    mode = "donot_use_mm_for_euclid_dist"  # exact distances, no |a|² + |b|² − 2ab cancellation
    return (
        torch.cat(
            [
                torch.logsumexp(
                    -(torch.cdist(c.double(), centres, compute_mode=mode) ** 2) / (2 * noise**2), 1
                )
                for c in x.split(4096)
            ]
        )
        - log_norm
    )


@torch.no_grad()
def bridge_density(
    log_prob: Callable[[Tensor], Tensor],
    a: tuple[float, float] = (0.0, 1.0),
    b: tuple[float, float] = (1.0, -0.5),
    xlim: tuple[float, float] = (-1.5, 2.5),
    ylim: tuple[float, float] = (-1.0, 1.5),
    n: int = 200,
) -> float:
    """The density on the best bridge between two points: the height of the pass.

    Of all paths from ``a`` to ``b`` on an ``n × n`` grid (steps to the four
    neighbours), take the one whose lowest density is highest; return that
    lowest density. Two separate moons have a deep valley between them, so a low
    pass; a ridge of density from one moon to the other (a "bridge") raises it.
    Computed by adding the grid points from the densest down, joining neighbours
    (union-find), until ``a`` and ``b`` are connected. The defaults put ``a`` on
    the upper moon and ``b`` on the lower one.

    Args:
        log_prob: maps points ``(m, 2)`` to log-densities ``(m,)``.
        a, b: the two points, inside the window.
        xlim, ylim: the window.
        n: grid points per axis, >= 2.

    Returns:
        The pass density, in the units of ``exp(log_prob)``.

    >>> two_bumps = torch.distributions.MixtureSameFamily(
    ...     torch.distributions.Categorical(torch.ones(2)),
    ...     torch.distributions.Independent(
    ...         torch.distributions.Normal(torch.tensor([[-1.0, 0], [1, 0]]), 0.3), 1))
    >>> p = bridge_density(two_bumps.log_prob, (-1, 0), (1, 0), (-2, 2), (-2, 2), 201)
    >>> round(p, 4) == round(math.exp(two_bumps.log_prob(torch.zeros(1, 2)).item()), 4)
    True
    """
    n = check_int("n", n, minimum=2)
    for name, point in (("a", a), ("b", b)):
        if not (xlim[0] <= point[0] <= xlim[1] and ylim[0] <= point[1] <= ylim[1]):
            raise ValueError(f"{name} must lie in the window {xlim} × {ylim}, got {point}")
    xs = torch.linspace(*xlim, n, dtype=torch.float64)
    ys = torch.linspace(*ylim, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # row r is ys[r], column c is xs[c]
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).float()
    density = torch.cat([log_prob(chunk).double() for chunk in pts.split(8192)]).exp()
    density = density.nan_to_num(0.0).tolist()

    def index(point: tuple[float, float]) -> int:
        row = int(torch.argmin((ys - point[1]).abs()))
        return row * n + int(torch.argmin((xs - point[0]).abs()))

    start, end = index(a), index(b)
    parent = list(range(n * n))
    added = [False] * (n * n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k in sorted(range(n * n), key=density.__getitem__, reverse=True):
        added[k] = True
        row, col = divmod(k, n)
        for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)):
            if 0 <= r < n and 0 <= c < n and added[r * n + c]:
                parent[root(r * n + c)] = root(k)
        if added[start] and added[end] and root(start) == root(end):
            return density[k]
    raise AssertionError("unreachable: the whole grid is connected")
