"""Inpainting by the flow alone (lesson 08): likelihood ascent, a posterior sampler, latent MAP.

None of these methods looks at a training image: the trained flow is all they
know about digits.

* :func:`pixel_inpaint`: the hole's pixels are the parameters, the model and the
  known pixels are frozen, and ``log p(x)`` is maximised by gradient ascent (as
  in NICE, Dinh et al. 2014, §5.2) until it stops rising.
* :func:`mala_step` and :func:`posterior_inpaint`: samples of the hole given the
  known pixels, ``p(x_hole | x_known)``, by the Metropolis-adjusted Langevin
  algorithm (MALA) in the model's own coordinates, and their mean, the
  estimate a squared error rewards.
* :func:`latent_inpaint`: latent-space MAP (Asim et al. 2020): the latent ``z``
  whose image ``f⁻¹(z)`` matches the known pixels, with a penalty on ``‖z‖²``
  (:func:`latent_objective`) and the search started at ``z = 0``, the base
  distribution's mode.
* :func:`multistart_inpaint`: latent MAP from several starts, ``z = 0`` and random
  latents: several completions the flow draws, and their mean. It is not a
  posterior sampler (each fit ends at a mode of the objective near its start),
  but in a lesson's budget it is what MALA's chains amount to (they barely move
  from such starts: exact conditional sampling in a flow is hard, Whang et al. 2021).

Coordinates. The course's Glow starts with ``y = logit(α + (1 − 2α)·u)``: ``y``
are the *model's coordinates* of the pixels ``u ∈ [0, 1]``, and
``log p(u) = log p_Y(y) + log|dy/du|``. :class:`Coordinates` maps between the
two and evaluates both densities. A model without a logit works on ``u`` itself.

A class-conditional Glow (lesson 11) is asked about one class at a time:
``coordinates(model, label=3)`` and ``pixel_inpaint(..., label=3)`` use
``log p(x | y = 3)`` wherever an unconditional model uses ``log p(x)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.core.checks import check_float, check_int, check_unit_images
from course_utils.glow.model import BATCH_CHUNK, log_prob_in_batches
from course_utils.inpaint.masks import InpaintResult, check_inputs, frozen

__all__ = [
    "TARGET_ACCEPTANCE",
    "Coordinates",
    "coordinates",
    "log_prob_and_grad",
    "decode_in_chunks",
    "init_hole",
    "pixel_inpaint",
    "mala_log_acceptance",
    "mala_step",
    "posterior_inpaint",
    "latent_objective",
    "latent_inpaint",
    "multistart_inpaint",
]

Tensor = torch.Tensor

#: The acceptance rate the step-size schedule of :func:`posterior_inpaint` aims at:
#: the optimal rate of MALA in high dimension (Roberts & Rosenthal 1998).
TARGET_ACCEPTANCE = 0.574


# ----------------------------------------------------------------- coordinates


@dataclass(frozen=True)
class Coordinates:
    """The model's coordinates ``y`` of pixels ``u``, and the densities of both.

    Attributes:
        model: the flow (``log_prob`` on pixels; a Glow's ``flow`` for ``log_prob``
            in its own coordinates).
        alpha: the α of the model's logit, or None when the model works on ``u``.
        label: for a class-conditional model, the class whose density
            ``p(x | label)`` is evaluated: one int, or one class per image of
            every batch it is given; None for an unconditional model.
    """

    model: nn.Module
    alpha: float | None
    label: int | Tensor | None = None

    @property
    def low(self) -> float:
        """``y`` of the pixel value 0: the hole never goes below it."""
        return 0.0 if self.alpha is None else math.log(self.alpha) - math.log1p(-self.alpha)

    @property
    def high(self) -> float:
        """``y`` of the pixel value 1."""
        return 1.0 if self.alpha is None else -self.low

    def to_model(self, u: Tensor) -> Tensor:
        """Pixels ``u ∈ [0, 1]`` → model coordinates ``y``."""
        if self.alpha is None:
            return u.clone()
        v = self.alpha + (1 - 2 * self.alpha) * u
        return torch.log(v) - torch.log1p(-v)

    def to_pixels(self, y: Tensor) -> Tensor:
        """Model coordinates ``y`` → pixels, clamped to ``[0, 1]``."""
        if self.alpha is None:
            return y.clamp(0, 1)
        return ((torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)).clamp(0, 1)

    def log_det(self, y: Tensor) -> Tensor:
        """``log|dy/du|`` summed over each image's pixels: ``(batch,)``."""
        if self.alpha is None:
            return torch.zeros(len(y), dtype=y.dtype, device=y.device)
        per_pixel = math.log(1 - 2 * self.alpha) - F.logsigmoid(y) - F.logsigmoid(-y)
        return per_pixel.flatten(1).sum(1)

    def log_prob(self, y: Tensor) -> Tensor:
        """``log p_Y(y)``, the density in the model's coordinates: ``(batch,)``."""
        labels = _labels(self.model, self.label, len(y))
        if self.alpha is None:
            return self.model.log_prob(y) if labels is None else self.model.log_prob(y, labels)
        flow = self.model.flow  # the Glow's MultiscaleFlow, its first layer (the logit) skipped
        logit, flow.transform = flow.transform, _Identity()
        try:
            return flow.log_prob(y, labels)
        finally:
            flow.transform = logit

    def pixel_log_prob(self, y: Tensor) -> Tensor:
        """``log p(u)`` of the pixels ``u`` at ``y``: ``log p_Y(y) + log|dy/du|``."""
        return self.log_prob(y) + self.log_det(y)


class _Identity(nn.Module):
    """Stands in for the logit: no change, log|det| 0 per image."""

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z, torch.zeros(len(z), dtype=z.dtype, device=z.device)


def _labels(model: nn.Module, label: int | Tensor | None, n: int) -> Tensor | None:
    """``label`` as ``n`` classes on the model's device (the model's own check), or None."""
    check = getattr(model, "check_labels", None)
    if check is not None:
        return check(label, n, name="label")
    if label is not None:
        raise ValueError(
            f"label was given, but {type(model).__name__} is not a class-conditional model "
            "(it has no check_labels): leave the label out"
        )
    return None


def coordinates(model: nn.Module, label: int | Tensor | None = None) -> Coordinates:
    """The :class:`Coordinates` of ``model``: its logit's α if its flow starts with one.

    Args:
        model: the flow.
        label: for a class-conditional Glow, the class to evaluate ``p(x | label)``
            at (see :attr:`Coordinates.label`).

    >>> from course_utils.glow.model import Glow
    >>> coordinates(Glow(levels=1, blocks=1, hidden=4, logit_alpha=0.05)).alpha
    0.05
    """
    alpha = getattr(getattr(model, "config", None), "logit_alpha", None)
    if getattr(getattr(model, "flow", None), "transform", None) is None:
        alpha = None
    return Coordinates(model, alpha, label)


def log_prob_and_grad(
    fn: Callable[[Tensor], Tensor], y: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor]:
    """``fn(y)`` ``(batch,)`` and its gradient on the hole of ``y`` (0 on the known pixels).

    ``fn`` must treat the rows of ``y`` independently: it runs on
    :data:`course_utils.glow.model.BATCH_CHUNK` rows at a time, which is faster on a CPU.
    """
    values, grads = [], []
    with torch.enable_grad():
        for part in y.detach().split(BATCH_CHUNK):
            part.requires_grad_(True)
            value = fn(part)
            (grad,) = torch.autograd.grad(value.sum(), part)
            values.append(value.detach())
            grads.append(grad)
    grad = torch.cat(grads)
    return torch.cat(values), torch.where(mask, grad, torch.zeros_like(grad))


def decode_in_chunks(model: nn.Module, z: list[Tensor]) -> Tensor:
    """``model.decode(z)``, :data:`course_utils.glow.model.BATCH_CHUNK` images at a time."""
    parts = zip(*(t.split(BATCH_CHUNK) for t in z), strict=True)
    return torch.cat([model.decode(list(part)) for part in parts])


def init_hole(images: Tensor, init: str | Tensor, generator: torch.Generator | None) -> Tensor:
    """A starting image for an ascent or a chain (the caller keeps the known pixels).

    Args:
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        init: ``"zero"`` (black), ``"half"`` (grey 0.5), ``"uniform"`` (noise) or
            an image tensor of the same shape (e.g. a baseline's fill), float in
            ``[0, 1]`` and finite like ``images``.
        generator: seeds ``"uniform"``.

    Raises:
        ValueError: an unknown start, or a tensor of another shape, NaN/inf,
            values outside ``[0, 1]`` or ``uint8``.
    """
    if isinstance(init, torch.Tensor):
        if init.shape != images.shape:
            raise ValueError(
                f"init must have the images' shape {tuple(images.shape)}, got {tuple(init.shape)}"
            )
        # The start is the images' kind of value too: NaN would make every step NaN,
        # and 0..255 or uint8 would be clamped into a start nobody asked for.
        check_unit_images("init", init, uint8_hint="map uint8 images with to_unit()")
        return init.detach().to(images)
    if init == "zero":
        return torch.zeros_like(images)
    if init == "half":
        return torch.full_like(images, 0.5)
    if init == "uniform":
        return torch.rand(images.shape, generator=generator).to(images)
    raise ValueError(f"init must be 'zero', 'half', 'uniform' or an image tensor, got {init!r}")


# ------------------------------------------------------------ likelihood ascent


def pixel_inpaint(
    model: nn.Module,
    images: Tensor,
    mask: Tensor,
    steps: int = 400,
    lr: float = 0.05,
    init: str | Tensor = "zero",
    tol: float = 0.01,
    window: int = 20,
    generator: torch.Generator | None = None,
    label: int | Tensor | None = None,
) -> InpaintResult:
    """Maximise ``log p(x_known + δ·M)`` over the hole δ by gradient ascent, to convergence.

    The hole's values are the only parameters, held in the model's coordinates
    ``y`` (:class:`Coordinates`) and clamped to the range of the pixels
    ``[0, 1]``; the model and the known pixels are frozen. Adam steps on the
    summed ``log p`` of the batch (each hole changes only its own image's term).

    Stopping rule: stop when *every* image's ``log p`` rose by less than ``tol``
    nats per missing pixel over the last ``window`` steps, or after ``steps``.

    Args:
        model: a flow with ``log_prob(x) -> (batch,)`` on ``[0, 1]`` images.
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where pixels are missing (see :func:`course_utils.inpaint.check_inputs`).
        steps: the most steps.
        lr: Adam's learning rate, in model coordinates.
        init: the hole's start (:func:`init_hole`).
        tol: nats per missing pixel per ``window`` steps below which an image has converged.
        window: steps over which the rise is measured.
        generator: seeds a ``"uniform"`` start.
        label: for a class-conditional Glow (and only for one), the class whose
            ``log p(x | label)`` is maximised: one int for the whole batch or
            one per image.

    Returns:
        :class:`InpaintResult`; ``log_prob`` ``(steps taken + 1, batch)``;
        ``extra["converged"]``: whether the stopping rule ended it before ``steps``.
    """
    mask = check_inputs(images, mask, model)
    label = _labels(model, label, len(images))  # refused here, not deep in the first step
    steps = check_int("steps", steps, minimum=0)
    window = check_int("window", window, minimum=1)
    lr = check_float("lr", lr, positive=True)
    tol = check_float("tol", tol, minimum=0)
    coords = coordinates(model, label)
    restore = frozen(model)
    start = time.perf_counter()
    try:
        y_known = coords.to_model(images)
        hole = coords.to_model(init_hole(images, init, generator)).requires_grad_(True)
        opt = torch.optim.Adam([hole], lr=lr)
        enough = tol * mask.flatten(1).sum(1).to(images.dtype)
        trace, converged = [], False
        for step in range(steps + 1):
            with torch.enable_grad():
                log_p = coords.pixel_log_prob(torch.where(mask, hole, y_known))
            trace.append(log_p.detach())
            if step >= window and bool((trace[-1] - trace[-1 - window] < enough).all()):
                converged = True
                break
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            (-log_p.sum()).backward()
            opt.step()
            with torch.no_grad():
                hole.clamp_(coords.low, coords.high)
        out = torch.where(mask, coords.to_pixels(hole.detach()), images)
    finally:
        restore()
    return InpaintResult(
        out, torch.stack(trace), time.perf_counter() - start, {"converged": converged}
    )


# ------------------------------------------------------------- the sampler


def mala_log_acceptance(
    y: Tensor,
    proposal: Tensor,
    log_p: Tensor,
    log_p_proposal: Tensor,
    grad: Tensor,
    grad_proposal: Tensor,
    step_size: Tensor | float,
) -> Tensor:
    """The log Metropolis-Hastings ratio of a Langevin proposal: ``(batch,)``.

    The proposal is ``y' = y + (h/2)·∇log π(y) + √h·ξ``, so
    ``log q(y'|y) = −‖y' − y − (h/2)∇log π(y)‖² / 2h`` (+ a constant), and

        ``log a = log π(y') − log π(y) + log q(y|y') − log q(y'|y)``.

    Args:
        y, proposal: the current state and the proposal ``(batch, ...)``.
        log_p, log_p_proposal: ``log π`` of each ``(batch,)``.
        grad, grad_proposal: ``∇ log π`` of each (0 where the state does not move).
        step_size: ``h``, a number or ``(batch,)``.

    Returns:
        ``log a``; accept when ``log U < log a``, ``U ~ U(0, 1)``.
    """
    h = torch.as_tensor(step_size, dtype=y.dtype).reshape(-1, *[1] * (y.ndim - 1))
    forward = ((proposal - y - 0.5 * h * grad) ** 2 / (2 * h)).flatten(1).sum(1)
    backward = ((y - proposal - 0.5 * h * grad_proposal) ** 2 / (2 * h)).flatten(1).sum(1)
    return log_p_proposal - log_p - backward + forward


def mala_step(
    log_target: Callable[[Tensor], Tensor],
    y: Tensor,
    log_p: Tensor,
    grad: Tensor,
    mask: Tensor,
    step_size: Tensor | float,
    low: float = -math.inf,
    high: float = math.inf,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One MALA step of every image's hole; the known values never move.

    Args:
        log_target: ``y -> log π(y)`` ``(batch,)``, differentiable.
        y: the current states ``(batch, C, H, W)``.
        log_p, grad: ``log π(y)`` and its gradient on the hole (:func:`log_prob_and_grad`).
        mask: ``True`` on the values that move (the hole).
        step_size: ``h``, a number or one per image ``(batch,)``.
        low, high: the support of ``π``: a proposal outside it is rejected.
        generator: seeds the proposal's noise and the accept/reject draws.

    Returns:
        ``(y, log_p, grad, accept)``: the new states, their ``log π`` and
        gradients, and each image's acceptance probability ``min(1, a)``.
    """
    h = torch.as_tensor(step_size, dtype=y.dtype).reshape(-1, *[1] * (y.ndim - 1))
    noise = torch.randn(y.shape, generator=generator).to(y)
    proposal = torch.where(mask, y + 0.5 * h * grad + h.sqrt() * noise, y)
    inside = ((proposal >= low) & (proposal <= high)).flatten(1).all(1)
    log_p_new, grad_new = log_prob_and_grad(log_target, proposal.clamp(low, high), mask)
    log_a = mala_log_acceptance(y, proposal, log_p, log_p_new, grad, grad_new, h)
    log_a = torch.where(inside & torch.isfinite(log_a), log_a, torch.full_like(log_a, -math.inf))
    accepted = torch.rand(len(y), generator=generator).to(y).log() < log_a
    keep = accepted.view(-1, *[1] * (y.ndim - 1))
    return (
        torch.where(keep, proposal, y),
        torch.where(accepted, log_p_new, log_p),
        torch.where(keep, grad_new, grad),
        log_a.clamp(max=0).exp(),
    )


def posterior_inpaint(
    model: nn.Module,
    images: Tensor,
    mask: Tensor,
    chains: int = 4,
    steps: int = 60,
    warmup: int = 30,
    step_size: float = 0.01,
    temperature: float = 1.0,
    init: str | Tensor = "latent",
    latent_steps: int = 60,
    spread: float = 0.25,
    latent_lr: float = 0.05,
    generator: torch.Generator | None = None,
) -> InpaintResult:
    """Sample ``p(x_hole | x_known)`` with MALA; the estimate is the posterior mean.

    Each image runs ``chains`` Markov chains on its hole, in the model's
    coordinates ``y`` (:class:`Coordinates`), whose target is the model's
    density there, ``π(y) ∝ p_Y(y)^{1/T}``: at ``T = 1``, the exact posterior
    of the hole given the known pixels (any bijective change of coordinates
    keeps a posterior's samples, once its Jacobian is counted, which ``p_Y``
    does). The known pixels are clamped. During the first ``warmup`` steps
    each chain's step size ``h`` follows ``log h ← log h + (a − 0.574)/2``
    (``a``: the step's acceptance probability), then stays fixed, so that the
    steps after warm-up form a proper Markov chain. The estimate is the mean
    of the pixels over the chains and the steps after warm-up.

    Starts: ``"latent"`` takes :func:`latent_inpaint`'s fits, the first chain's
    from ``z = 0`` and the others' from ``z = spread·ε`` (different plausible
    digits that agree with the known pixels: a chain moves slowly, so where it
    starts shows); otherwise :func:`init_hole`'s starts, or a tensor of
    ``(batch·chains, C, H, W)`` starts (image ``i``'s chains are rows
    ``i·chains … i·chains + chains − 1``).

    Args:
        model: the flow.
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where pixels are missing.
        chains: chains per image.
        steps: MALA steps of each chain, warm-up included.
        warmup: steps of step-size adaptation, whose states are not averaged.
        step_size: the first ``h``.
        temperature: ``T`` of the target (1: the model's posterior).
        init: the starts (see above).
        latent_steps: steps of the latent fits that start the chains.
        spread: the latent starts' scale.
        latent_lr: the learning rate of those fits (:func:`latent_inpaint`'s ``lr``).
        generator: seeds the starts, the proposals and the accept/reject draws.

    Returns:
        :class:`InpaintResult`: ``images`` the posterior means; ``log_prob``
        ``(steps + 1, batch·chains)`` the pixel ``log p`` of every chain;
        ``extra``: ``"samples"`` ``(batch, chains, C, H, W)`` the chains' last
        states, ``"starts"`` the same for their first, ``"acceptance"``
        ``(steps,)`` the mean acceptance probability of each step,
        ``"step_size"`` ``(batch·chains,)`` after warm-up.
    """
    mask = check_inputs(images, mask, model)
    chains = check_int("chains", chains, minimum=1)
    steps = check_int("steps", steps, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    if warmup >= steps:
        raise ValueError(f"warmup must be below steps ({steps}), got {warmup}")
    step_size = check_float("step_size", step_size, positive=True)
    temperature = check_float("temperature", temperature, positive=True)
    b = len(images)
    x = images.repeat_interleave(chains, 0)
    m = mask.repeat_interleave(chains, 0)
    if isinstance(init, torch.Tensor) and init.shape[0] == b * chains:
        starts = init_hole(x, init, generator)
    elif init == "latent":
        starts = (
            multistart_inpaint(
                model,
                images,
                mask,
                starts=chains,
                steps=latent_steps,
                lr=latent_lr,
                spread=spread,
                generator=generator,
            )
            .extra["fits"]
            .flatten(0, 1)
        )
    else:
        starts = init_hole(x, init, generator)
    coords = coordinates(model)
    restore = frozen(model)
    start = time.perf_counter()
    try:

        def log_target(y: Tensor) -> Tensor:
            return coords.log_prob(y) / temperature

        y = torch.where(m, coords.to_model(starts), coords.to_model(x))
        log_p, grad = log_prob_and_grad(log_target, y, m)
        log_h = torch.full((len(y),), math.log(step_size), dtype=y.dtype)
        trace = [(log_p * temperature + coords.log_det(y)).detach()]
        acceptance, total, kept = [], torch.zeros_like(y), 0
        for step in range(steps):
            y, log_p, grad, a = mala_step(
                log_target, y, log_p, grad, m, log_h.exp(), coords.low, coords.high, generator
            )
            if step < warmup:
                log_h += 0.5 * (a - TARGET_ACCEPTANCE)
            else:
                total += coords.to_pixels(y)
                kept += 1
            acceptance.append(float(a.mean()))
            trace.append(log_p * temperature + coords.log_det(y))
        mean = (total / kept).view(b, chains, *images.shape[1:]).mean(1)
        out = torch.where(mask, mean, images)
        samples = torch.where(m, coords.to_pixels(y), x)
    finally:
        restore()
    extra = {
        "samples": samples.view(b, chains, *images.shape[1:]),
        "starts": torch.where(m, starts, x).view(b, chains, *images.shape[1:]),
        "acceptance": torch.tensor(acceptance),
        "step_size": log_h.exp(),
    }
    return InpaintResult(out, torch.stack(trace), time.perf_counter() - start, extra)


# ------------------------------------------------------------------ latent MAP


def latent_objective(
    decoded: Tensor, images: Tensor, mask: Tensor, z: list[Tensor], sigma: float = 0.05
) -> Tensor:
    """Latent MAP's objective per image: ``‖(1 − M)·(f⁻¹(z) − x)‖² / 2σ² + ‖z‖² / 2``.

    The first term is ``−log`` of a Gaussian likelihood of the known pixels (scale
    σ), the second ``−log`` of the standard-normal base density of every level's
    latents, both up to constants. Asim et al. (2020) write it
    ``‖(1 − M)·(f⁻¹(z) − x)‖² + γ‖z‖²``, which is this one times ``2σ²``, with
    ``γ = σ²``.

    Args:
        decoded: ``f⁻¹(z)``, ``(batch, C, H, W)``.
        images: the images ``(batch, C, H, W)``; only their known pixels count.
        mask: ``True`` where missing.
        z: the latents, one tensor ``(batch, ...)`` per level.
        sigma: the known pixels' misfit scale, in pixel units.

    Returns:
        ``(batch,)``.
    """
    known = (~mask).to(decoded.dtype)
    fit = ((decoded - images) ** 2 * known).flatten(1).sum(1) / (2 * sigma**2)
    return fit + sum(0.5 * (t**2).flatten(1).sum(1) for t in z)


def latent_inpaint(
    model: nn.Module,
    images: Tensor,
    mask: Tensor,
    steps: int = 60,
    lr: float = 0.05,
    sigma: float = 0.05,
    spread: float | Tensor = 0.0,
    init: Tensor | None = None,
    trace_every: int = 0,
    generator: torch.Generator | None = None,
) -> InpaintResult:
    """Latent-space MAP: ``min_z ‖(1 − M)·(f⁻¹(z) − x)‖² / 2σ² + ‖z‖² / 2``.

    The image is generated from its latents ``z`` (one tensor per level, see
    :meth:`course_utils.glow.model.Glow.decode`); the first term keeps the known
    pixels (a Gaussian observation model of scale σ), the second is the
    standard-normal base density of ``z``, and the search starts at ``z = 0``,
    its mode: both favour likely images (Asim et al. 2020). Adam takes the
    steps. A step that makes an image's decoding non-finite is undone for that
    image and the learning rate halved: a Glow's inverse can blow up far from
    the data.

    Args:
        model: a :class:`course_utils.glow.model.Glow` (``encode``/``decode``).
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where pixels are missing.
        steps: Adam steps.
        lr: Adam's learning rate, in latent units.
        sigma: scale of the data term, in pixel units.
        spread: start at ``z = spread·ε``, ``ε ~ N(0, I)``, instead of 0: a number,
            or one per image ``(batch,)``; different starts end in different fits.
        init: start at the encoding of this image instead (e.g. a baseline's fill).
        trace_every: record ``log p`` of the completion every this many steps (and
            at the end); 0 records only the end, which saves a pass per step.
        generator: seeds ``ε``.

    Returns:
        :class:`InpaintResult`; ``log_prob`` traces ``log p`` of the completion;
        ``extra["z"]``: the final latents; ``extra["objective"]`` ``(batch,)``: the
        objective there (:func:`latent_objective`).
    """
    mask = check_inputs(images, mask, model)
    steps = check_int("steps", steps, minimum=0)
    lr = check_float("lr", lr, positive=True)
    sigma = check_float("sigma", sigma, positive=True)
    trace_every = check_int("trace_every", trace_every, minimum=0)
    spread = torch.as_tensor(spread, dtype=images.dtype).expand(len(images)).clone()
    if not (torch.isfinite(spread).all() and (spread >= 0).all()):
        raise ValueError("spread must be finite and >= 0")
    restore = frozen(model)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            if init is not None:
                z0 = model.encode(torch.where(mask, init_hole(images, init, None), images))
            else:
                z0 = [
                    spread.view(-1, *[1] * len(s))
                    * torch.randn((len(images), *s), generator=generator).to(images)
                    for s in model.latent_shapes()
                ]
        z = [t.detach().clone().requires_grad_(True) for t in z0]
        opt = torch.optim.Adam(z, lr=lr)
        best = torch.where(mask, torch.zeros_like(images), images)
        z_good = [t.detach().clone() for t in z]
        trace = []
        for step in range(steps + 1):
            with torch.enable_grad():
                x = decode_in_chunks(model, z)
                ok = torch.isfinite(x.flatten(1)).all(1)
                if not ok.all():  # undo the last step for these images, and slow down
                    with torch.no_grad():
                        for t, g in zip(z, z_good, strict=True):
                            t[~ok] = g[~ok]
                    for group in opt.param_groups:
                        group["lr"] *= 0.5
                    x = decode_in_chunks(model, z)
                    ok = torch.isfinite(x.flatten(1)).all(1)
            with torch.no_grad():
                best[ok] = torch.where(mask[ok], x[ok].clamp(0, 1), images[ok])
                if trace_every and (step % trace_every == 0 or step == steps):
                    trace.append(log_prob_in_batches(model, best))
                z_good = [t.detach().clone() for t in z]
            if step == steps:
                with torch.no_grad():
                    objective = latent_objective(x, images, mask, z, sigma)
                break
            with torch.enable_grad():
                loss = latent_objective(x, images, mask, z, sigma)
                opt.zero_grad(set_to_none=True)
                torch.nan_to_num(loss, nan=0.0, posinf=0.0).sum().backward()
            opt.step()
        if not trace:
            with torch.no_grad():
                trace.append(log_prob_in_batches(model, best))
    finally:
        restore()
    extra = {"z": [t.detach() for t in z_good], "objective": objective.detach()}
    return InpaintResult(best, torch.stack(trace), time.perf_counter() - start, extra)


def multistart_inpaint(
    model: nn.Module,
    images: Tensor,
    mask: Tensor,
    starts: int = 4,
    steps: int = 60,
    lr: float = 0.05,
    sigma: float = 0.05,
    spread: float = 0.25,
    generator: torch.Generator | None = None,
) -> InpaintResult:
    """Latent MAP from ``starts`` starts per image: ``z = 0``, then ``z = spread·ε``.

    Each start ends at its own fit (:func:`latent_inpaint`), a completion the
    flow draws that agrees with the known pixels; where the known pixels leave
    the digit open, different starts end at different digits. The estimate is
    the mean of the fits (an average of plausible holes scores better in squared
    error than any one of them); the fit with the lowest objective is the
    multi-start MAP estimate.

    Args:
        model: a Glow (``encode``/``decode``).
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where pixels are missing.
        starts: fits per image; the first starts at ``z = 0``.
        steps, lr, sigma: of each fit (:func:`latent_inpaint`).
        spread: scale of the random starts.
        generator: seeds the random starts.

    Returns:
        :class:`InpaintResult`: ``images`` the mean of the fits; ``log_prob``
        ``(1, batch·starts)`` of every fit; ``extra``: ``"fits"`` ``(batch, starts,
        C, H, W)``, ``"objective"`` ``(batch, starts)``, ``"best"`` ``(batch, C, H,
        W)`` the fit of the lowest objective.
    """
    mask = check_inputs(images, mask, model)
    starts = check_int("starts", starts, minimum=1)
    spread = check_float("spread", spread, minimum=0)
    b = len(images)
    spreads = torch.full((b * starts,), spread, dtype=images.dtype)
    spreads[::starts] = 0.0
    res = latent_inpaint(
        model,
        images.repeat_interleave(starts, 0),
        mask.repeat_interleave(starts, 0),
        steps=steps,
        lr=lr,
        sigma=sigma,
        spread=spreads,
        generator=generator,
    )
    fits = res.images.view(b, starts, *images.shape[1:])
    objective = res.extra["objective"].view(b, starts)
    extra = {
        "fits": fits,
        "objective": objective,
        "best": fits[torch.arange(b), objective.argmin(1)],
    }
    return InpaintResult(fits.mean(1), res.log_prob[-1:], res.seconds, extra)
