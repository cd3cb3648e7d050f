"""Conditional inpainting (lesson 11): one masked digit completed as each class.

A class-conditional Glow scores ``log p(x | y)`` for every class ``y``. Given
an image whose hole is missing, two questions have answers:

* *which classes do the known pixels allow?* :func:`known_pixels_posterior`
  estimates ``p(y | known pixels)`` by Bayes' rule, with ``p(known | y)``
  estimated from the class's own samples (a Monte Carlo average of a Gaussian
  observation model of the known pixels);
* *what would the digit look like as each class?* :func:`complete_as_each_class`
  fills the hole as each class by the likelihood ascent of lesson 08
  (:func:`course_utils.inpaint.flow.pixel_inpaint` given the class), starting
  from the class's sample that best matches the known pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.core.checks import check_float, check_int, check_unit_images
from course_utils.glow.measure import check_log_prior
from course_utils.inpaint.flow import pixel_inpaint
from course_utils.inpaint.masks import check_inputs, to_unit

__all__ = [
    "ClassCompletions",
    "complete_as_each_class",
    "draw_class_samples",
    "known_pixels_posterior",
]

Tensor = torch.Tensor


@dataclass(frozen=True)
class ClassCompletions:
    """One image completed as each of several classes, and what the classes' scores say.

    Attributes:
        completions: ``(K, C, H, W)`` in ``[0, 1]``: row ``k`` is the image with
            its hole filled as class ``classes[k]`` (the known pixels unchanged).
        log_probs: ``(K,)``: ``log p(x̂_y | y)`` of each completion under its own
            class, in nats.
        posterior: ``(K,)``: ``log p(y | known pixels)``, normalised over ``classes``
            (``posterior.exp().sum() == 1``), by :func:`known_pixels_posterior`.
        classes: ``(K,)`` int64: the classes, in the order of the rows.
    """

    completions: Tensor
    log_probs: Tensor
    posterior: Tensor
    classes: Tensor

    @property
    def best(self) -> int:
        """The class the known pixels make most probable."""
        return int(self.classes[int(self.posterior.argmax())])

    def probabilities(self) -> Tensor:
        """``p(y | known pixels)`` as probabilities, ``(K,)``."""
        return self.posterior.exp()


def _classes(classes: Sequence[int] | Tensor | None, num_classes: int) -> Tensor:
    if classes is None:
        return torch.arange(num_classes)
    out = torch.as_tensor(classes)
    if out.ndim != 1 or len(out) < 1 or out.is_floating_point() or out.dtype == torch.bool:
        raise ValueError(
            f"classes must be a list of ints (e.g. [4, 9]), got {tuple(out.shape)} "
            f"{str(out.dtype).removeprefix('torch.')}"
        )
    out = out.long()
    if int(out.min()) < 0 or int(out.max()) >= num_classes:
        raise ValueError(f"classes must lie in 0..{num_classes - 1}, got {out.tolist()}")
    if len(out.unique()) != len(out):
        raise ValueError(f"classes must not repeat a class, got {out.tolist()}")
    return out


def _one_image(image: object, shape: tuple[int, int, int]) -> Tensor:
    """``image`` as a float ``(1, C, H, W)`` in ``[0, 1]`` (8-bit images: their bins' centres)."""
    if not isinstance(image, Tensor):
        raise ValueError(f"image must be a tensor (C, H, W), got {type(image).__name__}")
    if shape[0] == 1 and tuple(image.shape) == shape[1:]:
        image = image[None]  # a grey image given as (H, W)
    if tuple(image.shape) != shape:
        raise ValueError(f"image must be one image of shape {shape}, got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return to_unit(image[None])
    return check_unit_images("image", image[None], shape=shape)


def _one_mask(mask: object, shape: tuple[int, int, int]) -> Tensor:
    """``mask`` ``(H, W)`` or ``(C, H, W)`` as a bool ``(1, C, H, W)``."""
    c, h, w = shape
    if not isinstance(mask, Tensor):
        raise ValueError(
            f"mask must be a bool tensor (H, W) or (C, H, W), got {type(mask).__name__}"
        )
    if tuple(mask.shape) == (h, w):
        mask = mask[None]
    if tuple(mask.shape) not in ((1, h, w), (c, h, w)):
        raise ValueError(
            f"mask must have shape ({h}, {w}) or ({c}, {h}, {w}) (True = missing), "
            f"got {tuple(mask.shape)}"
        )
    return mask[None]


def draw_class_samples(
    model: nn.Module,
    samples_per_class: int,
    temperature: float = 0.8,
    classes: Sequence[int] | Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``samples_per_class`` samples of each class: ``(K, S, C, H, W)`` in ``[0, 1]``, on the CPU.

    Seeded by ``generator`` without touching the global random state.
    """
    num_classes = getattr(model, "num_classes", None)
    if not num_classes:
        raise ValueError("draw_class_samples needs a class-conditional Glow (num_classes set)")
    n = check_int("samples_per_class", samples_per_class, minimum=1)
    temperature = check_float("temperature", temperature, positive=True)
    chosen = _classes(classes, num_classes)
    labels = chosen.repeat_interleave(n).to(next(model.parameters()).device)
    seed = None if generator is None else int(torch.randint(0, 2**62, (1,), generator=generator))
    devices = [labels.device] if labels.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None), torch.no_grad():
        if seed is not None:
            torch.manual_seed(seed)
        x = model.sample(len(labels), temperature=temperature, y=labels)
    return x.clamp(0, 1).cpu().view(len(chosen), n, *x.shape[1:])


def _known_log_likelihoods(samples: Tensor, x: Tensor, known: Tensor, sigma: float) -> Tensor:
    """``log (1/S) Σ_s N(x_known; x_s,known, σ²)`` per class, up to a constant: ``(K,)``."""
    misfit = ((samples - x) ** 2 * known).flatten(2).sum(2)  # (K, S)
    return torch.logsumexp(-misfit.double() / (2 * sigma**2), dim=1) - math.log(samples.shape[1])


def known_pixels_posterior(
    samples: Tensor,
    image: Tensor,
    mask: Tensor,
    sigma: float = 0.2,
    log_prior: Tensor | None = None,
) -> Tensor:
    """``log p(y | known pixels)`` ``(K,)`` by Bayes' rule, from each class's own samples.

    ``p(known | y) = ∫ p(known, hole | y) d hole`` is an integral over every
    possible hole. Observing the known pixels with a little Gaussian noise of
    scale ``σ`` turns it into an average over the class's samples,

        ``p(known | y) ≈ (1/S) Σ_s N(x_known; x_s,known, σ² I)``,  ``x_s ~ p(x | y)``,

    an unbiased Monte Carlo estimate of that smoothed likelihood (the constant of
    the Gaussian is the same for every class and cancels). With few samples and a
    small ``σ`` the closest sample dominates each class's sum: the estimate
    then asks how close the class's best-matching sample comes to the known
    pixels. Unlike the likelihood of a completed image, it does not favour a
    class for the ink its completion leaves out.

    Args:
        samples: ``(K, S, C, H, W)`` in ``[0, 1]``: ``S`` samples of each class
            (:func:`draw_class_samples`).
        image: one image ``(C, H, W)`` (or ``(H, W)``), ``uint8`` or float in ``[0, 1]``.
        mask: ``(H, W)`` or ``(C, H, W)``, ``True`` where missing.
        sigma: the known pixels' noise scale, > 0.
        log_prior: ``log p(y)`` of the ``K`` classes; None is uniform.

    Raises:
        ValueError: samples that are not ``(K, S, C, H, W)``, an image or mask of
            another shape, a mask with no known or no missing pixel, a bad prior.
    """
    samples = torch.as_tensor(samples)
    if samples.ndim != 5 or not samples.is_floating_point():
        raise ValueError(
            "samples must be float (K, S, C, H, W): S samples of each of K classes "
            f"(draw_class_samples), got {tuple(samples.shape)} {samples.dtype}"
        )
    shape = tuple(samples.shape[2:])
    x = _one_image(image, shape)
    m = check_inputs(x, _one_mask(mask, shape))
    sigma = check_float("sigma", sigma, positive=True)
    log_prior = check_log_prior(log_prior, samples.shape[0], torch.float64)
    log_known = _known_log_likelihoods(samples, x, (~m).to(samples.dtype), sigma)
    return (log_known + log_prior).log_softmax(0).float()


def complete_as_each_class(
    model: nn.Module,
    image: Tensor,
    mask: Tensor,
    classes: Sequence[int] | Tensor | None = None,
    log_prior: Tensor | None = None,
    steps: int = 200,
    lr: float = 0.05,
    generator: torch.Generator | None = None,
    init: str | Tensor = "sample",
    samples: Tensor | None = None,
    samples_per_class: int = 200,
    temperature: float = 0.8,
    sigma: float = 0.2,
) -> ClassCompletions:
    """Complete one masked image as each class, and weigh the classes by the known pixels.

    Each class ``y`` gets samples of its own (``samples``, or
    ``samples_per_class`` drawn at ``temperature``). They give the posterior
    ``p(y | known pixels)`` (:func:`known_pixels_posterior`) and, by default,
    the start of each class's hole: the class's sample closest to the known
    pixels (``init="sample"``; from a shared start such as black the ascent
    stays near it for every class, and the completions look alike). The hole
    is then filled by likelihood ascent on ``log p(x | y)``
    (:func:`course_utils.inpaint.flow.pixel_inpaint` given the class; all
    classes in one batch), and ``log_probs`` records where it ended.

    The completions' own ``log p(x̂_y | y)`` are *not* used to weigh the classes:
    a hole filled with little ink (a thin 1) is more likely under a digit model
    whatever the known pixels say, so the best completion's likelihood favours
    such classes.

    Args:
        model: a class-conditional Glow (``num_classes`` set).
        image: one image ``(C, H, W)`` (a grey one also ``(H, W)``): ``uint8``
            (mapped to its bins' centres, :func:`course_utils.inpaint.masks.to_unit`)
            or float in ``[0, 1]``.
        mask: bool (or 0/1) ``(H, W)`` or ``(C, H, W)``, ``True`` where the pixel
            is missing; some pixels must be missing and some known.
        classes: the classes to complete as (distinct ints); default every class.
        log_prior: ``log p(y)`` of each of the model's ``num_classes`` classes,
            ``(num_classes,)``; None is the uniform prior. Normalised over ``classes``.
        steps: the most ascent steps (it stops earlier once every class has converged).
        lr: Adam's learning rate, in the model's coordinates.
        generator: seeds the samples drawn here and a ``"uniform"`` start.
        init: the hole's start: ``"sample"`` (each class's best-matching sample), or one
            start for every class as in :func:`course_utils.inpaint.flow.init_hole`
            (``"zero"``, ``"half"``, ``"uniform"``, or an image ``(C, H, W)`` in ``[0, 1]``).
        samples: ``(num_classes, S, C, H, W)`` samples of every class of the model
            (:func:`draw_class_samples`), to reuse for several images; default: drawn here.
        samples_per_class: how many to draw when ``samples`` is None, >= 1.
        temperature: their temperature, > 0.
        sigma: the known pixels' noise scale of :func:`known_pixels_posterior`.

    Returns:
        :class:`ClassCompletions` on the CPU, one row per class in ``classes`` order.

    Raises:
        ValueError: an unconditional model; an image or a mask of another shape;
            an image with NaN/inf or values outside ``[0, 1]``; a mask with no
            missing or no known pixel; classes out of range or repeated; a prior
            of the wrong shape or not finite; samples of another shape.
    """
    num_classes = getattr(model, "num_classes", None)
    if not num_classes:
        raise ValueError(
            "complete_as_each_class needs a class-conditional Glow (num_classes set): an "
            "unconditional model has no p(x | y) to complete with"
        )
    steps = check_int("steps", steps, minimum=0)
    shape = tuple(model.config.shape)
    param = next(model.parameters())
    x = _one_image(image, shape).to(device=param.device, dtype=param.dtype)
    m = _one_mask(mask, shape).to(param.device)
    m = check_inputs(x, m, model)  # 0/1 masks, no hole or no known pixel: one message for all
    chosen = _classes(classes, num_classes)
    log_prior = check_log_prior(log_prior, num_classes, torch.float64)
    if samples is None:
        samples = draw_class_samples(model, samples_per_class, temperature, generator=generator)
    samples = torch.as_tensor(samples)
    if samples.ndim != 5 or tuple(samples.shape[2:]) != shape or len(samples) != num_classes:
        raise ValueError(
            f"samples must be (num_classes={num_classes}, S, *{shape}): S samples of every "
            f"class (draw_class_samples), got {tuple(samples.shape)}"
        )
    samples = samples[chosen].to(x)
    posterior = known_pixels_posterior(
        samples.cpu(), x[0].cpu(), m[0].cpu(), sigma, log_prior[chosen]
    )
    k = len(chosen)
    labels = chosen.to(param.device)
    if isinstance(init, Tensor):
        init = _one_image(init, shape).to(x).expand(k, *shape)
    elif init == "sample":
        misfit = ((samples - x) ** 2 * (~m).to(x)).flatten(2).sum(2)  # (K, S)
        init = samples[torch.arange(k), misfit.argmin(1)]  # each class's best match
    result = pixel_inpaint(
        model,
        x.expand(k, *shape).clone(),
        m.expand(k, *shape),
        steps=steps,
        lr=lr,
        init=init,
        generator=generator,
        label=labels,
    )
    completions = result.images.detach()
    with torch.no_grad():
        log_probs = model.log_prob(completions, labels).cpu()
    return ClassCompletions(
        completions=completions.cpu(),
        log_probs=log_probs.float(),
        posterior=posterior,
        classes=chosen,
    )
