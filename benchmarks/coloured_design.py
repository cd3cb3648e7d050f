"""Benchmark of lesson 09's data: one background colour or four?

Coloured MNIST can paint every digit's background in one colour (navy, the
``"coloured-mnist"`` of :data:`course_utils.core.data.IMAGE_DATASETS`) or in one
of four (``"coloured-mnist-four-backgrounds"``). Both keep what lesson 09 needs,
per-channel means that differ between real and generated digits; they differ in
what a flow must learn. A flow's base is one Gaussian, and a choice among four
backgrounds is a discrete choice: a latent between two of them decodes to a
background with patches of both.

The benchmark trains lesson 09's Glow (recipe ``playground``: the NLL alone) on
each design for the same time, side by side, one thread each, and measures the
samples of both at ``T = 0.7`` and 1, 500 each: the share whose background has
one colour (:func:`course_utils.composite.measure.single_background`) and the
share the digit classifier recognises through their ink. No test digit is
used: sample statistics need none, and the real digits' shares (the first
500 training digits of each design) calibrate both measures.

Usage::

    # train both designs side by side for 12 minutes each, then measure
    .venv/bin/python benchmarks/coloured_design.py --train 12 --folder /tmp/design \\
        --out benchmarks/results/coloured_design.json
    # measure two run checkpoints of train_glow (four backgrounds, one background)
    .venv/bin/python benchmarks/coloured_design.py --checkpoints FOUR.run.pt ONE.run.pt \\
        --out benchmarks/results/coloured_design.json
    .venv/bin/python benchmarks/coloured_design.py --table \\
        --out benchmarks/results/coloured_design.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script
import torch

from course_utils.composite.measure import SINGLE_BACKGROUND, ink, single_background
from course_utils.core.data import image_splits
from course_utils.glow.digits import recognisable
from course_utils.glow.train import load_glow
from course_utils.pretrained import load

#: The two designs, in the order of ``--checkpoints``.
DESIGNS = ("coloured-mnist-four-backgrounds", "coloured-mnist")
RECIPE = "playground"
SAMPLES = 500


def train_one(dataset: str, checkpoint: Path, minutes: float) -> None:
    """Train lesson 09's Glow on one design (the NLL alone), as ``release`` would."""
    from course_utils.glow.train import train_glow

    train_glow(
        dataset,
        minutes=minutes,
        recipe=RECIPE,
        checkpoint=checkpoint,
        eval_images=500,
        steps_per_epoch=200,
        progress=False,
    )


def measure(dataset: str, checkpoint: Path, classifier: torch.nn.Module) -> dict:
    """One checkpoint's samples at T = 0.7 and 1: one-colour backgrounds, recognisable digits."""
    model, state = load_glow(checkpoint)
    train, _ = image_splits(dataset)
    real = train[:SAMPLES].float() / 255
    row = {
        "dataset": dataset,
        "checkpoint": str(checkpoint),
        "steps": state["history"]["steps"],
        "minutes": round(state["history"]["seconds"][-1] / 60, 1),
        "real_single_background": round(float(single_background(real).float().mean()), 4),
        "real_recognisable": round(recognisable(classifier, ink(real)).share, 4),
    }
    for t in (0.7, 1.0):
        torch.manual_seed(0)
        with torch.no_grad():
            x = model.sample(SAMPLES, temperature=t)
        row[f"T{t}"] = {
            "single_background": round(float(single_background(x).float().mean()), 4),
            "recognisable": round(recognisable(classifier, ink(x)).share, 4),
        }
    return row


def table(report: dict) -> str:
    lines = [
        f"lesson 09's Glow (recipe {RECIPE}), {SAMPLES} samples per temperature; "
        f"one colour: {SINGLE_BACKGROUND}",
        f"{'design':34s} {'steps':>6s} {'min':>5s} | {'one colour':>10s} {'digits':>7s} "
        f"(T = 0.7) | {'one colour':>10s} {'digits':>7s} (T = 1) | real: one colour, digits",
    ]
    for r in report["designs"]:
        a, b = r["T0.7"], r["T1.0"]
        lines.append(
            f"{r['dataset']:34s} {r['steps']:6d} {r['minutes']:5.1f} | "
            f"{a['single_background']:10.1%} {a['recognisable']:7.1%}           | "
            f"{b['single_background']:10.1%} {b['recognisable']:7.1%}         | "
            f"{r['real_single_background']:.1%}, {r['real_recognisable']:.1%}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.output_options(parser)
    parser.add_argument("--train", type=float, metavar="MINUTES", help="train both, side by side")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/coloured_design"))
    parser.add_argument("--checkpoints", type=Path, nargs=2, metavar=("FOUR", "ONE"))
    parser.add_argument("--train-one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_one:
        dataset, checkpoint, minutes = args.train_one
        train_one(dataset, Path(checkpoint), float(minutes))
        return 0
    if harness.table_only(parser, args, table):
        return 0
    run = harness.run_record()
    if args.train:
        args.folder.mkdir(parents=True, exist_ok=True)
        checkpoints = [args.folder / f"{d}.run.pt" for d in DESIGNS]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        jobs = [
            subprocess.Popen(
                [sys.executable, __file__, "--train-one", d, str(c), str(args.train)], env=env
            )
            for d, c in zip(DESIGNS, checkpoints, strict=True)
        ]
        if any(job.wait() for job in jobs):
            print("a training failed", file=sys.stderr)
            return 1
    elif args.checkpoints:
        checkpoints = args.checkpoints
    else:
        parser.error("give --train MINUTES or --checkpoints FOUR ONE")
    classifier = load("digit-classifier")
    report = {
        "recipe": RECIPE,
        "samples": SAMPLES,
        "single_background": SINGLE_BACKGROUND,
        "designs": [measure(d, c, classifier) for d, c in zip(DESIGNS, checkpoints, strict=True)],
    }
    print(harness.write_result(args.out, report, table(report), run=run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
