"""The Glow's command line: train for a wall-clock budget, resumably.

::

    python -m course_utils.glow --dataset mnist --minutes 30 --device auto
    torchrun --standalone --nproc_per_node 2 -m course_utils.glow --dataset mnist
    python -m course_utils.glow --dataset mnist --recipe course-cond --minutes 150

The recipe ``course-cond`` trains the class-conditional Glow ``p(x | y)`` on the
digits' classes (the held-out curve is then the bits/dim of ``p(x | y)``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from course_utils.core import distributed
from course_utils.core.checkpoints import CheckpointBusyError, CheckpointMismatchError
from course_utils.core.checks import check_float, check_int
from course_utils.core.data import (
    IMAGE_DATASETS,
    CorruptFileError,
    DatasetNotFoundError,
    WrongDatasetError,
)
from course_utils.glow.recipes import RECIPES
from course_utils.glow.train import train_glow

__all__ = ["cli_type", "main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.glow --dataset mnist --minutes 5 --device auto``."""
    g = argparse.ArgumentParser(
        prog="python -m course_utils.glow",
        description="Train the multi-scale Glow of lesson 07 for a wall-clock budget.",
    )
    g.add_argument("--dataset", choices=IMAGE_DATASETS, default="mnist")
    g.add_argument(
        "--minutes",
        type=cli_type(lambda t: check_float("--minutes", float(t), positive=True)),
        default=5.0,
        help="total training minutes (> 0)",
    )
    g.add_argument("--recipe", choices=sorted(RECIPES), default="course")
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
        type=cli_type(lambda t: check_int("--steps-per-epoch", int(t), minimum=1)),
        default=100,
        help="steps between evaluations and checkpoints (>= 1)",
    )
    g.add_argument(
        "--eval-images",
        type=cli_type(lambda t: check_int("--eval-images", int(t), minimum=1)),
        default=1000,
        help="held-out test images of the bits/dim curve (>= 1)",
    )
    g.add_argument("--seed", type=cli_type(lambda t: check_int("--seed", int(t))), default=0)
    args = g.parse_args(argv)
    refusals = (
        CheckpointBusyError,
        CheckpointMismatchError,
        CorruptFileError,
        distributed.RankRefusal,
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
    except refusals as err:  # under torchrun every rank has it (rank 0's, told to all): say it once
        if distributed.is_main():
            print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()
    if history.stopped and distributed.is_main():
        print(history.stopped)
    return 0


def cli_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` from a check: its ValueError becomes argparse's usage error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert
