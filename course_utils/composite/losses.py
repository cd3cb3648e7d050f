"""The composite loss of lesson 09: likelihood, reconstruction and colour statistics.

For a flow ``f`` (data → latent) with base density ``p_Z`` and a batch ``x``,

    L = NLL(x) + α · R(x) + β · ‖μ_c(x) − μ_c(x̂)‖₂

* ``NLL`` is the negative log-likelihood, either in nats per image (the raw
  value, thousands for a 3×28×28 image) or *scaled* to bits per dimension
  (divided by ``D log 2``, plus the 8 bits of the dequantization bound, see
  :mod:`course_utils.core.metrics`), which is commensurate with the other terms.
* ``R`` is a reconstruction error that is **not** trivially zero. Through an
  exact bijection ``f⁻¹(f(x)) = x`` up to round-off, so the plain
  reconstruction error teaches nothing. Here the latent is perturbed first:
  ``R = mean((f⁻¹(f(x) + σε) − x)²)`` with ``ε ~ N(0, I)``. It is small when
  the inverse is well conditioned (a small move in latent space is a small
  move in image space) and large where the inverse amplifies noise.
* ``μ_c`` is the per-channel mean over a batch (and over pixels), and ``x̂``
  are samples drawn from the model at temperature ``T``, differentiably, so
  the gradient of the colour term reaches the flow and its base.

Two ways of drawing the base noise for ``x̂`` (configurations (c) and (d) of
the lesson, see :func:`base_noise`): standard deviation ``T`` per dimension
(the Glow way, length ``≈ T√D``, where a ``D``-dimensional Gaussian keeps its
mass), or a vector of length ``T`` (``T/√D`` per dimension: the wrong noise
scale, next to the base's centre, where no real image's latent lies).

Images may be given as ``uint8`` (dequantized the model's way, with its
learned dequantizer if it has one) or already dequantized in ``[0, 1]``.

Direction convention (normflows'): ``forward`` maps latent → data,
``inverse`` maps data → latent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from course_utils.core.metrics import bits_per_dim_each
from course_utils.glow.layers import base_from_noise
from course_utils.glow.model import Glow, dequantize

__all__ = [
    "check_images",
    "dequantized",
    "log_prob_and_latents",
    "nll_term",
    "perturbed_reconstruction",
    "channel_means",
    "channel_mean_gap",
    "base_noise",
    "sample_with_grad",
    "LossConfig",
    "LossTerms",
    "composite_loss",
    "CONFIGURATIONS",
]

Tensor = torch.Tensor


def check_images(x: Tensor, name: str, channels: int | None = None) -> None:
    """Raise a clear ValueError unless ``x`` is a finite float ``(batch, C, H, W)``."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or len(x) == 0:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        want = f"(batch, {channels}, H, W)" if channels else "(batch, C, H, W)"
        raise ValueError(f"{name} must have shape {want} with batch >= 1, got {got}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (batch, {channels}, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")


def _check_weight(value: float, name: str, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite {need} number, got {value}")


# ------------------------------------------------------------------ terms


def dequantized(
    model: Glow, x: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``(u, log_q)``: the model's input for a batch, and the log-density of its noise.

    ``uint8`` images ``k`` are dequantized the model's way: through its learned
    dequantizer, ``u = (k + v)/256`` with ``v ~ q(v|k)``, or uniformly
    (``log q = 0``) if it has none. Float images are taken as already
    dequantized (``log q = 0``). ``log p(u) − log q`` is then the bound on
    ``log P(k)`` that bits/dim report (lesson 07).

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        x: ``uint8`` images, or float images in ``[0, 1]``, ``(batch, C, H, W)``.
        generator: seeds the dequantization noise.

    Returns:
        ``u`` ``(batch, C, H, W)`` and ``log_q`` ``(batch,)`` (zeros without a dequantizer).
    """
    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        if x.ndim != 4 or tuple(x.shape[1:]) != model.config.shape:
            want = ", ".join(map(str, model.config.shape))
            raise ValueError(f"x must have shape (batch, {want}), got {tuple(x.shape)}")
        if model.dequantizer is not None:
            return model.dequantizer(x, generator)
        return dequantize(x, generator), torch.zeros(len(x))
    check_images(x, "x")
    return x, torch.zeros(len(x), dtype=x.dtype, device=x.device)


def log_prob_and_latents(model: Glow, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """``log p(x)`` and the latents ``f(x)`` from one inverse pass.

    The reconstruction term needs the latents that the likelihood computes
    anyway, so both come from the same pass.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        x: dequantized images ``(batch, C, H, W)`` in ``[0, 1]``.

    Returns:
        ``(log_p, z)``: ``(batch,)`` log-densities in nats and one latent per
        level, coarsest first.
    """
    model.check_input(x)
    if not model.initialized:  # through Glow's checks: a blank batch cannot initialise it
        model.initialize(x)
    z, log_det = model.flow.inverse_and_log_det(x)
    log_p = log_det + sum(q.log_prob(zi) for q, zi in zip(model.flow.q0, z, strict=True))
    return log_p, z


def nll_term(log_p: Tensor, num_dims: int, scaled: bool = True) -> Tensor:
    """The likelihood term: mean NLL in nats per image, or scaled to bits per dimension.

    Args:
        log_p: ``(batch,)`` log-densities in nats of dequantized images.
        num_dims: dimensions per image ``D = C·H·W``.
        scaled: True gives bits/dim, ``−log p / (D log 2) + 8``; False the raw
            ``−log p`` in nats. The two differ by a constant factor and offset,
            so on their own they have the same minimiser.

    Returns:
        A scalar tensor.

    >>> float(nll_term(torch.zeros(3), 784))  # a uniform density: 8 bits per dimension
    8.0
    """
    if log_p.ndim != 1 or len(log_p) == 0:
        raise ValueError(f"log_p must have shape (batch,), got {tuple(log_p.shape)}")
    return bits_per_dim_each(log_p, num_dims).mean() if scaled else -log_p.mean()


def perturbed_reconstruction(
    model: Glow,
    x: Tensor,
    sigma: float,
    z: list[Tensor] | None = None,
    generator: torch.Generator | None = None,
    per_image: bool = False,
) -> Tensor:
    """``R = mean((f⁻¹(f(x) + σε) − x)²)``: how far a small latent move throws the image.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        x: dequantized images ``(batch, C, H, W)`` in ``[0, 1]``.
        sigma: standard deviation of the latent perturbation (0 gives round-off only).
        z: the latents ``f(x)`` if already computed (they must carry gradients
            for ``R`` to train the encoder side too).
        generator: seeds ``ε``.
        per_image: return one mean per image, ``(batch,)``, instead of one scalar.

    Returns:
        The mean squared error per pixel, a scalar tensor (or ``(batch,)``).
    """
    _check_weight(sigma, "sigma")
    if z is None:
        z = model.encode(x)
    else:
        check_images(x, "x")
    moved = [zi + sigma * torch.randn(zi.shape, generator=generator).to(zi) for zi in z]
    error = (model.decode(moved) - x).pow(2)
    return error.flatten(1).mean(1) if per_image else error.mean()


def channel_means(x: Tensor) -> Tensor:
    """Per-channel mean over a batch and its pixels: ``(batch, C, H, W) -> (C,)``.

    >>> channel_means(torch.ones(2, 3, 4, 4) * torch.tensor([0.1, 0.2, 0.3])[:, None, None])
    tensor([0.1000, 0.2000, 0.3000])
    """
    check_images(x, "x")
    return x.mean(dim=(0, 2, 3))


def channel_mean_gap(x: Tensor, x_hat: Tensor) -> Tensor:
    """``‖μ_c(x) − μ_c(x̂)‖₂``, the Euclidean distance between two batches' mean colours.

    Args:
        x: real images ``(batch, C, H, W)``.
        x_hat: generated images ``(n, C, H', W')`` with the same ``C``; batch
            sizes and image sizes may differ.

    Returns:
        A scalar tensor.

    >>> a, b = torch.zeros(1, 3, 2, 2), torch.ones(5, 3, 2, 2)
    >>> round(float(channel_mean_gap(a, b)) ** 2, 6)  # sqrt(1 + 1 + 1), squared
    3.0
    """
    check_images(x, "x")
    check_images(x_hat, "x_hat", channels=x.shape[1])
    return torch.linalg.vector_norm(channel_means(x) - channel_means(x_hat))


def base_noise(
    model: Glow,
    n: int,
    temperature: float,
    scale_noise: bool = True,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Noise for every level's latent, before the base's learned mean and scale.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        n: number of samples.
        temperature: ``T > 0``.
        scale_noise: True: standard deviation ``T`` per dimension (length
            ``≈ T√D``); False: total length exactly ``T`` (see the module docstring).
        generator: seeds the noise.

    Returns:
        One ``(n, *shape)`` tensor per level, coarsest first.
    """
    _check_weight(temperature, "temperature", positive=True)
    if n < 1:
        raise ValueError(f"n must be a positive number of samples, got {n}")
    eps = [torch.randn((n, *q.shape), generator=generator) for q in model.flow.q0]
    if not scale_noise:  # one vector of length T across all levels together
        length = torch.sqrt(sum(e.pow(2).flatten(1).sum(1) for e in eps))
        eps = [e / length.view(-1, *([1] * (e.ndim - 1))) for e in eps]
    return [temperature * e for e in eps]


def sample_with_grad(
    model: Glow,
    n: int,
    temperature: float,
    scale_noise: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw ``n`` images ``(n, C, H, W)`` through which gradients flow.

    ``Glow.sample`` runs without gradients and clamps; here the base's learned
    mean and scale are applied to :func:`base_noise`
    (:func:`course_utils.glow.layers.base_from_noise`) and the latents are
    decoded with gradients on, so a loss on the samples trains the flow and its base.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        n: number of samples.
        temperature: ``T > 0``.
        scale_noise: see :func:`base_noise`.
        generator: seeds the noise.

    Returns:
        The images (not clamped; with a logit model they lie in ``(0, 1)``).
    """
    noise = base_noise(model, n, temperature, scale_noise, generator)
    z = [
        base_from_noise(q, e.to(model.flow.q0[0].loc))
        for q, e in zip(model.flow.q0, noise, strict=True)
    ]
    return model.decode(z)


# ------------------------------------------------------------ the whole loss


@dataclass(frozen=True)
class LossConfig:
    """Settings of :func:`composite_loss`.

    Attributes:
        alpha: weight α of the reconstruction term (set on a log scale).
        beta: weight β of the channel-mean term.
        temperature: temperature ``T`` of the samples ``x̂``.
        sigma: latent perturbation σ of the reconstruction term.
        scaled_nll: NLL in bits/dim (True) or in nats per image (False).
        scale_noise: base noise per dimension (True) or of total length ``T`` (False).
        n_samples: samples ``x̂`` per step for the channel-mean term.
    """

    alpha: float = 0.0
    beta: float = 0.0
    temperature: float = 0.7
    sigma: float = 0.1
    scaled_nll: bool = True
    scale_noise: bool = True
    n_samples: int = 32

    def __post_init__(self) -> None:
        _check_weight(self.alpha, "alpha")
        _check_weight(self.beta, "beta")
        _check_weight(self.temperature, "temperature", positive=True)
        _check_weight(self.sigma, "sigma")
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be positive, got {self.n_samples}")


class LossTerms(NamedTuple):
    """The loss and its parts, each a scalar tensor.

    ``recon`` and ``channel`` are measured even when their weight is 0 (then
    without gradients), so every configuration logs the same three curves.
    """

    total: Tensor
    nll: Tensor
    recon: Tensor
    channel: Tensor


def composite_loss(
    model: Glow,
    x: Tensor,
    config: LossConfig,
    generator: torch.Generator | None = None,
) -> LossTerms:
    """``L = NLL + α·R + β·‖μ_c(x) − μ_c(x̂)‖₂`` for a batch, with its terms.

    The NLL is that of the dequantization bound, ``−(log p(u) − log q(v|k))``
    (see :func:`dequantized`), so a model with a learned dequantizer trains it
    too; ``R`` and the real images' colours are computed on ``u``.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        x: ``uint8`` images, or dequantized ones in ``[0, 1]``, ``(batch, C, H, W)``.
        config: the weights and settings.
        generator: seeds the dequantization, the latent perturbation and the samples.

    Returns:
        :class:`LossTerms`; ``total`` is what to minimise.
    """
    u, log_q = dequantized(model, x, generator)
    log_p, z = log_prob_and_latents(model, u)
    nll = nll_term(log_p - log_q, model.num_dims, config.scaled_nll)
    with torch.set_grad_enabled(torch.is_grad_enabled() and config.alpha > 0):
        recon = perturbed_reconstruction(model, u, config.sigma, z, generator)
    with torch.set_grad_enabled(torch.is_grad_enabled() and config.beta > 0):
        x_hat = sample_with_grad(
            model, config.n_samples, config.temperature, config.scale_noise, generator
        )
        channel = channel_mean_gap(u, x_hat)
    total = nll
    if config.alpha > 0:
        total = total + config.alpha * recon
    if config.beta > 0:
        total = total + config.beta * channel
    return LossTerms(total, nll, recon, channel)


# ------------------------------------------------------ the four configurations

#: The four configurations of the loss study. (a) plain NLL in nats per image;
#: (b) NLL in bits/dim + α·R; (c) (b) + β·channel-mean gap with noise of
#: length T; (d) as (c) with noise of standard deviation T per dimension.
ALPHA, BETA = 100.0, 1.0
CONFIGURATIONS: dict[str, LossConfig] = {
    "a": LossConfig(alpha=0.0, beta=0.0, scaled_nll=False),
    "b": LossConfig(alpha=ALPHA, beta=0.0),
    "c": LossConfig(alpha=ALPHA, beta=BETA, scale_noise=False),
    "d": LossConfig(alpha=ALPHA, beta=BETA, scale_noise=True),
}
