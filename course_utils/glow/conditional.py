"""Conditional inpainting (lesson 11): one masked digit completed as each class.

A class-conditional Glow scores ``log p(x | y)`` for every class ``y``. Given
an image whose hole is missing, :func:`complete_as_each_class` asks each class
in turn for its best completion: the hole that maximises ``log p(x | y)``
with the known pixels fixed (the likelihood ascent of lesson 08,
:func:`course_utils.inpaint.flow.pixel_inpaint`, given the class). The best
``log p`` each class reaches, plus ``log p(y)``, normalised over the classes,
says which digits the known pixels leave possible: an approximate posterior
``p(y | known pixels)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.core.checks import check_float, check_int, check_unit_images
from course_utils.glow.measure import check_log_prior
from course_utils.inpaint.flow import pixel_inpaint
from course_utils.inpaint.masks import check_inputs, to_unit

__all__ = ["ClassCompletions", "complete_as_each_class"]

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
            (``posterior.exp().sum() == 1``).
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


def _class_samples(
    model: nn.Module, labels: Tensor, temperature: float, generator: torch.Generator | None
) -> Tensor:
    """One sample of each class in ``labels``; seeded by ``generator`` without touching the RNG."""
    if generator is None:
        return model.sample(len(labels), temperature=temperature, y=labels)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    devices = [labels.device] if labels.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return model.sample(len(labels), temperature=temperature, y=labels)


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
    start_temperature: float = 0.6,
) -> ClassCompletions:
    """Complete one masked image as each class, and weigh the classes by the known pixels.

    For each class ``y`` the hole is filled by likelihood ascent on
    ``log p(x | y)`` (:func:`course_utils.inpaint.flow.pixel_inpaint` given the
    class; all classes run in one batch). By default each class's hole starts
    from a sample of that class (``init="sample"``, drawn at
    ``start_temperature``): from a shared start such as black (``"zero"``) the
    ascent stays near it for every class (black pixels are the likeliest a
    digit model knows), and all the completions look alike. Each class's best
    ``log p(x̂_y | y)`` stands in for ``log p(known | y)``, and Bayes' rule gives

        ``log p(y | known) = log p(x̂_y | y) + log p(y) − log Σ_k p(x̂_k | k) p(k)``.

    This is a *profile likelihood*, an approximation: the exact
    ``p(known | y) = ∫ p(known, hole | y) d hole`` sums over every possible
    hole, while this keeps only the best one. It overrates a class whose best
    completion is sharp but rare, and underrates one with many good
    completions; it favours a class whose completion adds little ink (a thin
    1: a digit model gives dark pixels the highest density); and the ascent
    finds *a* maximum near its start, not necessarily the highest. Read it as
    "which classes can explain these pixels, and how well", not as calibrated
    probabilities.

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
        generator: seeds the ``"sample"`` and ``"uniform"`` starts.
        init: the hole's start: ``"sample"`` (a sample of each class), or one
            start for every class as in :func:`course_utils.inpaint.flow.init_hole`
            (``"zero"``, ``"half"``, ``"uniform"``, or an image ``(C, H, W)`` in ``[0, 1]``).
        start_temperature: the temperature of the ``"sample"`` starts, > 0.

    Returns:
        :class:`ClassCompletions` on the CPU, one row per class in ``classes`` order.

    Raises:
        ValueError: an unconditional model; an image or a mask of another shape;
            an image with NaN/inf or values outside ``[0, 1]``; a mask with no
            missing or no known pixel; classes out of range or repeated; a prior
            of the wrong shape or not finite.
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
    k = len(chosen)
    labels = chosen.to(param.device)
    start_temperature = check_float("start_temperature", start_temperature, positive=True)
    if isinstance(init, Tensor):
        init = _one_image(init, shape).to(x).expand(k, *shape)
    elif init == "sample":
        init = _class_samples(model, labels, start_temperature, generator)
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
        log_probs = model.log_prob(completions, labels).double().cpu()
    posterior = (log_probs + log_prior[chosen]).log_softmax(0)
    return ClassCompletions(
        completions=completions.cpu(),
        log_probs=log_probs.float(),
        posterior=posterior.float(),
        classes=chosen,
    )
