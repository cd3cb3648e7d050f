"""The Glow's recipes, its training entry point and its command line.

A recipe is the model's settings and the optimiser's; :func:`train_glow`
trains a :class:`course_utils.glow.model.Glow` for a wall-clock budget with the
course's one training loop (:func:`course_utils.core.train.train`), and ``main`` is
the command line::

    python -m course_utils.glow --dataset mnist --minutes 30 --device auto
    torchrun --standalone --nproc_per_node 2 -m course_utils.glow --dataset mnist

Direction convention, as in ``normflows``: ``forward`` maps latent → data,
``inverse`` data → latent.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from course_utils.core import distributed
from course_utils.core.checkpoints import CheckpointBusyError, CheckpointMismatchError
from course_utils.core.checks import check_float, check_int
from course_utils.core.train import History, resolve_device, train
from course_utils.glow.model import Glow, dequantize, glow_checkpoint_state, make_optimizer

__all__ = [
    "REFERENCE_RECIPE",
    "COURSE_RECIPE",
    "FULL_RECIPE",
    "SMALL_RECIPE",
    "COURSE_LONG_RECIPE",
    "RECIPES",
    "GLOW_DATASETS",
    "recipe_with",
    "recipes",
    "glow_splits",
    "glow_checkpoint_path",
    "run_identity",
    "train_glow",
]

#: normflows' own Glow example scaled to 28×28: L=2, K=16, 128 hidden channels,
#: Adamax with lr 1e-3, data modelled directly in [0, 1) (no logit).
REFERENCE_RECIPE: dict = {
    "model": {"levels": 2, "blocks": 16, "hidden": 128, "logit_alpha": None},
    "optimizer": "adamax",
    "lr": 1e-3,
    "weight_decay": 1e-5,
    "warmup_steps": 0,
    "batch_size": 128,
}

#: The course's CPU recipe, chosen by measured held-out bits/dim per second of
#: CPU time (``benchmarks/glow_ablation.py``, lesson 07, section 11): two
#: checkerboard couplings at full resolution, gated coupling networks, a logit
#: with a tiny α, a learned dequantization noise, and batches of 16.
COURSE_RECIPE: dict = {
    "model": {
        "levels": 2,
        "blocks": (2, 4),
        "hidden": (48, 64),
        "net": "gated",
        "net_layers": 2,
        "full_res": 2,
        "full_res_hidden": 32,
        "dequantizer": 4,
        "dequantizer_hidden": 16,
        "logit_alpha": 1e-5,
    },
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_steps": 100,
    "batch_size": 16,
    "max_grad_norm": 100.0,
}

#: The course recipe widened for a GPU (``--device cuda``): more blocks and
#: channels, larger batches. Not yet measured on a GPU.
FULL_RECIPE: dict = {
    "model": {
        **COURSE_RECIPE["model"],
        "blocks": (4, 8),
        "hidden": (96, 128),
        "full_res": 4,
        "full_res_hidden": 64,
        "dequantizer_hidden": 32,
    },
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_steps": 500,
    "batch_size": 64,
    "max_grad_norm": 100.0,
}

#: The earlier, small CPU recipe (76k parameters, normflows' own GlowBlock, batch 64): far
#: weaker per CPU-second than :data:`COURSE_RECIPE`, but fast per pass, which lessons 08 and
#: 10 use for methods that run the flow many times.
SMALL_RECIPE: dict = {
    "model": {"levels": 2, "blocks": 4, "hidden": 64, "logit_alpha": 0.05},
    "optimizer": "adam",
    "lr": 2e-3,
    "weight_decay": 0.0,
    "warmup_steps": 100,
    "batch_size": 64,
}

#: How the shipped ``glow-mnist`` is trained for longer (``python -m
#: course_utils.pretrained make glow-mnist --recipe course-long ...``): the course
#: recipe, whose first 8,800 steps it repeats exactly, then the learning rate
#: times 0.2 (batches of 16 make the larger steps noisy; the held-out curve had
#: stopped falling at 1e-3).
COURSE_LONG_RECIPE: dict = {**COURSE_RECIPE, "lr_drop": (8800, 0.2)}

RECIPES = {
    "course": COURSE_RECIPE,
    "course-long": COURSE_LONG_RECIPE,
    "reference": REFERENCE_RECIPE,
    "full": FULL_RECIPE,
    "small": SMALL_RECIPE,
}

#: The datasets :func:`train_glow` trains on: those of
#: :func:`course_utils.core.data.image_splits`, and MNIST's digits coloured by
#: :func:`course_utils.core.data.coloured_splits` (lesson 09).
GLOW_DATASETS = ("mnist", "fashion-mnist", "coloured-mnist")


def recipe_with(changes: dict, recipe: dict | None = None) -> dict:
    """A copy of ``recipe`` (default :data:`COURSE_RECIPE`) with ``changes`` applied.

    A key that names a :class:`course_utils.glow.model.GlowConfig` field changes the
    model; any other must be one of the recipe's training settings (``lr``,
    ``batch_size``, ...)::

        recipe_with({"base": "spectral", "lr": 2e-3})
    """
    from course_utils.glow.model import GlowConfig

    out = copy.deepcopy(COURSE_RECIPE if recipe is None else recipe)
    for key, value in changes.items():
        if key in GlowConfig.__dataclass_fields__:
            out["model"][key] = value
        elif key in out and key != "model":
            out[key] = value
        else:
            settings = sorted(set(out) - {"model"})
            raise ValueError(
                f"unknown recipe change {key!r}: not a GlowConfig field nor one of {settings}"
            )
    return out


def recipes() -> dict[str, dict]:
    """Every named recipe: :data:`RECIPES` and ``"playground"``, lesson 09's 3-channel Glow."""
    from course_utils.composite.losses import PRETRAIN_RECIPE

    return {**RECIPES, "playground": PRETRAIN_RECIPE}


def glow_splits(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, test)`` uint8 images of a :data:`GLOW_DATASETS` entry, the official split.

    ``"coloured-mnist"`` is MNIST through :func:`course_utils.core.data.coloured_splits`
    (training digits coloured with seed 0, test digits with seed 1).
    """
    from course_utils.core.data import coloured_splits, image_splits

    if dataset not in GLOW_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {GLOW_DATASETS}")
    return (
        coloured_splits("mnist", seed=0) if dataset == "coloured-mnist" else image_splits(dataset)
    )


def glow_checkpoint_path(dataset: str, recipe: dict, tag: str = "") -> Path:
    """Default checkpoint file of a Glow run, in ``<cache>/checkpoints/``.

    The name carries a short hash of the recipe, so a changed recipe never
    resumes from (or overwrites) a checkpoint of another architecture.

    Args:
        dataset: the dataset name.
        recipe: the recipe dict.
        tag: an optional suffix, e.g. ``"fast"`` for fast-mode runs.
    """
    from course_utils.core import config

    name = f"glow-{dataset}-{_recipe_digest(recipe)}" + (f"-{tag}" if tag else "")
    return config.cache_dir() / "checkpoints" / f"{name}.pt"


def _recipe_digest(recipe: dict) -> str:
    """A short hash of a recipe: equal recipes, equal digests."""

    return hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def run_identity(model: Glow, dataset: str, recipe: dict, validation: int = 0) -> dict:
    """What a :func:`train_glow` checkpoint records to refuse resuming into another run.

    The model's configuration, the dataset, the recipe's name (a dict equal to a
    named recipe is that recipe, so the two spellings resume each other) and
    digest, and the held-out share.
    """
    name = next((k for k, v in recipes().items() if v == recipe), "custom")
    return {
        **glow_checkpoint_state(model),
        "dataset": dataset,
        "recipe": name,
        "recipe_digest": _recipe_digest(recipe),
        "validation": validation,
    }


def train_glow(
    dataset: str = "mnist",
    minutes: float = 5.0,
    recipe: str | dict = "course",
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

    A fresh model's ActNorm layers are initialised explicitly
    (:meth:`course_utils.glow.model.Glow.initialize`) on 512 training images
    drawn with ``seed`` before the first step; a resumed model keeps the
    initialisation stored in its checkpoint.

    Args:
        dataset: one of :data:`GLOW_DATASETS` (see :func:`glow_splits`).
        minutes: total training minutes, > 0 (a resumed run counts earlier ones).
        recipe: a name of :func:`recipes` or a recipe dict (see :data:`COURSE_RECIPE`);
            its images' channels must be the dataset's.
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
    from course_utils.core.config import seed_everything

    minutes = check_float("minutes", minutes, positive=True)
    eval_images = check_int("eval_images", eval_images, minimum=1)
    steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    seed = check_int("seed", seed)
    validation = check_int("validation", validation, minimum=0)
    named = recipes()
    if isinstance(recipe, str) and recipe not in named:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(named)} or pass a dict")
    spec = named[recipe] if isinstance(recipe, str) else recipe
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
        raise ValueError("a recipe dict needs a 'model' dict of Glow settings (see COURSE_RECIPE)")
    check_int("recipe['batch_size']", spec.get("batch_size"), minimum=1)
    channels = tuple(spec["model"].get("shape", (1, 28, 28)))[0]
    train_images, test_images = glow_splits(dataset)
    if channels != train_images.shape[1]:
        raise ValueError(
            f"recipe {recipe if isinstance(recipe, str) else 'dict'!r} is for {channels}-channel "
            f"images, but {dataset} has {train_images.shape[1]}: choose a recipe whose "
            f"model 'shape' is {tuple(train_images.shape[1:])}"
        )
    ckpt = checkpoint or glow_checkpoint_path(dataset, spec)
    if validation:
        if validation >= len(train_images):
            raise ValueError(
                f"validation={validation} leaves no training images of {len(train_images)}"
            )
        train_images, test_images = train_images[:-validation], train_images[-validation:]
    seed_everything(seed)
    model = Glow(**spec["model"])
    dev = distributed.setup(resolve_device(device))  # under torchrun: this rank's device
    model.to(dev)
    optimizer, scheduler = make_optimizer(model, spec)
    if not (resume and Path(ckpt).is_file()):
        pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))
        init = train_images[pick[:512]]
        model.initialize(dequantize(init, torch.Generator().manual_seed(seed)).to(dev))
    held_out = test_images[:eval_images].to(dev)
    # Same weights on every rank (seeded above); each rank draws its own dequantization noise.
    torch.manual_seed(seed + distributed.world()[0])

    history = train(
        model,
        lambda m, k: -m.dequantized_log_prob(k).mean(),
        train_images,
        epochs=10**9,  # the time budget ends the run
        batch_size=spec["batch_size"],
        optimizer=optimizer,
        scheduler=scheduler,
        device=dev,
        max_grad_norm=spec.get("max_grad_norm"),
        max_seconds=minutes * 60,
        eval_fn=lambda m: m.bits_per_dim(held_out, seed=1),
        checkpoint=ckpt,
        resume=resume,
        progress=progress,
        seed=seed,
        extra_state=run_identity(model, dataset, spec, validation),
        steps_per_epoch=steps_per_epoch,
        on_epoch_end=on_epoch_end,
    )
    return model, history


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.glow --dataset mnist --minutes 5 --device auto``."""
    import argparse

    g = argparse.ArgumentParser(
        prog="python -m course_utils.glow",
        description="Train the multi-scale Glow of lesson 07 for a wall-clock budget.",
    )
    g.add_argument("--dataset", choices=GLOW_DATASETS, default="mnist")
    g.add_argument(
        "--minutes",
        type=_cli_type(lambda t: check_float("--minutes", float(t), positive=True)),
        default=5.0,
        help="total training minutes (> 0)",
    )
    g.add_argument("--recipe", choices=sorted(recipes()), default="course")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    g.add_argument(
        "--checkpoint",
        default=None,
        help="default: <cache>/checkpoints/...; one of another dataset or recipe is refused",
    )
    g.add_argument(
        "--fresh",
        action="store_true",
        help="start over instead of resuming; an existing checkpoint NAME.pt is kept as "
        "NAME.1.pt (the first free number) when the new run first saves",
    )
    g.add_argument(
        "--steps-per-epoch",
        type=_cli_type(lambda t: check_int("--steps-per-epoch", int(t), minimum=1)),
        default=100,
        help="steps between evaluations and checkpoints (>= 1)",
    )
    g.add_argument(
        "--eval-images",
        type=_cli_type(lambda t: check_int("--eval-images", int(t), minimum=1)),
        default=1000,
        help="held-out test images of the bits/dim curve (>= 1)",
    )
    g.add_argument("--seed", type=_cli_type(lambda t: check_int("--seed", int(t))), default=0)
    args = g.parse_args(argv)
    from course_utils.core.data import CorruptFileError, DatasetNotFoundError, WrongDatasetError

    refusals = (
        CheckpointBusyError,
        CheckpointMismatchError,
        CorruptFileError,
        DatasetNotFoundError,
        PermissionError,
        ValueError,  # e.g. a 3-channel recipe for a 1-channel dataset, refused before training
        WrongDatasetError,
    )
    try:
        _, history = train_glow(
            dataset=args.dataset,
            minutes=args.minutes,
            recipe=args.recipe,
            device=args.device,
            checkpoint=args.checkpoint,
            resume=not args.fresh,
            steps_per_epoch=args.steps_per_epoch,
            eval_images=args.eval_images,
            progress=False,  # one line per evaluation instead
            seed=args.seed,
            on_epoch_end=lambda h: print(
                f"step {h.steps:6d}  {h.seconds[-1]:7.1f} s  train NLL {h.epoch_loss[-1]:9.1f}  "
                f"held-out {h.eval[-1]:.3f} bits/dim",
                flush=True,
            ),
        )
    except refusals as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()
    if history.stopped and distributed.is_main():
        print(history.stopped)
    return 0


def _cli_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` from a check: its ValueError becomes argparse's usage error."""
    import argparse

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


if __name__ == "__main__":
    raise SystemExit(main())


if __name__ == "__main__":
    raise SystemExit(main())
