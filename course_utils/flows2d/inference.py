"""Flows for variational inference (lesson 05): planar and radial layers, reverse KL, targets.

Variational inference (VI) fits a flow ``q`` to a density known only up to a
constant, ``p(z) = p̃(z) / Z``, by maximising the evidence lower bound

    ELBO = E_q[log p̃(x) − log q(x)] = log Z − KL(q ‖ p),

estimated with samples drawn from the flow itself. Each sample needs its own
``log q``, which the sampling direction delivers for free:

    x, log|det ∂x/∂z| = flow.forward(z),   log q(x) = log p_Z(z) − log|det ∂x/∂z|.

So VI runs only the flows' ``forward`` (latent → data, the convention of
:mod:`course_utils.flows2d.flows` and of normflows), never their inverse. That is why
the planar and radial flows of Rezende & Mohamed (2015), whose inverses have no
cheap formula, are usable here. The layers in this module still have an
inverse (a bisection for :class:`Planar`, a closed form for :class:`Radial`),
so that a trained flow's density can be drawn on a grid and tested.

The targets of the lesson (the potentials ``U1``–``U4``, a logistic-regression
posterior, two modes) and the grid that normalises them for reference live in
:mod:`course_utils.flows2d.targets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.core.checks import check_int
from course_utils.core.train import History, train
from course_utils.flows2d.flows import Flow, StandardNormal, _check_vectors, realnvp
from course_utils.flows2d.targets import LogDensity, evaluate_log_density

__all__ = [
    "Planar",
    "Radial",
    "LocScale",
    "planar_flow",
    "radial_flow",
    "sample_with_log_prob",
    "reverse_kl",
    "fit_reverse_kl",
    "VIEstimate",
    "evaluate_vi",
    "fit_both_ways",
]

Tensor = torch.Tensor


# ------------------------------------------------------------------- layers


class Planar(nn.Module):
    """The planar flow ``x = z + û · tanh(wᵀz + b)`` of Rezende & Mohamed (2015).

    It pushes the space along ``û`` by an amount that changes only across the
    hyperplane ``wᵀz + b = 0``, so it contracts or expands a slab of space. By
    the matrix determinant lemma,

        log|det ∂x/∂z| = log|1 + tanh'(wᵀz + b) · wᵀû|.

    **Invertibility.** ``tanh'`` takes every value in ``(0, 1]``, so the
    determinant stays positive everywhere exactly when ``wᵀû ≥ −1``. The free
    parameter ``u`` is therefore mapped to

        û = u + (softplus(wᵀu) − 1 − wᵀu) · w / ‖w‖²,   so that  wᵀû = softplus(wᵀu) − 1 > −1,

    and any value of the parameters gives an invertible layer (the same
    reparametrisation as normflows' ``Planar``).

    The inverse has no closed form, but it reduces to one dimension: with
    ``α = wᵀz``, ``wᵀx = α + wᵀû tanh(α + b)`` is increasing in ``α``; a
    bisection finds ``α`` and then ``z = x − û tanh(α + b)``.

    Args:
        dim: the dimension.
        init_scale: standard deviation of the initial ``u``; small values
            start the layer close to the identity.

    >>> layer = Planar(2)
    >>> x, log_det = layer(torch.randn(5, 2))
    >>> tuple(x.shape), tuple(log_det.shape)
    ((5, 2), (5,))
    """

    def __init__(self, dim: int = 2, init_scale: float = 0.1) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.w = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.u = nn.Parameter(init_scale * torch.randn(dim))
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> Tensor:
        """The constrained ``û`` (shape ``(dim,)``), with ``wᵀû > −1``."""
        wu = self.w @ self.u
        # clamp: w = 0 makes the layer a plain shift, where û = u is right.
        return self.u + (F.softplus(wu) - 1 - wu) * self.w / (self.w @ self.w).clamp_min(1e-12)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data: ``(batch, dim) -> ((batch, dim), (batch,))``."""
        _check_vectors(z, self.dim, "z")
        u = self.u_hat()
        t = torch.tanh(z @ self.w + self.b)
        return z + t[:, None] * u, torch.log1p((1 - t**2) * (self.w @ u))

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent by a bisection on ``α = wᵀz``; exact derivatives.

        The bisection runs without gradients; one Newton correction that
        leaves the value unchanged then attaches the derivatives given by the
        implicit function theorem, so ``inverse`` can be trained through.

        Args:
            x: ``(batch, dim)`` points.

        Returns:
            ``z`` of shape ``(batch, dim)`` and ``log|det ∂z/∂x|`` of shape ``(batch,)``.
        """
        _check_vectors(x, self.dim)
        u = self.u_hat()
        c = self.w @ u  # wᵀû > −1, so g(α) = α + c tanh(α + b) is increasing
        y = x @ self.w
        with torch.no_grad():
            # |c tanh| ≤ |c| brackets the root: g(y − |c|) ≤ y ≤ g(y + |c|).
            lo, hi = y - c.abs(), y + c.abs()
            tol = 4 * torch.finfo(x.dtype).eps * (1 + y.abs())
            for _ in range(200):
                mid = (lo + hi) / 2
                above = mid + c * torch.tanh(mid + self.b) > y
                hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
                if bool(((hi - lo) <= tol).all()):
                    break
            alpha0 = (lo + hi) / 2
        t0 = torch.tanh(alpha0 + self.b)
        g = alpha0 + c * t0 - y  # ≈ 0, but carries the gradient in y, c and b
        alpha = alpha0 - (g - g.detach()) / (1 + c * (1 - t0**2)).detach()
        t = torch.tanh(alpha + self.b)
        return x - t[:, None] * u, -torch.log1p((1 - t**2) * c)


class Radial(nn.Module):
    """The radial flow ``x = z + β (z − z₀) / (α + ‖z − z₀‖)`` of Rezende & Mohamed (2015).

    It contracts (``β < 0``) or expands (``β > 0``) space around the centre
    ``z₀``, most strongly within a distance of about ``α``. With
    ``h = 1 / (α + r)`` and ``r = ‖z − z₀‖`` in ``d`` dimensions,

        log|det ∂x/∂z| = (d − 1) log(1 + βh) + log(1 + βαh²).

    **Invertibility.** The radius maps as ``r ↦ r + βr / (α + r)``, increasing
    in ``r`` for every ``r ≥ 0`` exactly when ``β ≥ −α``. The layer stores free
    parameters and uses ``α = softplus(α_raw) > 0`` and
    ``β = −α + softplus(β_raw) > −α``. Inverting the radius is a quadratic
    equation, so the inverse is in closed form.

    Args:
        dim: the dimension.

    >>> layer = Radial(2)
    >>> z = torch.randn(4, 2)
    >>> bool(torch.allclose(layer.inverse(layer(z)[0])[0], z, atol=1e-5))
    True
    """

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.z0 = nn.Parameter(torch.randn(dim))
        self.alpha_raw = nn.Parameter(torch.full((), math.log(math.e - 1)))  # α = 1
        # β starts near 0: softplus(β_raw) ≈ α.
        self.beta_raw = nn.Parameter(self.alpha_raw.detach() + 0.1 * torch.randn(()))

    def alpha(self) -> Tensor:
        """``α > 0``, the radius of the region the layer acts on most."""
        return F.softplus(self.alpha_raw)

    def beta(self) -> Tensor:
        """``β > −α``: negative contracts towards ``z₀``, positive expands."""
        return F.softplus(self.beta_raw) - self.alpha()

    def _log_det(self, r: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        h = 1 / (alpha + r)
        return (self.dim - 1) * torch.log1p(beta * h) + torch.log1p(beta * alpha * h**2)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data: ``(batch, dim) -> ((batch, dim), (batch,))``."""
        _check_vectors(z, self.dim, "z")
        alpha, beta = self.alpha(), self.beta()
        d = z - self.z0
        r = d.norm(dim=1)
        x = z + (beta / (alpha + r))[:, None] * d
        return x, self._log_det(r, alpha, beta)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent in closed form: ``(batch, dim) -> ((batch, dim), (batch,))``.

        ``R = ‖x − z₀‖ = r + βr / (α + r)`` gives ``r² + (α + β − R) r − αR = 0``,
        whose non-negative root is ``r``.
        """
        _check_vectors(x, self.dim)
        alpha, beta = self.alpha(), self.beta()
        d = x - self.z0
        big_r = d.norm(dim=1)
        q = alpha + beta - big_r
        root = torch.sqrt(q**2 + 4 * alpha * big_r)
        # Two forms of the same root, each free of cancellation on its side.
        r = torch.where(q > 0, 2 * alpha * big_r / (q + root).clamp_min(1e-30), (root - q) / 2)
        z = self.z0 + d / (1 + beta / (alpha + r))[:, None]
        return z, -self._log_det(r, alpha, beta)


class LocScale(nn.Module):
    """An element-wise affine layer ``x = loc + exp(log_scale) ⊙ z``.

    Put first in a flow over a standard normal base, it makes the base a
    learned diagonal Gaussian ``N(loc, diag(exp(2 log_scale)))``, the ``q₀`` of
    Rezende & Mohamed; alone, it is Gaussian (mean-field) VI.

    Args:
        dim: the dimension.
        loc: initial location, default zeros.
        scale: initial positive scale, default ones.

    >>> layer = LocScale(2, loc=torch.tensor([1.0, -1.0]), scale=torch.tensor([2.0, 0.5]))
    >>> layer(torch.ones(1, 2))[0].tolist(), layer(torch.ones(1, 2))[1].item()
    ([[3.0, -0.5]], 0.0)
    """

    def __init__(
        self, dim: int = 2, loc: Tensor | None = None, scale: Tensor | None = None
    ) -> None:
        super().__init__()
        self.dim = dim
        loc = torch.zeros(dim) if loc is None else torch.as_tensor(loc, dtype=torch.float32)
        scale = torch.ones(dim) if scale is None else torch.as_tensor(scale, dtype=torch.float32)
        if loc.shape != (dim,) or scale.shape != (dim,):
            raise ValueError(
                f"loc and scale must have shape ({dim},), got {tuple(loc.shape)} "
                f"and {tuple(scale.shape)}"
            )
        if not bool((scale > 0).all()):
            raise ValueError(f"scale must be positive, got {scale.tolist()}")
        self.loc = nn.Parameter(loc.clone())
        self.log_scale = nn.Parameter(scale.log())

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data: ``(batch, dim) -> ((batch, dim), (batch,))``."""
        _check_vectors(z, self.dim, "z")
        return self.loc + self.log_scale.exp() * z, self.log_scale.sum().expand(len(z))

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent: ``(batch, dim) -> ((batch, dim), (batch,))``."""
        _check_vectors(x, self.dim)
        return (x - self.loc) * torch.exp(-self.log_scale), -self.log_scale.sum().expand(len(x))


def _stack(kind: type[nn.Module], n_layers: int, dim: int, loc_scale: bool) -> Flow:
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {n_layers}")
    layers: list[nn.Module] = [LocScale(dim)] if loc_scale else []
    layers += [kind(dim) for _ in range(n_layers)]
    if not layers:
        raise ValueError("a flow needs at least one layer: use n_layers >= 1 or loc_scale=True")
    return Flow(StandardNormal(dim), layers)


def planar_flow(n_layers: int, dim: int = 2, loc_scale: bool = True) -> Flow:
    """A :class:`~course_utils.flows2d.flows.Flow` of ``n_layers`` :class:`Planar` layers.

    Args:
        n_layers: number of planar layers (the paper's ``K``).
        dim: the dimension.
        loc_scale: start with a :class:`LocScale`, so the base is a learned
            diagonal Gaussian.

    Returns:
        The flow, its parameters drawn from torch's global RNG (seed it first).

    >>> [type(layer).__name__ for layer in planar_flow(2).layers]
    ['LocScale', 'Planar', 'Planar']
    """
    return _stack(Planar, n_layers, dim, loc_scale)


def radial_flow(n_layers: int, dim: int = 2, loc_scale: bool = True) -> Flow:
    """A :class:`~course_utils.flows2d.flows.Flow` of ``n_layers`` :class:`Radial` layers.

    Args:
        n_layers: number of radial layers.
        dim: the dimension.
        loc_scale: start with a :class:`LocScale`.

    Returns:
        The flow, its parameters drawn from torch's global RNG (seed it first).
    """
    return _stack(Radial, n_layers, dim, loc_scale)


# --------------------------------------------------------------- reverse KL


def sample_with_log_prob(
    flow: Flow, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Draw from a flow *with* gradients, and the log-density of each draw.

    Only the forward direction runs: ``log q(x) = log p_Z(z) − log|det ∂x/∂z|``.

    Args:
        flow: a :class:`~course_utils.flows2d.flows.Flow` (``base`` with ``sample`` and
            ``log_prob``, and ``forward``).
        n: number of samples.
        generator: optional CPU generator for reproducible draws.

    Returns:
        ``x`` of shape ``(n, dim)`` and ``log q(x)`` of shape ``(n,)``.

    >>> flow = planar_flow(3)
    >>> x, log_q = sample_with_log_prob(flow, 4)  # forward only; log_prob runs the inverse
    >>> bool(torch.allclose(log_q, flow.log_prob(x), atol=1e-4))
    True
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of samples, got {n}")
    z = flow.base.sample(n, generator)
    x, log_det = flow.forward(z)
    return x, flow.base.log_prob(z) - log_det


def reverse_kl(
    flow: Flow,
    log_target: LogDensity,
    n_samples: int,
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The VI loss ``E_q[log q(x) − β log p̃(x)]``, estimated with ``n_samples`` draws.

    With ``β = 1`` it is the negative ELBO, ``KL(q ‖ p) − log Z``: minimising it
    minimises the reverse KL divergence without knowing ``Z``. ``β < 1``
    flattens the target (the annealing of Rezende & Mohamed).

    Args:
        flow: the variational flow.
        log_target: unnormalised ``log p̃``: ``(n, dim) -> (n,)``.
        n_samples: Monte Carlo samples.
        beta: inverse temperature of the target.
        generator: optional CPU generator for the base samples.

    Returns:
        A scalar tensor, differentiable in the flow's parameters.

    >>> flow = Flow(StandardNormal(2), [LocScale(2)])
    >>> round(reverse_kl(flow, flow.base.log_prob, 100).item(), 6)  # q = p: KL = 0
    0.0
    """
    x, log_q = sample_with_log_prob(flow, n_samples, generator)
    return (log_q - beta * evaluate_log_density(log_target, x)).mean()


def fit_reverse_kl(
    flow: Flow,
    log_target: LogDensity,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-2,
    anneal_steps: int = 0,
    beta0: float = 0.01,
    seed: int = 0,
    max_grad_norm: float | None = 100.0,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> History:
    """Fit ``flow`` to ``exp(log_target)`` by minimising :func:`reverse_kl`.

    Runs :func:`course_utils.core.train.train` with Adam, a cosine learning-rate
    decay to zero, and fresh base samples at every step (there is no data:
    the "batches" are the step numbers). With ``anneal_steps``, the inverse
    temperature rises linearly from ``beta0`` to 1 over the first steps, and
    ``History.step_loss`` of those steps is the loss of the flattened target.

    Args:
        flow: the flow, trained in place.
        log_target: unnormalised ``log p̃``: ``(n, dim) -> (n,)``.
        steps: optimisation steps.
        batch_size: samples per step.
        lr: Adam's initial learning rate.
        anneal_steps: steps of annealing (0: none).
        beta0: the first inverse temperature when annealing.
        seed: seeds the samples, so a run is reproducible.
        max_grad_norm: gradient clipping (None: off).
        device: where to train.
        progress: progress bar (default: only when interactive).

    Returns:
        The training :class:`~course_utils.core.train.History` (one epoch of
        ``steps`` steps; ``step_loss`` is the loss curve).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    # foreach: the default loop's numbers, bit for bit, in fewer kernel calls
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr, foreach=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    def loss_fn(model: nn.Module, step: int) -> Tensor:
        beta = 1.0 if step >= anneal_steps else beta0 + (1 - beta0) * step / anneal_steps
        return reverse_kl(model, log_target, batch_size, beta, generator)

    return train(
        flow,
        loss_fn,
        range(steps),
        epochs=1,
        optimizer=optimizer,
        scheduler=scheduler,
        device=device,
        max_grad_norm=max_grad_norm,
        progress=progress,
        seed=seed,
    )


@dataclass(frozen=True)
class VIEstimate:
    """What samples of a trained flow say about the target.

    Attributes:
        elbo: ``E_q[log p̃ − log q]``, a lower bound on ``log Z``.
        elbo_stderr: its Monte Carlo standard error.
        log_z_is: the importance-sampling estimate ``log mean(p̃ / q)`` of ``log Z``
            (consistent; biased low for a finite sample).
        ess_fraction: effective sample size of the weights ``p̃ / q`` divided by
            the number of samples: 1 when ``q = p``, near 0 when ``q`` misses mass.
        n_samples: samples used.
    """

    elbo: float
    elbo_stderr: float
    log_z_is: float
    ess_fraction: float
    n_samples: int


@torch.no_grad()
def evaluate_vi(
    flow: Flow,
    log_target: LogDensity,
    n_samples: int = 20_000,
    generator: torch.Generator | None = None,
) -> VIEstimate:
    """ELBO, importance-sampled ``log Z`` and effective sample size of a flow.

    Args:
        flow: the variational flow.
        log_target: unnormalised ``log p̃``: ``(n, dim) -> (n,)``.
        n_samples: samples drawn from the flow.
        generator: optional CPU generator.

    Returns:
        A :class:`VIEstimate`.

    >>> flow = Flow(StandardNormal(2), [LocScale(2)])
    >>> est = evaluate_vi(flow, lambda x: flow.base.log_prob(x) - 3.0, 1000)
    >>> round(est.elbo, 4), round(est.log_z_is, 4), round(est.ess_fraction, 4)
    (-3.0, -3.0, 1.0)
    """
    was_training = flow.training
    flow.eval()
    x, log_q = sample_with_log_prob(flow, n_samples, generator)
    log_w = (evaluate_log_density(log_target, x) - log_q).double()
    flow.train(was_training)
    n = len(log_w)
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)) / n
    return VIEstimate(
        elbo=float(log_w.mean()),
        elbo_stderr=float(log_w.std() / math.sqrt(n)) if n > 1 else math.nan,
        log_z_is=float(torch.logsumexp(log_w, 0) - math.log(n)),
        ess_fraction=float(ess),
        n_samples=n,
    )


def fit_both_ways(
    target, steps: int = 400, seed: int = 0, batch_size: int = 256, lr: float = 3e-3
) -> dict[str, Flow]:
    """The same RealNVP (4 couplings of 32 units), fitted by reverse KL and by forward KL.

    Both start from the same initial weights and take ``steps`` Adam steps of
    ``batch_size`` points: reverse KL on samples of the flow (:func:`fit_reverse_kl`),
    forward KL (maximum likelihood) on ``steps × batch_size`` fresh samples of the
    target. Torch's global random state is left as it was.

    Args:
        target: a normalised target with ``log_prob`` and ``sample``, e.g.
            :func:`course_utils.flows2d.targets.two_modes`.
        steps: optimisation steps of each fit.
        seed: seeds the initial weights and the samples.
        batch_size: points per step.
        lr: Adam's initial learning rate (cosine decay for reverse KL, constant for forward KL).

    Returns:
        ``{"reverse KL": flow, "forward KL": flow}``.
    """
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    with torch.random.fork_rng(devices=[]):
        fits = {}
        for label in ("reverse KL", "forward KL"):
            torch.manual_seed(seed)  # the same initial weights for both
            fits[label] = realnvp(2, n_couplings=4, hidden=32)
        fit_reverse_kl(
            fits["reverse KL"],
            target.log_prob,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            progress=False,
        )
        torch.manual_seed(seed)
        data = target.sample((steps * batch_size,))
        train(
            fits["forward KL"],
            lambda m, x: m.forward_kld(x),
            data,
            epochs=1,
            batch_size=batch_size,
            lr=lr,
            device="cpu",
            progress=False,
            seed=seed,
        )
    return fits
