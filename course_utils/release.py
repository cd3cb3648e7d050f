"""Make the shipped models: train (or continue) one, measure it, write its weights and manifest.

::

    python -m course_utils.release glow-mnist --dataset mnist --recipe course-long --minutes 91.1
    python -m course_utils.release digit-classifier --epochs 3 --seed 0

Each model is ``pretrained/<name>.pt`` (the weights) and ``<name>.json`` (the
manifest: how it was made, the command that reproduces it, its measured
figures and the weights' sha256), read back by :func:`course_utils.pretrained.load`.
A Glow's resumable run (weights, optimiser, batch order) is ``<name>.run.pt``:
the same command with a larger ``--minutes`` continues it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.composite.measure import measure_coloured_glow
from course_utils.core.checkpoints import save_checkpoint
from course_utils.core.data import IMAGE_DATASETS, check_dataset
from course_utils.glow.digits import train_classifier
from course_utils.glow.measure import measure_glow
from course_utils.glow.model import glow_checkpoint_state
from course_utils.glow.recipes import RECIPES, get_recipe
from course_utils.glow.train import train_glow
from course_utils.pretrained import PRETRAINED_DIR, sha256sum

__all__ = ["CLASSIFIER", "make_classifier", "make_glow", "parser", "save_model"]

#: The name under which the digit classifier is shipped.
CLASSIFIER = "digit-classifier"


def save_model(
    model: nn.Module,
    path: str | os.PathLike,
    info: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights to ``path`` and the manifest beside it (``.json``).

    ``info`` becomes the manifest, to which the file name and sha256 are added;
    ``extra`` (plain numbers, strings, lists, dicts) is stored with the weights.
    """

    path = Path(path)
    save_checkpoint(path, {"model": model.state_dict(), "extra": extra or {}})
    info = {**info, "file": path.name, "sha256": sha256sum(path), "bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return path


def make_glow(
    name: str,
    dataset: str,
    recipe: str,
    minutes: float,
    device: str = "auto",
    folder: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train (or continue) a shipped Glow, measure it and write its weights and manifest.

    The run's resumable checkpoint (weights, optimizer, batch order) is
    ``<folder>/<name>.run.pt``: run the same command with a larger ``minutes``
    to continue it. ``<name>.pt`` holds the weights alone and ``<name>.json``
    the manifest, whose figures :func:`~course_utils.glow.measure.measure_glow` (or
    :func:`~course_utils.composite.measure.measure_coloured_glow`) measures on the result.
    A class-conditional recipe (``course-cond``) trains on the images' classes, and its
    manifest records how often it draws the digit asked for and its Bayes-rule accuracy.
    """
    check_dataset(dataset)
    spec = get_recipe(recipe)
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    coloured = dataset.startswith("coloured-mnist")
    model, history = train_glow(
        dataset,
        minutes=minutes,
        recipe=spec,
        device=device,
        checkpoint=folder / f"{name}.run.pt",
        eval_images=500 if coloured else 1000,
        steps_per_epoch=200 if coloured else 100,
        progress=False,
        on_epoch_end=lambda h: print(
            f"step {h.steps:6d}  {h.seconds[-1]:7.1f} s  held-out {h.eval[-1]:.4f} bits/dim",
            flush=True,
        ),
    )
    conditional = spec.model.num_classes is not None
    data = (
        f"{dataset} (MNIST's 60,000 training digits, coloured with seed 0)"
        if coloured
        else f"{dataset} (60,000 training images" + (" and their classes)" if conditional else ")")
    )
    dev = next(model.parameters()).device
    info: dict[str, Any] = {
        "kind": "glow",
        "dataset": data,
        "recipe": recipe,
        "recipe_settings": spec.as_dict(),
        "steps": history.steps,
        "images_seen": history.steps * spec.batch_size,
        "training_minutes": round(history.seconds[-1] / 60, 1),
        "hardware": f"{dev.type}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"torch {torch.__version__}",
        "held_out_curve": [round(v, 4) for v in history.eval],
        "held_out_steps": history.epoch_steps
        if len(history.epoch_steps) == len(history.eval)
        # a run begun before steps were recorded: one stretch, every 100 steps and at the end
        else [min(100 * (k + 1), history.steps) for k in range(len(history.eval))],
        "held_out_images": "the first 1,000 official test images"
        + (", given their classes" if conditional else ""),
        "command": f"python -m course_utils.release {name} --dataset {dataset} "
        f"--recipe {recipe} --minutes {minutes:g}",
    }
    model = model.cpu()
    if coloured:
        info["held_out_images"] = "the first 500 official test digits, coloured (seed 1)"
        info.update(measure_coloured_glow(model))
    else:
        info.update(measure_glow(model, dataset))
    save_model(model, folder / f"{name}.pt", info, extra=glow_checkpoint_state(model))
    return info


def make_classifier(
    epochs: int = 3, seed: int = 0, folder: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Train the digit classifier on MNIST's training digits and write it with its manifest."""
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    t0 = time.perf_counter()
    model, accuracy = train_classifier(epochs=epochs, seed=seed)
    seconds = time.perf_counter() - t0
    info = {
        "kind": CLASSIFIER,
        "dataset": "mnist (60,000 training digits)",
        "epochs": epochs,
        "seed": seed,
        "training_seconds": round(seconds, 1),
        "test_accuracy": round(accuracy, 4),
        "test_split": "official MNIST test split, 10,000 digits",
        "command": f"python -m course_utils.release {CLASSIFIER} --epochs {epochs} --seed {seed}",
    }
    save_model(model, folder / f"{CLASSIFIER}.pt", info)
    return info


def parser() -> argparse.ArgumentParser:
    """The command line's parser (the manifests' ``command`` lines are checked against it)."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.release",
        description="Train (or continue) a shipped model, measure it, and write its weights "
        "and manifest to pretrained/.",
    )
    parser.add_argument("name", help=f"{CLASSIFIER}, or a Glow's name such as glow-mnist")
    parser.add_argument("--dataset", choices=IMAGE_DATASETS, help="a Glow's data (required)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="course")
    parser.add_argument("--minutes", type=float, help="a Glow's total training minutes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=3, help="the classifier's epochs")
    parser.add_argument("--seed", type=int, default=0, help="the classifier's seed")
    parser.add_argument("--folder", default=None, help=f"default {PRETRAINED_DIR}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.release NAME ...``: make one shipped model."""
    args = parser().parse_args(argv)
    if args.name == CLASSIFIER:
        info = make_classifier(args.epochs, args.seed, args.folder)
    elif args.dataset is None or args.minutes is None:
        print("error: a Glow needs --dataset and --minutes", file=sys.stderr)
        return 2
    else:
        info = make_glow(
            args.name, args.dataset, args.recipe, args.minutes, args.device, args.folder
        )
    print(json.dumps({k: v for k, v in info.items() if k != "held_out_curve"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
