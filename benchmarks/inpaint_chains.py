"""Benchmark of lesson 08's posterior mean on square holes: what do more chains buy?

On squares (two 10×10 holes) the flow-only posterior mean is behind the
neighbour average of the training digits (``benchmarks/inpaint.py``). Lesson 08
says why: each chain completes the digit with one sharp guess, and a mean of
four such guesses hedges worse than an average over many neighbours. This
measures whether more chains close the gap, and at what cost: the posterior
mean with 4, 8 and 16 chains (lesson 08's other settings), and 16 chains that
are little more than 16 latent MAP fits (2 MALA steps), beside the neighbour
average, on the same digits with the same masks.

Digits: the last ``--images`` of MNIST's training split (no test digit is looked
at), with masks of seed 2 as ``benchmarks/inpaint.py --tune``; the neighbour
average draws from the other training digits. The flow trained on these digits
too, which can only flatter it. 2 threads, one row after another; the JSON is
written after every row, so an interrupted run keeps what it measured.

Usage::

    .venv/bin/python benchmarks/inpaint_chains.py --out benchmarks/results/inpaint_chains.json
    .venv/bin/python benchmarks/inpaint_chains.py --images 4 --out /tmp/chains.json   # quick check
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from inpaint import MASKS, tuning_masks  # benchmarks/inpaint.py, beside this script

from course_utils import inpaint as ip
from course_utils import pretrained
from course_utils.core.data import image_splits
from course_utils.core.metrics import masked_psnr
from course_utils.inpaint import flow
from course_utils.inpaint.comparison import SETTINGS, paired_gain

#: (label, posterior_inpaint settings); the first is lesson 08's.
CONFIGS = [
    ("4 chains (lesson 08)", SETTINGS["posterior"]),
    ("8 chains", {**SETTINGS["posterior"], "chains": 8}),
    ("16 chains", {**SETTINGS["posterior"], "chains": 16}),
    ("16 chains, 2 MALA steps", {**SETTINGS["posterior"], "chains": 16, "steps": 2, "warmup": 1}),
]


def table(report: dict) -> str:
    """The report as a text table: hole PSNR, paired gain over the neighbour average, time."""
    rows = report["rows"]
    kernel = rows[0]
    lines = [
        f"posterior mean on squares vs the neighbour average: the last {report['images']} "
        f"training digits (glow-mnist; {report['hardware']})",
        f"{'method':36s} {'hole PSNR':>9s} {'gain over kernel':>18s} {'s/64':>7s}",
    ]
    for r in rows:
        gain = "" if r is kernel else "{:+.2f} ± {:.2f} dB".format(*paired_gain(r, kernel))
        lines.append(f"{r['method']:36s} {r['psnr']:9.2f} {gain:>18s} {r['seconds_per_64']:7.1f}")
    lines.append("command: " + report["command"])
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="write the JSON (and .txt) here")
    parser.add_argument("--images", type=int, default=64, help="the last N training digits")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = pretrained.load("glow-mnist")
    train, _ = image_splits("mnist")
    pool, images = ip.to_unit(train[: -args.images]), ip.to_unit(train[-args.images :])
    mask = tuning_masks(["squares"], args.images)["squares"]
    report = {
        "images": args.images,
        "digits": f"the last {args.images} of MNIST's training split; pool: the other ones",
        "mask": {"kind": MASKS["squares"][0], **MASKS["squares"][1], "seed": 2},
        "hardware": f"{platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}",
        "command": "python " + " ".join(sys.argv),
        "rows": [],
    }

    def add(method: str, settings: dict, run) -> None:
        start = time.perf_counter()
        out = run()
        seconds = time.perf_counter() - start
        psnr = masked_psnr(out, images, mask)
        report["rows"].append(
            {
                "method": method,
                "settings": settings,
                "psnr": round(float(psnr.mean()), 2),
                "psnr_per_image": [round(float(p), 3) for p in psnr],
                "seconds_per_64": round(seconds * 64 / args.images, 1),
            }
        )
        print(report["rows"][-1]["method"], report["rows"][-1]["psnr"], flush=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")

    add("kernel (neighbour average)", {}, lambda: ip.kernel_fill(images, mask, pool))
    for label, settings in CONFIGS:
        gen = torch.Generator().manual_seed(0)
        add(
            f"posterior, {label}",
            settings,
            lambda s=settings, g=gen: (
                flow.posterior_inpaint(model, images, mask, generator=g, **s).images
            ),
        )
    text = table(report)
    print(text)
    args.out.with_suffix(".txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
