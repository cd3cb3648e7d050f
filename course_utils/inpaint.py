"""Zero-shot inpainting with a trained flow (lesson 08), and the baselines it must beat.

A flow gives the exact log-density of any image, so it can fill in missing
pixels without ever being trained to: keep the known pixels and the model
fixed, and look for hole values the model finds likely.

Conventions:
    * ``images``: float ``(batch, C, H, W)`` in ``[0, 1]`` (8-bit images are
      mapped to the centres of their bins, ``(k + 0.5) / 256``, by
      :func:`to_unit`), the input the Glow of :mod:`course_utils.models` takes.
    * ``mask``: boolean ``(batch, C, H, W)`` (or ``(batch, 1, H, W)``, broadcast
      over channels), ``True`` where a pixel is **missing**. Every method
      returns ``torch.where(mask, fill, images)``, so the known pixels come back
      bit for bit.

Methods:
    * :func:`pixel_inpaint`: gradient ascent on ``log p(x_known + δ·M)`` over the
      hole values ``δ`` (the classic zero-shot method), with Adam, clamped to
      ``[0, 1]``.
    * :func:`latent_inpaint`: optimise the latents ``z`` of ``x = f⁻¹(z)``, with
      a data-consistency term on the known pixels and the Gaussian prior on ``z``.
    * :func:`stochastic_inpaint`: noisy gradient (Langevin-like) steps on the
      hole, from different starts, which give several plausible fills for one image.
    * :func:`flow_kernel_inpaint`: the flow weighs the holes of the nearest
      training images by how well each fits the known pixels, and averages them.

Baselines: :func:`zero_fill`, :func:`mean_fill`, :func:`nearest_neighbour_fill`,
:func:`kernel_fill` (a distance-weighted average of the nearest neighbours' holes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from course_utils.checks import check_int
from course_utils.models import log_prob_in_batches

Tensor = torch.Tensor

#: Mask kinds :func:`make_masks` draws.
MASK_KINDS = ("squares", "noise", "centre", "left", "right", "top", "bottom")


# ----------------------------------------------------------------------- masks


def to_unit(images: Tensor) -> Tensor:
    """8-bit images ``(batch, C, H, W)`` → float at their bins' centres ``(k + 0.5) / 256``.

    >>> to_unit(torch.tensor([[[[0, 255]]]], dtype=torch.uint8)).tolist()
    [[[[0.001953125, 0.998046875]]]]
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {images.dtype}")
    return (images.float() + 0.5) / 256.0


def make_masks(
    kind: str,
    n: int,
    shape: tuple[int, int, int] = (1, 28, 28),
    size: int = 12,
    fraction: float = 0.5,
    count: int = 2,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw ``n`` boolean masks (``True`` = missing) of one kind.

    Args:
        kind: one of :data:`MASK_KINDS`:
            ``"squares"`` ``count`` squares of side ``size`` at random places;
            ``"noise"`` each pixel missing with probability ``fraction``;
            ``"centre"`` a centred square of side ``size``;
            ``"left"``/``"right"``/``"top"``/``"bottom"`` that half of the image.
        n: number of masks.
        shape: ``(C, H, W)`` of the images; the mask covers every channel.
        size: side of the squares, in pixels.
        fraction: share of missing pixels of a noise mask, in ``(0, 1)``.
        count: number of squares of a ``"squares"`` mask.
        generator: seeds the random kinds.

    Returns:
        bool ``(n, C, H, W)``.

    >>> make_masks("left", 1, (1, 2, 4)).int().tolist()
    [[[[1, 1, 0, 0], [1, 1, 0, 0]]]]
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {MASK_KINDS}")
    n = check_int("n", n, minimum=1)
    size, count = check_int("size", size, minimum=1), check_int("count", count, minimum=1)
    c, h, w = shape
    m = torch.zeros(n, 1, h, w, dtype=torch.bool)
    if kind in ("squares", "centre") and not 1 <= size <= min(h, w):
        raise ValueError(f"size must be between 1 and {min(h, w)}, got {size}")
    if kind == "squares":
        tops = torch.randint(0, h - size + 1, (n, count), generator=generator)
        lefts = torch.randint(0, w - size + 1, (n, count), generator=generator)
        for i in range(n):
            for t, l in zip(tops[i].tolist(), lefts[i].tolist(), strict=True):
                m[i, :, t : t + size, l : l + size] = True
    elif kind == "noise":
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
        m = torch.rand(n, 1, h, w, generator=generator) < fraction
    elif kind == "centre":
        t, l = (h - size) // 2, (w - size) // 2
        m[:, :, t : t + size, l : l + size] = True
    elif kind == "left":
        m[..., : w // 2] = True
    elif kind == "right":
        m[..., w // 2 :] = True
    elif kind == "top":
        m[:, :, : h // 2] = True
    else:
        m[:, :, h // 2 :] = True
    return m.expand(n, c, h, w).clone()


def check_inputs(images: Tensor, mask: Tensor) -> Tensor:
    """Validate an inpainting problem and return the mask as bool ``(batch, C, H, W)``.

    Args:
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: bool or 0/1 tensor of the same shape (or with one channel),
            ``True``/1 where pixels are missing.

    Raises:
        ValueError: shapes differ, the mask is not boolean or 0/1, nothing or
            everything is masked in some image, or the image holds NaN/inf or
            values outside ``[0, 1]``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (batch, C, H, W), got {got}")
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a tensor, got {type(mask).__name__}")
    if mask.ndim == 3:
        mask = mask[:, None]
    b, c, h, w = images.shape
    if mask.ndim != 4 or mask.shape[0] != b or mask.shape[2:] != images.shape[2:]:
        raise ValueError(
            f"mask must have the images' shape {tuple(images.shape)} "
            f"(or (batch, 1, H, W)), got {tuple(mask.shape)}"
        )
    if mask.shape[1] not in (1, c):
        raise ValueError(f"mask must have 1 or {c} channels, got {mask.shape[1]}")
    if mask.dtype != torch.bool:
        if mask.is_floating_point() and not torch.isfinite(mask).all():
            raise ValueError("mask contains NaN or inf; it must be boolean or 0/1")
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError(
                "mask must be boolean or hold only 0 and 1 (1 = missing), got values "
                f"{torch.unique(mask)[:5].tolist()}"
            )
        mask = mask == 1
    mask = mask.expand(b, c, h, w)
    if not images.is_floating_point():
        raise ValueError(
            f"images must be float in [0, 1], got {images.dtype}; map uint8 with to_unit()"
        )
    _check_unit_interval(images, "images")
    missing = mask.flatten(1).sum(1)
    if (missing == 0).any():
        i = int((missing == 0).nonzero()[0])
        raise ValueError(f"nothing is masked in image {i}: there is nothing to inpaint")
    if (missing == c * h * w).any():
        i = int((missing == c * h * w).nonzero()[0])
        raise ValueError(
            f"everything is masked in image {i}: with no known pixel this is sampling, "
            "not inpainting (use model.sample)"
        )
    return mask.clone()


# ------------------------------------------------------------------- baselines


def zero_fill(images: Tensor, mask: Tensor) -> Tensor:
    """Fill the hole with 0 (black)."""
    mask = check_inputs(images, mask)
    return images.masked_fill(mask, 0.0)


def mean_fill(images: Tensor, mask: Tensor, train_images: Tensor) -> Tensor:
    """Fill the hole with the mean training image's pixels.

    Args:
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where missing.
        train_images: float ``(N, C, H, W)`` in ``[0, 1]``.
    """
    mask = check_inputs(images, mask)
    _check_train(train_images, images)
    mean = train_images.mean(0, keepdim=True).to(images)
    return torch.where(mask, mean.expand_as(images), images)


def nearest_neighbour_fill(
    images: Tensor, mask: Tensor, train_images: Tensor, chunk: int = 4096
) -> Tensor:
    """Copy the hole from the training image closest on the known pixels.

    The distance is the squared error over the pixels each query knows, so every
    image has its own metric; it is computed as
    ``Σ k·x² − 2 Σ k·x·t + Σ k·t²`` with matrix products (``k`` = known).

    Args:
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where missing.
        train_images: float ``(N, C, H, W)`` in ``[0, 1]``, the pool to copy from.
        chunk: training images per matrix product.
    """
    mask = check_inputs(images, mask)
    _check_train(train_images, images)
    dist, idx = _neighbours(images, mask, train_images, 1, chunk)
    return blend_neighbours(images, mask, train_images, idx, torch.ones_like(dist))


#: Neighbours, kernel width and flow temperature of :func:`kernel_fill` and
#: :func:`flow_kernel_inpaint`, chosen on held-out digits 500–999 of mnist-9k by
#: ``benchmarks/inpaint_tuning.py``; ``benchmarks/inpaint.py`` scores digits 0–255.
NEIGHBOURS = 16
BANDWIDTH = 1.0
FLOW_TEMPERATURE = 0.75


def _neighbours(images: Tensor, mask: Tensor, train_images: Tensor, k: int, chunk: int = 4096):
    """The ``k`` training images nearest on the known pixels.

    Returns ``(dist, idx)``: squared known-pixel distances ``(batch, k)`` in
    increasing order, and their indices into ``train_images``.
    """
    k = min(check_int("k", k, minimum=1), len(train_images))
    chunk = check_int("chunk", chunk, minimum=1)
    dist, idx = _known_distances(images, mask, train_images, chunk).topk(k, dim=1, largest=False)
    return dist.clamp_min(0), idx


def _kernel_logits(dist: Tensor, bandwidth: float) -> Tensor:
    """Log-weights ``−d / (bandwidth · d₁)`` of neighbours at distances ``d`` (nearest ``d₁``)."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    return -dist / (bandwidth * dist[:, :1].clamp_min(1e-3))


def neighbour_weights(
    dist: Tensor,
    bandwidth: float = BANDWIDTH,
    score: Tensor | None = None,
    mask: Tensor | None = None,
    temperature: float = FLOW_TEMPERATURE,
) -> Tensor:
    """Weights ``(batch, k)`` of neighbours, from their distances and the flow's scores.

    ``softmax(−d_i / (bandwidth · d₁) + s_i / (temperature · n))`` over each row,
    with ``d`` the squared known-pixel distances in increasing order (``d₁`` the
    nearest), ``s`` the flow's scores (see :func:`flow_kernel_inpaint`) and ``n``
    the missing values of each image's ``mask``. Without ``score``, the kernel
    alone. A neighbour with a non-finite score gets no weight, unless no
    neighbour of the image has a finite one: then the kernel decides.
    """
    logits = _kernel_logits(dist, bandwidth)
    if score is not None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if mask is None:
            raise ValueError("a score needs the mask: its missing values scale the vote")
        vote = score / (temperature * mask.flatten(1).sum(1, keepdim=True))
        vote = torch.where(torch.isfinite(vote), vote, torch.full_like(vote, -torch.inf))
        blind = ~torch.isfinite(vote).any(1, keepdim=True)
        logits = logits + torch.where(blind, torch.zeros_like(vote), vote)
    return torch.softmax(logits, dim=1)


def blend_neighbours(
    images: Tensor, mask: Tensor, train_images: Tensor, index: Tensor, weights: Tensor
) -> Tensor:
    """Fill each hole with the weighted average of training images ``index`` ``(batch, k)``.

    The known pixels come back unchanged; ``weights`` ``(batch, k)`` are e.g.
    :func:`neighbour_weights` of the neighbours :func:`flow_kernel_inpaint` found.
    """
    if index.shape != weights.shape or index.shape[0] != len(images):
        raise ValueError(
            f"index and weights must both be (batch, k) with batch = {len(images)}, "
            f"got {tuple(index.shape)} and {tuple(weights.shape)}"
        )
    fill = (weights[:, :, None, None, None] * train_images[index].to(images)).sum(1)
    return torch.where(mask, fill, images)


def kernel_fill(
    images: Tensor,
    mask: Tensor,
    train_images: Tensor,
    k: int = NEIGHBOURS,
    bandwidth: float = BANDWIDTH,
) -> Tensor:
    """Average the holes of the ``k`` nearest training images, nearer ones weighing more.

    The weight of a neighbour at squared known-pixel distance ``d`` is
    ``exp(−d / (bandwidth · d₁))`` (normalised), with ``d₁`` the nearest one's
    distance: a kernel regression. An average of several plausible holes is
    closer in squared error to the truth than any one of them (it estimates the
    mean of the possible holes), so this baseline is much stronger than ``nn``.
    """
    mask = check_inputs(images, mask)
    _check_train(train_images, images)
    dist, idx = _neighbours(images, mask, train_images, k)
    return blend_neighbours(images, mask, train_images, idx, neighbour_weights(dist, bandwidth))


def _known_distances(images: Tensor, mask: Tensor, train_images: Tensor, chunk: int = 4096):
    """Squared distances ``(batch, N)`` between images and training images on known pixels."""
    known = (~mask).flatten(1).to(images.dtype)
    x = images.flatten(1) * known
    out = []
    for start in range(0, len(train_images), chunk):
        t = train_images[start : start + chunk].flatten(1).to(images)
        out.append((x * x).sum(1, keepdim=True) - 2 * x @ t.T + known @ (t * t).T)
    return torch.cat(out, 1)


def _check_train(train_images: Tensor, images: Tensor) -> None:
    if (
        not isinstance(train_images, torch.Tensor)
        or train_images.ndim != 4
        or train_images.shape[1:] != images.shape[1:]
    ):
        got = (
            tuple(train_images.shape)
            if isinstance(train_images, torch.Tensor)
            else type(train_images).__name__
        )
        raise ValueError(
            f"train_images must have shape (N, {', '.join(map(str, images.shape[1:]))}), got {got}"
        )
    if not train_images.is_floating_point():
        raise ValueError("train_images must be float in [0, 1]; map uint8 with to_unit()")
    _check_unit_interval(train_images, "train_images")


def _check_unit_interval(x: Tensor, name: str) -> None:
    """Finite values in ``[0, 1]``, or a ``ValueError`` that shows the range received."""
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or inf values")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{x.min().item():.3g}, {x.max().item():.3g}]"
        )


# ----------------------------------------------------------------- flow methods


@dataclass
class InpaintResult:
    """What a flow method returns.

    Attributes:
        images: ``(batch, C, H, W)`` completed images; known pixels unchanged.
        log_prob: ``(steps + 1, batch)`` log p of the current completion in nats,
            before the first step and after each step.
        seconds: wall-clock time of the optimisation.
    """

    images: Tensor
    log_prob: Tensor
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def _frozen(model: nn.Module) -> Callable[[], None]:
    """Freeze ``model`` (eval mode, no parameter gradients); return a function that restores it."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def restore() -> None:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)

    return restore


def _init_hole(images: Tensor, init: str | Tensor, generator: torch.Generator | None) -> Tensor:
    if isinstance(init, torch.Tensor):
        if init.shape != images.shape:
            raise ValueError(
                f"init must have the images' shape {tuple(images.shape)}, got {tuple(init.shape)}"
            )
        return init.detach().to(images).clamp(0, 1)
    if init == "zero":
        return torch.zeros_like(images)
    if init == "uniform":
        return torch.rand(images.shape, generator=generator).to(images)
    raise ValueError(f"init must be 'zero', 'uniform' or an image tensor, got {init!r}")


# The hole is optimised through θ with x = (sigmoid(θ) − a) / (1 − 2a), clamped to
# [0, 1]: the same logit coordinates the Glow itself works in. Plain steps on x
# are unstable: a flow's log-density is steep in pixel space (lesson 08 shows it).
_A = 0.05


def _to_theta(u: Tensor) -> Tensor:
    v = _A + (1 - 2 * _A) * u.clamp(0, 1)
    return torch.log(v) - torch.log1p(-v)


def _from_theta(theta: Tensor) -> Tensor:
    return ((torch.sigmoid(theta) - _A) / (1 - 2 * _A)).clamp(0, 1)


def _check_steps(steps: int, lr: float) -> None:
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")


def pixel_inpaint(
    model: nn.Module,
    images: Tensor,
    mask: Tensor,
    steps: int = 60,
    lr: float = 0.02,
    init: str | Tensor = "zero",
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> InpaintResult:
    """Maximise ``log p(x_known + δ·M)`` over the hole values δ (gradient ascent).

    The model and the known pixels are frozen; the hole is the only parameter.
    Adam takes ``steps`` steps on the summed log-density of the batch (each
    image's hole only affects its own term). The hole lives in logit
    coordinates, ``δ = (sigmoid(θ) − a) / (1 − 2a)`` clamped to ``[0, 1]`` with
    ``a = 0.05``, so it always stays in the model's input range.

    With ``noise > 0`` Gaussian noise of scale ``noise · (1 − k / steps)`` is added
    to θ after step ``k`` (noisy gradient ascent, annealed to zero): different
    seeds then end in different completions (see :func:`stochastic_inpaint`).

    Args:
        model: a flow with ``log_prob(x) -> (batch,)`` on ``[0, 1]`` images
            (e.g. :class:`course_utils.models.Glow`).
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where pixels are missing (see :func:`check_inputs`).
        steps: Adam steps.
        lr: Adam's learning rate, in logit units.
        init: the hole's start: ``"zero"``, ``"uniform"`` or an image tensor
            (e.g. a baseline's fill).
        noise: initial scale of the noise added to θ at each step.
        generator: seeds a ``"uniform"`` start and the noise.

    Returns:
        :class:`InpaintResult` with the completions and the log p trace.
    """
    mask = check_inputs(images, mask)
    _check_steps(steps, lr)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    restore = _frozen(model)
    start = time.perf_counter()
    try:
        theta = _to_theta(_init_hole(images, init, generator)).requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=lr)
        trace = []
        for step in range(steps + 1):
            log_p = model.log_prob(torch.where(mask, _from_theta(theta), images))
            trace.append(log_p.detach())
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            (-log_p.sum()).backward()
            opt.step()
            if noise > 0:
                with torch.no_grad():
                    scale = noise * (1 - step / steps)
                    theta += scale * torch.randn(theta.shape, generator=generator)
        out = torch.where(mask, _from_theta(theta.detach()), images)
    finally:
        restore()
    return InpaintResult(out, torch.stack(trace), time.perf_counter() - start)


def stochastic_inpaint(
    model: nn.Module,
    image: Tensor,
    mask: Tensor,
    n: int = 8,
    train_images: Tensor | None = None,
    steps: int = 100,
    lr: float = 0.02,
    noise: float = 0.02,
    generator: torch.Generator | None = None,
) -> InpaintResult:
    """Several plausible completions of one image: noisy ascent from random starts.

    Each of the ``n`` copies starts from its own random fill and follows
    :func:`pixel_inpaint` with annealed noise (noisy gradient steps), so the
    copies settle in different high-likelihood completions. With
    ``train_images`` the starts are the fills of ``n`` training images drawn at
    random among the ``4n`` nearest on the known pixels (plausible, different
    digits); without, uniform noise (a weak Glow then ends in speckled fills:
    the likelihood landscape is too rough for a few hundred steps).

    Args:
        model: the flow.
        image: float ``(1, C, H, W)`` or ``(C, H, W)`` in ``[0, 1]``.
        mask: its mask, same shape (``True`` = missing).
        n: number of completions.
        train_images: the pool of starting fills, float ``(N, C, H, W)``.
        steps, lr, noise: as in :func:`pixel_inpaint`.
        generator: seeds the starts and the noise.

    Returns:
        :class:`InpaintResult` with ``images`` of shape ``(n, C, H, W)``;
        ``extra["starts"]`` holds the starting fills.
    """
    if image.ndim == 3:
        image = image[None]
    if mask.ndim == 3:
        mask = mask[None]
    if image.ndim != 4 or len(image) != 1:
        raise ValueError(f"image must be one image (1, C, H, W), got {tuple(image.shape)}")
    n = check_int("n", n, minimum=1)
    mask = check_inputs(image, mask)
    images, masks = image.expand(n, *image.shape[1:]), mask.expand(n, *mask.shape[1:])
    if train_images is None:
        starts = torch.where(masks, torch.rand(images.shape, generator=generator), images)
    else:
        _check_train(train_images, image)
        k = min(4 * n, len(train_images))
        if k < n:
            raise ValueError(f"train_images holds {len(train_images)} images, fewer than n = {n}")
        nearest = _neighbours(image, mask, train_images, k)[1][0]
        pick = nearest[torch.randperm(k, generator=generator)[:n]]
        starts = torch.where(masks, train_images[pick].to(images), images)
    result = pixel_inpaint(
        model, images, masks, steps=steps, lr=lr, init=starts, noise=noise, generator=generator
    )
    result.extra["starts"] = starts
    return result


def latent_inpaint(
    model: nn.Module,
    images: Tensor,
    mask: Tensor,
    steps: int = 30,
    lr: float = 0.01,
    sigma: float = 0.1,
    init: str | Tensor = "zero",
    trace_every: int = 0,
    generator: torch.Generator | None = None,
) -> InpaintResult:
    """Optimise the latents: ``min_z ‖(1 − M)(f⁻¹(z) − x)‖² / 2σ² + ‖z‖² / 2``.

    The image is generated from its latents ``z`` (one tensor per level, see
    :meth:`course_utils.models.Glow.decode`); the first term keeps the known
    pixels (data consistency, a Gaussian observation model of scale σ), the
    second is the standard-normal prior on ``z``. The start is the encoding of
    ``init``. A step that makes an image's decoding non-finite is undone for that
    image and the learning rate halved: a Glow's inverse can blow up far from
    the data (lesson 09 is about that).

    Args:
        model: a :class:`course_utils.models.Glow` (``encode``/``decode``/``log_prob``).
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where pixels are missing.
        steps: Adam steps.
        lr: Adam's learning rate in latent units.
        sigma: scale of the data-consistency term, in pixel units.
        init: the image whose encoding starts the search (as in :func:`pixel_inpaint`).
        trace_every: record log p of the completion every this many steps (and at
            the end); 0 records only the end, which saves a pass per step.
        generator: seeds a ``"uniform"`` start.

    Returns:
        :class:`InpaintResult`; ``log_prob`` traces log p of the completion.
    """
    mask = check_inputs(images, mask)
    _check_steps(steps, lr)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    known = (~mask).to(images.dtype)
    restore = _frozen(model)
    start = time.perf_counter()
    try:
        x0 = torch.where(mask, _init_hole(images, init, generator), images)
        with torch.no_grad():
            z = [t.detach().clone().requires_grad_(True) for t in model.encode(x0)]
        opt = torch.optim.Adam(z, lr=lr)
        best = x0.clone()
        z_good = [t.detach().clone() for t in z]
        trace = []
        for step in range(steps + 1):
            x = model.decode(z)
            ok = torch.isfinite(x.flatten(1)).all(1)
            if not ok.all():  # undo the last step for these images, and slow down
                with torch.no_grad():
                    for t, g in zip(z, z_good, strict=True):
                        t[~ok] = g[~ok]
                for group in opt.param_groups:
                    group["lr"] *= 0.5
                x = model.decode(z)
                ok = torch.isfinite(x.flatten(1)).all(1)
            with torch.no_grad():
                best[ok] = torch.where(mask[ok], x[ok].clamp(0, 1), images[ok])
                if trace_every and (step % trace_every == 0 or step == steps):
                    trace.append(model.log_prob(best))
                z_good = [t.detach().clone() for t in z]
            if step == steps:
                break
            cons = ((x - images) ** 2 * known).flatten(1).sum(1) / (2 * sigma**2)
            prior = sum(0.5 * (t**2).flatten(1).sum(1) for t in z)
            opt.zero_grad(set_to_none=True)
            torch.nan_to_num(cons + prior, nan=0.0, posinf=0.0).sum().backward()
            opt.step()
        if not trace:
            with torch.no_grad():
                trace.append(model.log_prob(best))
        out = best
    finally:
        restore()
    return InpaintResult(out, torch.stack(trace), time.perf_counter() - start)


def flow_kernel_inpaint(
    model: nn.Module,
    images: Tensor,
    mask: Tensor,
    train_images: Tensor,
    k: int = NEIGHBOURS,
    bandwidth: float = BANDWIDTH,
    temperature: float = FLOW_TEMPERATURE,
    batch_size: int = 512,
) -> InpaintResult:
    """:func:`kernel_fill` with the flow's vote on each neighbour's hole.

    Each of the ``k`` nearest training images ``t_i`` proposes its hole ``c_i``.
    The flow scores how well ``c_i`` fits *this* image's known pixels:

        ``s_i = log p(x_known ⊕ c_i) − log p(t_i)``

    The second term is the likelihood of the neighbour with its own known
    pixels. It cancels what ``c_i`` is worth on its own: a flow finds a blank
    hole likelier than any stroke, so ``log p(x_known ⊕ c_i)`` alone prefers
    the emptiest neighbour (the same likelihood-ratio idea as lesson 10). The
    weights are ``softmax(−d_i / (bandwidth · d₁) + s_i / (temperature · n))``
    (:func:`neighbour_weights`) with ``n`` the number of missing values, and the
    fill is the weighted average of the ``c_i``. With ``temperature → ∞`` it is
    :func:`kernel_fill`.

    Args:
        model: a flow with ``log_prob(x) -> (batch,)`` on ``[0, 1]`` images.
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where pixels are missing.
        train_images: float ``(N, C, H, W)`` in ``[0, 1]``, the pool of neighbours.
        k: number of neighbours.
        bandwidth: width of the distance kernel, relative to the nearest distance.
        temperature: nats per missing value that count as much as one kernel unit.
        batch_size: images per call of ``model.log_prob``.

    Returns:
        :class:`InpaintResult`: ``images``; ``log_prob`` ``(1, batch)``, the log p
        of the completions; ``extra`` with ``"index"`` (the neighbours, ``(batch, k)``),
        ``"distance"`` (the ``d_i``), ``"log_p_candidates"`` (``log p(x_known ⊕ c_i)``),
        ``"score"`` (the ``s_i``), ``"weights"`` and ``"kernel_weights"`` (with and
        without the flow's vote).
    """
    mask = check_inputs(images, mask)
    _check_train(train_images, images)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    restore = _frozen(model)
    start = time.perf_counter()
    try:
        dist, idx = _neighbours(images, mask, train_images, k)
        cand = torch.where(mask[:, None], train_images[idx].to(images), images[:, None])
        with torch.no_grad():
            here = log_prob_in_batches(model, cand.flatten(0, 1), batch_size).view_as(dist)
            pool, where = idx.unique(return_inverse=True)
            own = log_prob_in_batches(model, train_images[pool].to(images), batch_size)[where]
            score = here - own
            weights = neighbour_weights(dist, bandwidth, score, mask, temperature)
            out = blend_neighbours(images, mask, train_images, idx, weights)
            log_p = model.log_prob(out)
    finally:
        restore()
    extra = {
        "index": idx,
        "distance": dist,
        "log_p_candidates": here,
        "score": score,
        "weights": weights,
        "kernel_weights": neighbour_weights(dist, bandwidth),
    }
    return InpaintResult(out, log_p[None], time.perf_counter() - start, extra)


# ------------------------------------------------------------------ comparison

#: Every method of the lesson → whether it uses the flow.
METHODS = {
    "zero": False,
    "mean": False,
    "nn": False,
    "kernel": False,
    "ascent": True,
    "latent": True,
    "nn+ascent": True,
    "kernel+flow": True,
}


def fill(
    method: str,
    model: nn.Module | None,
    images: Tensor,
    mask: Tensor,
    train_images: Tensor,
    steps: int = 60,
) -> Tensor:
    """Complete a batch with one of :data:`METHODS`.

    ``"ascent"`` is :func:`pixel_inpaint` from the mean fill, ``"latent"`` is
    :func:`latent_inpaint` from the mean fill with ``steps // 2`` steps (each costs
    a decoding and a log-density), ``"nn+ascent"`` is :func:`pixel_inpaint` from
    the nearest-neighbour fill, ``"kernel"`` is :func:`kernel_fill` and
    ``"kernel+flow"`` is :func:`flow_kernel_inpaint` (``steps`` is not used by these).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if method == "zero":
        return zero_fill(images, mask)
    if method == "mean":
        return mean_fill(images, mask, train_images)
    if method == "nn":
        return nearest_neighbour_fill(images, mask, train_images)
    if method == "kernel":
        return kernel_fill(images, mask, train_images)
    if model is None:
        raise ValueError(f"method {method!r} needs a model")
    if method == "kernel+flow":
        return flow_kernel_inpaint(model, images, mask, train_images).images
    if method == "latent":
        init = mean_fill(images, mask, train_images)
        return latent_inpaint(model, images, mask, steps=steps // 2, init=init).images
    if method == "ascent":
        init = mean_fill(images, mask, train_images)
    else:
        init = nearest_neighbour_fill(images, mask, train_images)
    return pixel_inpaint(model, images, mask, steps=steps, init=init).images


def compare(
    model: nn.Module,
    images: Tensor,
    masks: dict[str, Tensor],
    train_images: Tensor,
    methods: tuple[str, ...] = tuple(METHODS),
    steps: int = 60,
    batch_size: int = 64,
) -> list[dict]:
    """Hole PSNR and time of every method on every mask type.

    Args:
        model: the flow.
        images: float ``(N, C, H, W)`` in ``[0, 1]``, held-out images.
        masks: mask type → bool ``(N, C, H, W)`` masks of those images.
        train_images: the pool of the mean and nearest-neighbour baselines.
        methods: names from :data:`METHODS`.
        steps: optimisation steps of the flow methods.
        batch_size: images per call; the time is reported per batch.

    Returns:
        One dict per (mask, method): ``psnr`` (mean over images, dB), ``psnr_sem``
        (its standard error), ``psnr_per_image``, ``seconds_per_batch`` and ``flow``.
    """
    from course_utils.metrics import masked_psnr

    rows = []
    for kind, mask in masks.items():
        for method in methods:
            psnr, seconds = [], []
            for xb, mb in zip(images.split(batch_size), mask.split(batch_size), strict=True):
                start = time.perf_counter()
                out = fill(method, model, xb, mb, train_images, steps)
                seconds.append(time.perf_counter() - start)
                psnr.append(masked_psnr(out, xb, mb))
            psnr = torch.cat(psnr)
            rows.append(
                {
                    "mask": kind,
                    "method": method,
                    "flow": METHODS[method],
                    "psnr": float(psnr.mean()),
                    "psnr_sem": float(psnr.std() / len(psnr) ** 0.5),
                    "psnr_per_image": psnr.tolist(),
                    "seconds_per_batch": sum(seconds) / len(seconds),
                }
            )
    return rows


def psnr_table(rows: list[dict]) -> str:
    """A plain text table of :func:`compare`'s rows: mask types × methods, best flow vs baseline."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    kinds = list(dict.fromkeys(r["mask"] for r in rows))
    width = max(9, *map(len, methods)) + 2
    header = f"{'mask':9s}" + "".join(f"{m:>{width}s}" for m in methods)
    lines = [header + "   best flow - best baseline"]
    for kind in kinds:
        vals = {r["method"]: r for r in rows if r["mask"] == kind}
        flow = [v["psnr"] for v in vals.values() if v["flow"]]
        base = [v["psnr"] for v in vals.values() if not v["flow"]]
        gap = f"{max(flow) - max(base):+.2f} dB" if flow and base else ""
        lines.append(
            f"{kind:9s}" + "".join(f"{vals[m]['psnr']:{width}.2f}" for m in methods) + f"   {gap}"
        )
    return "\n".join(lines)


def hole_view(images: Tensor, mask: Tensor, colour: tuple[float, float, float] = (0.85, 0.25, 0.2)):
    """RGB images ``(batch, 3, H, W)`` with the missing pixels painted in ``colour``.

    For figures: a learner sees at once which pixels the method had to invent.
    """
    mask = check_inputs(images, mask)
    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    paint = torch.tensor(colour, dtype=images.dtype).view(1, 3, 1, 1).expand_as(rgb)
    return torch.where(mask[:, :1].expand_as(rgb), paint, rgb)
