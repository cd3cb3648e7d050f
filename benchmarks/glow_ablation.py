"""Which choices make lesson 07's Glow learn fast on a CPU? One change at a time, in pairs.

Each variant differs from ``course_utils.glow.recipes.COURSE`` in one setting.
It trains beside the unchanged recipe, at the same time, one thread each (one
per core), for the same wall-clock budget, so the two rows of a pair share the
machine's speed at that moment; compare a variant only with its own pair's
recipe. The choice is made on training digits only: the models train on the
first 58,000 MNIST training digits and are measured on 1,000 of the last 2,000
(never the test split).

Usage::

    .venv/bin/python benchmarks/glow_ablation.py --minutes 4 \
        --out benchmarks/results/ablation.json
    .venv/bin/python benchmarks/glow_ablation.py --table --out benchmarks/results/ablation.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script
import torch

VARIANTS: dict[str, dict] = {
    "uniform dequantization": {"dequantizer": 0},
    "logit α = 0.05": {"logit_alpha": 0.05},
    "no full-resolution couplings": {"full_res": 0},
    "normflows' CNN coupling": {"net": "conv"},
    "batch 32": {"batch_size": 32},
}
RECIPE = "the course recipe"
VALIDATION = 2000  # the last training digits, held out from training
EVAL_IMAGES = 1000


def worker(name: str, minutes: float, out: Path) -> None:
    torch.set_num_threads(1)
    from course_utils.glow.recipes import COURSE
    from course_utils.glow.train import train_glow

    recipe = COURSE.replace(**({} if name == RECIPE else VARIANTS[name]))
    with tempfile.TemporaryDirectory() as tmp:
        _, h = train_glow(
            "mnist",
            minutes=minutes,
            recipe=recipe,
            device="cpu",
            checkpoint=Path(tmp) / "c.pt",
            resume=False,
            eval_images=EVAL_IMAGES,
            validation=VALIDATION,
            steps_per_epoch=100,
            progress=False,
        )
    out.write_text(
        json.dumps(
            {
                "name": name,
                "recipe": recipe.as_dict(),
                "steps": h.steps,
                "images_per_second": h.steps * recipe.batch_size / h.seconds[-1],
                "seconds": [round(s, 1) for s in h.seconds],
                "bpd": [round(v, 4) for v in h.eval],
            }
        )
    )


def run_pair(names: list[str], minutes: float, tmp: Path) -> list[dict]:
    """Train ``names`` at the same time, one process and one thread each."""
    jobs = {}
    for name in names:
        part = tmp / f"{len(list(tmp.iterdir()))}-{abs(hash(name))}.json"
        cmd = [sys.executable, __file__, "--worker", name, "--minutes", str(minutes)]
        jobs[name] = ([*cmd, "--out", str(part)], part)
    return list(harness.side_by_side(jobs).values())


def table(report: dict) -> str:
    """The report as a text table: each variant beside its own pair's recipe."""
    lines = [
        f"Glow ablation on MNIST: {report['minutes']:g} min each, 1 thread, "
        "variant beside the recipe",
        report["held_out"],
        f"{'one change from the recipe':30s} {'img/s':>6s} {'bpd':>7s}   "
        f"{'recipe img/s':>12s} {'bpd':>7s}   difference",
    ]
    for pair in report["pairs"]:
        v, r = pair["variant"], pair["recipe"]
        lines.append(
            f"{v['name']:30s} {v['images_per_second']:6.0f} {v['bpd'][-1]:7.3f}   "
            f"{r['images_per_second']:12.0f} {r['bpd'][-1]:7.3f}   "
            f"{v['bpd'][-1] - r['bpd'][-1]:+.3f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    harness.output_options(parser)
    parser.add_argument("--worker", metavar="VARIANT")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.minutes, args.out)
        return 0
    if harness.table_only(parser, args, table):
        return 0

    run = harness.run_record(threads=1)
    report = {
        "dataset": "mnist",
        "minutes": args.minutes,
        "held_out": f"bits/dim of {EVAL_IMAGES:,} of the last {VALIDATION:,} training digits "
        f"(the models train on the other {60000 - VALIDATION:,})",
        "threads_per_model": 1,
        "pairs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            recipe, variant = run_pair([RECIPE, name], args.minutes, Path(tmp))
            report["pairs"].append({"variant": variant, "recipe": recipe})
            # Written after every pair, so an interrupted run keeps what it measured.
            text = harness.write_result(args.out, report, table(report), run=run)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
