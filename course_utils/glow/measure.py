"""What a Glow's manifest records: its test bits/dim and how many of its samples are digits.

The figures of a shipped Glow (``pretrained/<name>.json``) are measured here,
on the official test split, by the same functions that
``benchmarks/pretrained.py`` uses to measure them again. Also the
importance-weighted bound of lesson 07 (:func:`importance_weighted_log_prob`),
which tightens the one-sample dequantization bound with ``K`` noise draws. A
class-conditional Glow is also measured as a sampler that is asked for a digit
(:func:`drawn_as_asked`) and as a classifier by Bayes' rule
(:func:`bayes_posterior`, :func:`bayes_accuracy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from course_utils import pretrained
from course_utils.core.checks import check_float, check_int, check_uint8_images
from course_utils.core.data import image_splits
from course_utils.glow.digits import CONFIDENCE, probabilities, recognisable
from course_utils.glow.model import BATCH_CHUNK
from course_utils.glow.train import label_splits

__all__ = [
    "DrawnAsAsked",
    "bayes_accuracy",
    "bayes_posterior",
    "check_log_prior",
    "class_count",
    "dequantization_bounds",
    "drawn_as_asked",
    "importance_weighted_log_prob",
    "measure_glow",
    "recognisable_samples",
]

Tensor = torch.Tensor


def recognisable_samples(
    model: nn.Module, samples: int = 1000, temperatures: tuple[float, ...] = (0.7, 1.0)
) -> dict[float, Any]:
    """:func:`course_utils.glow.digits.recognisable` of ``samples`` draws of an MNIST Glow at each
    temperature (sampling seeded with 0 before each), by the shipped digit classifier."""

    classifier = pretrained.load("digit-classifier")
    out = {}
    for t in temperatures:
        torch.manual_seed(0)
        out[t] = recognisable(classifier, model.sample(samples, temperature=t))
    return out


@dataclass(frozen=True)
class DrawnAsAsked:
    """How often a class-conditional Glow draws the digit it is asked for.

    Attributes:
        share: the share of all samples that the digit classifier labels as the
            class they were drawn for, with probability >= ``confidence``.
        per_class: that share among the samples of each class 0..K-1.
        samples_per_class: samples drawn for each class.
        temperature: the sampling temperature.
        confidence: the classifier's probability a sample needs to count.
    """

    share: float
    per_class: tuple[float, ...]
    samples_per_class: int
    temperature: float
    confidence: float = CONFIDENCE

    @property
    def worst(self) -> tuple[int, float]:
        """The class drawn as asked least often, and its share."""
        k = min(range(len(self.per_class)), key=self.per_class.__getitem__)
        return k, self.per_class[k]

    def __str__(self) -> str:
        k, worst = self.worst
        return (
            f"{self.share:.1%} drawn as asked at T = {self.temperature:g} "
            f"({self.samples_per_class} per class; worst: {k} at {worst:.0%})"
        )


def class_count(model: nn.Module, what: str) -> int:
    """The number of classes of a class-conditional Glow, else a clear error naming ``what``."""
    classes = getattr(model, "num_classes", None)
    if not classes:
        raise ValueError(f"{what} needs a class-conditional Glow (num_classes set)")
    return classes


@torch.no_grad()
def drawn_as_asked(
    model: nn.Module,
    classifier: nn.Module | None = None,
    samples_per_class: int = 100,
    temperature: float = 0.7,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> DrawnAsAsked:
    """Draw ``samples_per_class`` samples of every class and check each is the digit asked for.

    A sample of class ``y`` counts when the digit classifier gives ``y`` a
    probability of at least ``confidence`` (a sample it is unsure of, or sure
    is another digit, does not).

    Args:
        model: a class-conditional Glow whose classes are the classifier's (digits 0-9).
        classifier: default the shipped ``digit-classifier``.
        samples_per_class: >= 1.
        temperature: sampling temperature, > 0.
        confidence: in (0, 1).
        seed: sampling is seeded with it (every class drawn in one batch).

    Raises:
        ValueError: an unconditional model, or a setting out of range.
    """
    classes = class_count(model, "drawn_as_asked")
    samples_per_class = check_int("samples_per_class", samples_per_class, minimum=1)
    temperature = check_float("temperature", temperature, positive=True)
    confidence = check_float("confidence", confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    classifier = pretrained.load("digit-classifier") if classifier is None else classifier
    asked = torch.arange(classes).repeat_interleave(samples_per_class)
    torch.manual_seed(seed)
    x = model.sample(len(asked), temperature=temperature, y=asked)
    probs = probabilities(classifier, x.cpu())
    if probs.shape[1] < classes:
        raise ValueError(
            f"the classifier knows {probs.shape[1]} classes, the model {classes}: "
            "they must be the same digits"
        )
    hit = probs[torch.arange(len(asked)), asked] >= confidence
    per_class = hit.view(classes, samples_per_class).float().mean(dim=1)
    return DrawnAsAsked(
        share=float(hit.float().mean()),
        per_class=tuple(round(float(v), 4) for v in per_class),
        samples_per_class=samples_per_class,
        temperature=temperature,
        confidence=confidence,
    )


def check_log_prior(
    log_prior: Tensor | None, classes: int, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``log p(y)`` as a ``(classes,)`` tensor of ``dtype``; None is the uniform prior (zeros).

    Zeros are as good as ``log(1/K)``: Bayes' rule normalises over the classes.

    Raises:
        ValueError: another shape, or a value that is not finite.
    """
    if log_prior is None:
        return torch.zeros(classes, dtype=dtype)
    log_prior = torch.as_tensor(log_prior, dtype=dtype)
    if log_prior.shape != (classes,) or not bool(torch.isfinite(log_prior).all()):
        raise ValueError(
            f"log_prior must be {classes} finite log-probabilities (one per class of the "
            f"model), got shape {tuple(log_prior.shape)}"
        )
    return log_prior


@torch.no_grad()
def bayes_posterior(
    model: nn.Module,
    images: Tensor,
    log_prior: Tensor | None = None,
    batch_size: int = BATCH_CHUNK,
    seed: int = 1,
) -> Tensor:
    """``log p(y | k)`` of 8-bit images by Bayes' rule: ``(batch, num_classes)``.

    ``log p(k | y) + log p(y)``, normalised over the classes, with ``log p(k | y)``
    the model's dequantized bound
    (:meth:`~course_utils.glow.model.Glow.dequantized_class_log_probs`: one
    dequantization per image for all classes, seeded with ``seed``).

    Args:
        model: a class-conditional Glow.
        images: ``uint8`` images ``(batch, C, H, W)``.
        log_prior: ``log p(y)``, ``(num_classes,)``; None is the uniform prior.
        batch_size: images per pass, >= 1.
        seed: seeds the dequantization noise.

    Raises:
        ValueError: an unconditional model, images that are not ``uint8``, or a
            prior of the wrong shape or not finite.
    """
    classes = class_count(model, "bayes_posterior")
    images = check_uint8_images("images", images, allow_hw=False)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    log_prior = check_log_prior(log_prior, classes)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    log_joint = torch.cat(
        [
            model.dequantized_class_log_probs(part.to(device), generator).cpu()
            for part in images.split(batch_size)
        ]
    ) + log_prior.log_softmax(0)
    return log_joint.log_softmax(dim=1)


def bayes_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    log_prior: Tensor | None = None,
    seed: int = 1,
) -> float:
    """The share of ``images`` whose class is ``argmax_y log p(k | y) + log p(y)`` (Bayes' rule).

    Raises:
        ValueError: as :func:`bayes_posterior`, or labels that are not one class per image.
    """
    labels = torch.as_tensor(labels)
    if labels.shape != (len(images),) or labels.is_floating_point():
        raise ValueError(
            f"labels must be {len(images)} integer classes, one per image, got "
            f"{tuple(labels.shape)} {str(labels.dtype).removeprefix('torch.')}"
        )
    posterior = bayes_posterior(model, images, log_prior, seed=seed)
    return float((posterior.argmax(dim=1) == labels.long()).float().mean())


def measure_glow(model: nn.Module, dataset: str, samples: int = 1000) -> dict[str, Any]:
    """The figures a Glow's manifest records, measured on the official test split.

    Test bits/dim on all test images (dequantization noise seeded with 1); for
    MNIST also the recognisable share of ``samples`` samples at T = 0.7 and 1
    (:mod:`course_utils.glow.digits`, sampling seeded with 0).

    A class-conditional Glow's bits/dim are those of ``p(x | y)`` given each
    test image's class; instead of the recognisable share it is measured
    drawn as asked (``samples / 10`` per class at T = 0.7 and 1,
    :func:`drawn_as_asked`) and as a classifier by Bayes' rule on every test
    image, with the training split's class frequencies as the prior.
    """
    _, test = image_splits(dataset)
    model.eval()
    classes = getattr(model, "num_classes", None)
    # (the test classes cut to the images scored, should fewer be asked for)
    labels = label_splits(dataset) if classes else None
    if labels is not None:
        labels = (labels[0], labels[1][: len(test)])
    figures: dict[str, Any] = {
        "test_bits_per_dim": round(
            model.bits_per_dim(test, seed=1, **({"y": labels[1]} if classes else {})), 4
        ),
        "test_images": len(test),
    }
    if classes:
        if dataset == "mnist":
            for t in (0.7, 1.0):
                d = drawn_as_asked(model, samples_per_class=samples // classes, temperature=t)
                figures[f"drawn_as_asked_T{t}"] = {
                    "share": round(d.share, 4),
                    "per_class": list(d.per_class),
                    "samples_per_class": d.samples_per_class,
                }
            figures["drawn_as_asked_share"] = figures["drawn_as_asked_T0.7"]["share"]
        counts = torch.bincount(labels[0], minlength=classes).float()
        figures["bayes_test_accuracy"] = round(
            bayes_accuracy(model, test, labels[1], log_prior=(counts / counts.sum()).log()), 4
        )
        return figures
    if dataset == "mnist":
        for t, r in recognisable_samples(model, samples).items():
            figures[f"recognisable_T{t}"] = {
                "share": round(r.share, 4),
                "digits_drawn": r.digits_drawn,
                "per_digit": list(r.counts),
                "samples": r.n,
            }
        figures["recognisable_share"] = figures["recognisable_T0.7"]["share"]
    return figures


@torch.no_grad()
def dequantization_bounds(
    model: nn.Module,
    images: Tensor,
    samples: int,
    generator: torch.Generator | None = None,
    batch_size: int = 50,
) -> Tensor:
    """``samples`` one-draw bounds ``log p(u) − log q(v|k)`` per image: ``(samples, batch)``.

    Row ``j`` is :meth:`~course_utils.glow.model.Glow.dequantized_log_prob` of
    the images with the ``j``-th draw of dequantization noise (the model's own
    dequantizer, or uniform noise without one); the draws come from
    ``generator`` in row order, ``batch_size`` images at a time. Each row's
    mean is the usual single-sample estimate; :func:`importance_weighted_log_prob`
    combines the rows into a tighter bound.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        images: ``uint8`` images ``(batch, C, H, W)``.
        samples: draws of the noise per image, ``K >= 1``.
        generator: seeds the noise.
        batch_size: images per pass.
    """
    samples = check_int("samples", samples, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    return torch.stack(
        [
            torch.cat([model.dequantized_log_prob(p, generator) for p in images.split(batch_size)])
            for _ in range(samples)
        ]
    )


def importance_weighted_log_prob(bounds: Tensor) -> Tensor:
    """The importance-weighted bound from ``K`` one-draw bounds per image: ``(batch,)``.

    With ``K`` draws ``v_j ~ q(v|k)`` of the dequantization noise,
    ``log (1/K) Σ_j p(u_j) / q(v_j|k)`` is a lower bound on ``log P(k) + D log 256``
    that is never looser (in expectation) than the mean of the ``K`` one-draw
    bounds and tightens as ``K`` grows (Burda et al., 2016; Ho et al., 2019).

    Args:
        bounds: ``(K, batch)`` values ``log p(u_j) − log q(v_j|k)``, e.g. from
            :func:`dequantization_bounds`.

    Returns:
        ``logsumexp_j(bounds) − log K`` per image, in nats (bits/dim with
        :func:`course_utils.core.metrics.bits_per_dim`).

    >>> iw = importance_weighted_log_prob(torch.tensor([[0.0], [math.log(3.0)]]))  # log((1 + 3)/2)
    >>> round(iw.item() - math.log(2), 6)
    0.0
    """
    if not isinstance(bounds, Tensor) or bounds.dim() != 2 or len(bounds) < 1:
        raise ValueError(
            "bounds must be a (K, batch) tensor of one-draw bounds, got "
            f"{tuple(bounds.shape) if isinstance(bounds, Tensor) else type(bounds).__name__}"
        )
    return torch.logsumexp(bounds, dim=0) - math.log(len(bounds))
