"""Fine-tuning a Glow with the composite loss, and measuring what it changed (lesson 09).

:func:`fit` runs the course's one training loop
(:func:`course_utils.core.train.train`) on :func:`~course_utils.composite.losses.composite_loss`
and records every term of every step; :func:`evaluate` measures a fine-tuned
model on held-out images: bits/dim, the channel-mean gap of its samples, the
perturbed reconstruction and, with the digit classifier, its recognisable share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from course_utils.composite.losses import (
    LossConfig,
    LossTerms,
    channel_means,
    check_images,
    composite_loss,
    dequantized,
    log_prob_and_latents,
    perturbed_reconstruction,
    sample_with_grad,
)
from course_utils.composite.measure import ink, single_background
from course_utils.core.metrics import bits_per_dim
from course_utils.core.train import train
from course_utils.glow.digits import recognisable
from course_utils.glow.model import Glow
from course_utils.glow.recipes import FINETUNE, Recipe

__all__ = ["TermHistory", "evaluate", "fit"]

Tensor = torch.Tensor


@dataclass
class TermHistory:
    """Every step's loss terms (floats), appended to by :func:`fit`."""

    total: list[float]
    nll: list[float]
    recon: list[float]
    channel: list[float]

    @classmethod
    def empty(cls) -> TermHistory:
        return cls([], [], [], [])

    def append(self, terms: LossTerms) -> None:
        for name, value in zip(LossTerms._fields, terms, strict=True):
            getattr(self, name).append(float(value.detach()))

    def __len__(self) -> int:
        return len(self.total)


def fit(
    model: Glow,
    images: Tensor,
    config: LossConfig,
    steps: int,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    terms: TermHistory | None = None,
    seed: int = 0,
    on_step=None,
    recipe: Recipe | None = None,
):
    """Train ``model`` for ``steps`` steps of :func:`composite_loss`, logging each term.

    A thin wrapper around :func:`course_utils.core.train.train` (its NaN guard,
    batching and gradient clipping): the loss function it is given records the
    terms of every step.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        images: ``uint8`` training images ``(N, C, H, W)``, dequantized afresh
            at every step (by the model's own dequantizer, if it has one).
        config: the loss settings.
        steps: optimisation steps.
        optimizer: e.g. from :meth:`~course_utils.glow.recipes.Recipe.make_optimizer`; pass
            the same one again to continue training.
        scheduler: an optional learning-rate schedule.
        terms: a history to append to (a new one by default).
        seed: seeds the batch order, the dequantization, the perturbations and
            the samples: the same seed gives every configuration the same batches.
        on_step: called with the step count so far after every step (e.g. a
            progress bar).
        recipe: its batch size and gradient clipping (default
            :data:`~course_utils.glow.recipes.FINETUNE`).

    Returns:
        ``(terms, history)``: the :class:`TermHistory` and the
        :class:`course_utils.core.train.History` of this call.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    recipe = FINETUNE if recipe is None else recipe
    terms = TermHistory.empty() if terms is None else terms
    noise = torch.Generator().manual_seed(seed + 1)
    done = [0]

    def loss_fn(m: Glow, batch: Tensor) -> Tensor:
        parts = composite_loss(m, batch, config, noise)
        terms.append(parts)
        done[0] += 1
        if on_step is not None:
            on_step(done[0])
        return parts.total

    history = train(
        model,
        loss_fn,
        images,
        epochs=1,
        batch_size=recipe.batch_size,
        optimizer=optimizer,
        scheduler=scheduler,
        device="cpu",
        max_grad_norm=recipe.optimiser.max_grad_norm,
        progress=False,
        seed=seed,
        steps_per_epoch=steps,
    )
    return terms, history


@torch.no_grad()
def evaluate(
    model: Glow,
    test: Tensor,
    temperature: float = 0.7,
    sigma: float = 0.1,
    n_samples: int = 256,
    seed: int = 0,
    classifier: torch.nn.Module | None = None,
    batch_size: int = 100,
) -> dict[str, float | list[float]]:
    """Held-out measures of a model trained with :func:`composite_loss`.

    Args:
        model: a :class:`~course_utils.glow.model.Glow`.
        test: held-out ``uint8`` images (dequantized the model's way, noise
            seeded with ``seed + 1``) or dequantized float images, ``(N, C, H, W)``.
        temperature: temperature of the samples (drawn the Glow way, noise of
            standard deviation ``T`` per dimension).
        sigma: latent perturbation of the reconstruction measure.
        n_samples: samples for the colour statistics.
        seed: seeds the samples, the perturbations and the dequantization.
        classifier: lesson 07's digit classifier: if given, the share of the
            samples it recognises through :func:`ink` is measured too.
        batch_size: test images per pass (small batches run faster on a CPU).

    Returns:
        A dict: ``bpd`` (test bits/dim of the dequantization bound),
        ``channel_error`` (``|μ_c(test) − μ_c(samples)|`` per channel),
        ``channel_gap`` (its Euclidean norm), ``recon`` (mean ``R`` over the
        test images whose reconstruction stayed finite), ``recon_overflow`` and
        ``sample_overflow`` (the fractions of perturbed reconstructions and of
        samples that came out NaN or infinite: an ill-conditioned inverse;
        such samples are left out of the colour statistics),
        ``single_background`` (the share of the samples whose background has one
        colour, :func:`~course_utils.composite.measure.single_background`; overflowed
        samples count as not), and ``recognisable`` (with a classifier).
    """
    if isinstance(test, torch.Tensor) and test.dtype == torch.uint8:
        if test.ndim != 4 or test.shape[1] != model.config.shape[0]:
            raise ValueError(f"test must be (N, {model.config.shape[0]}, H, W), got {test.shape}")
    else:
        check_images(test, "test", channels=model.config.shape[0])
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    samples = sample_with_grad(model, n_samples, temperature, True, generator)
    ok = torch.isfinite(samples.flatten(1)).all(1)
    samples = samples[ok].clamp(0, 1)
    noise = torch.Generator().manual_seed(seed + 1)
    log_ps, errors, sums = [], [], torch.zeros(test.shape[1])
    for batch in test.split(batch_size):  # one inverse pass gives log p and the latents
        u, log_q = dequantized(model, batch, noise)
        log_p, z = log_prob_and_latents(model, u)
        log_ps.append(log_p - log_q)
        errors.append(perturbed_reconstruction(model, u, sigma, z, generator, per_image=True))
        sums += u.sum(dim=(0, 2, 3))
    per_image = torch.cat(errors)
    finite = torch.isfinite(per_image)
    mean_test = sums / (len(test) * test.shape[2] * test.shape[3])
    if len(samples):
        diff = (mean_test - channel_means(samples)).abs()
    else:  # every sample overflowed: no colour statistics
        diff = torch.full((test.shape[1],), math.nan)
    result: dict[str, float | list[float]] = {
        "bpd": bits_per_dim(torch.cat(log_ps), model.num_dims),
        "channel_error": diff.tolist(),
        "channel_gap": float(torch.linalg.vector_norm(diff)),
        "recon": float(per_image[finite].mean()) if finite.any() else math.nan,
        "recon_overflow": float((~finite).float().mean()),
        "sample_overflow": float((~ok).float().mean()),
        "single_background": float(single_background(samples).float().sum()) / n_samples
        if len(samples)
        else 0.0,
    }
    if classifier is not None:
        share = recognisable(classifier, ink(samples)).share if len(samples) else 0.0
        result["recognisable"] = share * float(ok.float().mean())  # overflowed: not recognised
    model.train(was_training)
    return result
