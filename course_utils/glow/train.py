"""Training a Glow: :func:`train_glow`, its checkpoints, and reading them back.

:func:`train_glow` trains a :class:`course_utils.glow.model.Glow` with a
:class:`~course_utils.glow.recipes.Recipe` for a wall-clock budget, with the
course's one training loop (:func:`course_utils.core.train.train`); its
checkpoints are named by the dataset and the recipe's digest
(:func:`glow_checkpoint_path`), record what run they belong to
(:func:`run_identity`), and :func:`load_glow` rebuilds the model from one. The
command line is :mod:`course_utils.glow.cli`::

    python -m course_utils.glow --dataset mnist --minutes 30 --device auto

Direction convention, as in ``normflows``: ``forward`` maps latent → data,
``inverse`` data → latent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from course_utils.core import config, distributed
from course_utils.core.checkpoints import check_checkpoint, load_checkpoint
from course_utils.core.checks import check_float, check_int
from course_utils.core.data import check_dataset, image_splits, load_mnist
from course_utils.core.train import History, resolve_device, train
from course_utils.glow.model import Glow, dequantize, glow_checkpoint_state, glow_from_state
from course_utils.glow.recipes import Recipe, get_recipe, recipe_name

__all__ = [
    "hybrid_loss",
    "label_splits",
    "glow_checkpoint_path",
    "load_glow",
    "run_identity",
    "train_glow",
]


def hybrid_loss(log_p: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
    """A class-conditional flow's loss: its NLL plus ``weight`` times its Bayes-rule cross-entropy.

    ``-mean log p(x | y) + weight · mean(-log p(y | x))``, where
    ``p(y | x) = p(x | y) / Σ_k p(x | k)`` is Bayes' rule with a uniform prior
    (a log-softmax over the classes). The first term alone makes the model
    good at *describing* each class; the second rewards it for scoring the
    right class *above the others*, which is what sampling by class and
    classifying by Bayes' rule need (the "hybrid" objective of Nalisnick et
    al. 2019). ``weight = 0`` is the plain likelihood.

    Args:
        log_p: ``(batch, K)``: ``log p(x | k)`` of every image for every class, in nats
            (e.g. :meth:`~course_utils.glow.model.Glow.dequantized_class_log_probs`).
        y: ``(batch,)`` integer classes in ``0..K-1``.
        weight: the cross-entropy's weight, >= 0.

    Returns:
        A scalar (differentiable in ``log_p``).

    Raises:
        ValueError: ``log_p`` is not ``(batch, K)`` with ``K >= 2``, ``y`` is not
            ``batch`` integers in range, or ``weight`` is negative or not finite.

    >>> log_p = torch.tensor([[-10.0, -12.0], [-11.0, -9.0]])
    >>> round(float(hybrid_loss(log_p, torch.tensor([0, 1]), 0.0)), 4)  # -(-10 - 9) / 2
    9.5
    """
    if not isinstance(log_p, torch.Tensor) or log_p.ndim != 2 or log_p.shape[1] < 2:
        shape = tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__
        raise ValueError(
            f"log_p must be a (batch, K) tensor of log p(x | k) for K >= 2 classes, got {shape}"
        )
    if not log_p.is_floating_point():
        raise ValueError(
            f"log_p must be float (nats), got {str(log_p.dtype).removeprefix('torch.')}"
        )
    batch, k = log_p.shape
    if not isinstance(y, torch.Tensor) or y.shape != (batch,):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(
            f"y must be a ({batch},) tensor of classes, one per row of log_p, got {shape}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(
            f"y must hold integer classes, got dtype {str(y.dtype).removeprefix('torch.')} "
            "(convert with .long())"
        )
    if bool(((y < 0) | (y >= k)).any()):  # one device sync; the bounds only for the message
        raise ValueError(
            f"y must lie in 0..{k - 1} (log_p has {k} classes), got values from "
            f"{int(y.min())} to {int(y.max())}"
        )
    weight = check_float("weight", weight, minimum=0)
    y = y.long()
    nll = -log_p.gather(1, y[:, None]).mean()
    return nll + weight * torch.nn.functional.cross_entropy(log_p, y)


def glow_checkpoint_path(dataset: str, recipe: str | Recipe, tag: str = "") -> Path:
    """Default checkpoint file of a Glow run, in ``<cache>/checkpoints/``.

    The name carries a short hash of the recipe, so a changed recipe never
    resumes from (or overwrites) a checkpoint of another architecture.

    Args:
        dataset: the dataset name.
        recipe: a :class:`~course_utils.glow.recipes.Recipe` or its name.
        tag: an optional suffix, e.g. ``"fast"`` for fast-mode runs.
    """
    name = f"glow-{dataset}-{get_recipe(recipe).digest()}" + (f"-{tag}" if tag else "")
    return config.cache_dir() / "checkpoints" / f"{name}.pt"


def label_splits(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The classes ``(train, test)`` (``int64``) of the images of :func:`image_splits`, in order.

    Coloured MNIST keeps MNIST's digits in their order, so it has their classes.
    """
    name = "mnist" if check_dataset(dataset).startswith("coloured-mnist") else dataset
    return load_mnist(name, "train")[1], load_mnist(name, "test")[1]


def run_identity(model: Glow, dataset: str, recipe: Recipe, validation: int = 0) -> dict:
    """What a :func:`train_glow` checkpoint records to refuse resuming into another run.

    The model's configuration, the dataset, the recipe's name (a recipe equal to
    a named one is that recipe) and digest, and the held-out share.
    """
    return {
        **glow_checkpoint_state(model),
        "dataset": dataset,
        "recipe": recipe_name(recipe),
        "recipe_digest": recipe.digest(),
        "validation": validation,
    }


def train_glow(
    dataset: str = "mnist",
    minutes: float = 5.0,
    recipe: str | Recipe = "course",
    device: str = "auto",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    eval_images: int = 1000,
    steps_per_epoch: int = 100,
    progress: bool | None = None,
    seed: int = 0,
    on_epoch_end: Callable[[History], None] | None = None,
    validation: int = 0,
):
    """Train a :class:`course_utils.glow.model.Glow` for a wall-clock budget.

    Each step draws a batch of 8-bit training images and minimises
    ``-Glow.dequantized_log_prob`` (the bound on ``log P(k)``, with the model's
    own dequantization noise, drawn afresh at every step). The held-out
    bits/dim is measured after every ``steps_per_epoch`` steps on the first
    ``eval_images`` test images with a fixed dequantization noise, or, with
    ``validation``, on the last training images, which are then left out of
    training (to choose settings without looking at the test split).

    A class-conditional recipe (``num_classes`` set) trains ``p(x | y)`` on
    each image's class (:func:`label_splits`) and measures the held-out
    bits/dim of ``p(x | y)``. Its batches are drawn as indices into the
    images and their classes, so the batch order, resuming and ``torchrun``
    work as for any Glow.

    A fresh model's ActNorm layers are initialised explicitly
    (:meth:`course_utils.glow.model.Glow.initialize`) on 512 training images
    drawn with ``seed`` before the first step; a resumed model keeps the
    initialisation stored in its checkpoint.

    Args:
        dataset: one of :data:`course_utils.core.data.IMAGE_DATASETS`.
        minutes: total training minutes, > 0 (a resumed run counts earlier ones).
        recipe: a :class:`~course_utils.glow.recipes.Recipe` or its name in
            :data:`~course_utils.glow.recipes.RECIPES`; its images' channels must be
            the dataset's.
        device: ``"auto" | "cpu" | "cuda" | "mps"``.
        checkpoint: file; default :func:`glow_checkpoint_path` of the dataset and recipe.
            An explicit checkpoint of another dataset or recipe is refused.
        resume: continue from the checkpoint if it exists; False starts over
            and keeps the old checkpoint as ``<name>.N.pt`` (see :func:`train`).
        eval_images: held-out images for the bits/dim curve, >= 1.
        steps_per_epoch: steps between evaluations and checkpoints, >= 1.
        progress: progress bar; default only when interactive.
        seed: seeds the model's initialisation and the batch order.
        on_epoch_end: called with the history after each evaluation.
        validation: if > 0, hold out the last ``validation`` training images
            and measure the curve on them instead of the test split.

    Returns:
        ``(model, history)``; ``history.eval`` is the held-out bits/dim curve
        and ``history.seconds`` the training time at each point.
    """
    minutes = check_float("minutes", minutes, positive=True)
    eval_images = check_int("eval_images", eval_images, minimum=1)
    steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    seed = check_int("seed", seed)
    validation = check_int("validation", validation, minimum=0)
    spec = get_recipe(recipe)
    channels = spec.model.shape[0]
    train_images, test_images = image_splits(check_dataset(dataset))
    conditional = spec.model.num_classes is not None
    if conditional:
        train_labels, test_labels = label_splits(dataset)
        if int(max(train_labels.max(), test_labels.max())) >= spec.model.num_classes:
            raise ValueError(
                f"{dataset} has classes up to {int(train_labels.max())}, but recipe "
                f"{recipe_name(spec)!r} has num_classes={spec.model.num_classes}"
            )
    if channels != train_images.shape[1]:
        raise ValueError(
            f"recipe {recipe_name(spec)!r} is for {channels}-channel images, but {dataset} has "
            f"{train_images.shape[1]}: choose a recipe whose model shape is "
            f"{tuple(train_images.shape[1:])}"
        )
    ckpt = checkpoint or glow_checkpoint_path(dataset, spec)
    if validation:
        if validation >= len(train_images):
            raise ValueError(
                f"validation={validation} leaves no training images of {len(train_images)}"
            )
        train_images, test_images = train_images[:-validation], train_images[-validation:]
        if conditional:
            train_labels, test_labels = train_labels[:-validation], train_labels[-validation:]
    config.seed_everything(seed)
    model = Glow(spec.model)
    dev = distributed.setup(resolve_device(device))  # under torchrun: this rank's device
    model.to(dev)
    optimizer, scheduler = spec.make_optimizer(model)
    if not (resume and Path(ckpt).is_file()):
        pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))
        init = train_images[pick[:512]]
        model.initialize(dequantize(init, torch.Generator().manual_seed(seed)).to(dev))
    held_out = test_images[:eval_images].to(dev)
    # Same weights on every rank (seeded above); each rank draws its own dequantization noise.
    torch.manual_seed(seed + distributed.world()[0])
    if conditional:
        # Batches of indices (shuffled, sharded and resumed by `train` like images), each
        # picking images and their classes (the run identity names the dataset).
        images, labels = train_images.to(dev), train_labels.to(dev)
        held_out_labels = test_labels[:eval_images].to(dev)
        data = torch.arange(len(train_images))

        def loss_fn(m, index):
            y = labels[index]
            weight = spec.schedule.class_weight(scheduler.last_epoch)  # steps taken so far
            if not weight:
                return -m.dequantized_log_prob(images[index], y=y).mean()
            log_p = m.dequantized_class_log_probs(images[index])  # (batch, classes), one pass
            return hybrid_loss(log_p, y, weight)

        def eval_fn(m):
            return m.bits_per_dim(held_out, seed=1, y=held_out_labels)
    else:
        data = train_images

        def loss_fn(m, k):
            return -m.dequantized_log_prob(k).mean()

        def eval_fn(m):
            return m.bits_per_dim(held_out, seed=1)

    history = train(
        model,
        loss_fn,
        data,
        epochs=10**9,  # the time budget ends the run
        batch_size=spec.batch_size,
        optimizer=optimizer,
        scheduler=scheduler,
        device=dev,
        max_grad_norm=spec.optimiser.max_grad_norm,
        max_seconds=minutes * 60,
        eval_fn=eval_fn,
        checkpoint=ckpt,
        resume=resume,
        progress=progress,
        seed=seed,
        extra_state=run_identity(model, dataset, spec, validation),
        steps_per_epoch=steps_per_epoch,
        on_epoch_end=on_epoch_end,
    )
    return model, history


def load_glow(path, map_location: str | torch.device = "cpu") -> tuple[Glow, dict]:
    """Rebuild a :class:`~course_utils.glow.model.Glow` from a checkpoint of :func:`train_glow`.

    ActNorm's data-dependent initialisation is stored in its buffers, so a
    loaded model counts as initialised (:attr:`Glow.initialized`) and gives the
    same log-probabilities as the saved one.

    Args:
        path: the checkpoint file.
        map_location: device to load onto.

    Returns:
        ``(model, checkpoint)``, the model in eval mode and the whole checkpoint
        dict (with its ``history`` and ``extra`` metadata).

    Raises:
        ValueError: the file is not a Glow checkpoint of this course.
        course_utils.core.checkpoints.CheckpointMismatchError: its weights do not
            fit its configuration (the message says which parameters differ).
    """
    state = load_checkpoint(path, map_location=map_location)
    try:
        model = glow_from_state(state.get("extra", {}))
    except ValueError as err:
        raise ValueError(f"{path} is not a Glow checkpoint of train_glow: {err}") from err
    check_checkpoint(path, state, model=model)
    model.load_state_dict(state["model"])
    return model.to(map_location).eval(), state
