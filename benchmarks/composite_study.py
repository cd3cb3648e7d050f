"""Benchmark of lesson 09's study: what the composite loss trades, over a grid of α and β.

Every point fine-tunes a copy of the shipped ``glow-coloured-mnist`` with
:func:`course_utils.composite.finetune.fit` for ``--steps`` steps of the composite
loss ``NLL + α·R + β·‖μ_c(x) − μ_c(x̂)‖₂`` (recipe ``FINETUNE``: Adam at 2e-4,
batches of 16), on **the same batches** (seed 0), then measures it with
:func:`~course_utils.composite.finetune.evaluate` on the first ``--test`` official
coloured test digits and ``--samples`` samples at ``T = 0.7`` drawn the Glow
way: test bits/dim, the colour gap of the samples, ``R`` at ``σ = 0.1``, the
recognisable share and the share of samples on a background of one colour.

The grid crosses :data:`ALPHAS` with :data:`BETAS` (noise of standard deviation
``T`` per dimension); two more points are lesson 09's configurations (a), the
NLL alone in nats per image, and (c), (d)'s weights with noise of length ``T``.
The configurations (b) and (d) are grid points. The starting model is measured
the same way. The term values of every step of (a)-(d) are kept for the
lesson's curves, and 36 samples of the starting model and of (a)-(d), all from
the same noise, are saved beside the JSON (``*_samples.pt``, ``uint8``) for its
figure.

``--workers 2`` splits the points between two processes of one thread each.

Usage::

    .venv/bin/python benchmarks/composite_study.py --workers 2 \\
        --out benchmarks/results/composite_study.json
    .venv/bin/python benchmarks/composite_study.py --table \\
        --out benchmarks/results/composite_study.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script
import torch

from course_utils.composite.finetune import evaluate, fit
from course_utils.composite.losses import ALPHA, BETA, LossConfig, sample_with_grad
from course_utils.core.data import image_splits
from course_utils.glow.recipes import FINETUNE
from course_utils.glow.train import load_glow
from course_utils.pretrained import load

#: The grid: α (weight of R, log-spaced) and β (weight of the colour gap).
ALPHAS = (0.0, ALPHA, 3000.0)
BETAS = (0.0, BETA, 3.0, 10.0)
#: Lesson 09's configurations and the points that are they.
CLASSIC = {
    "a": {"alpha": 0.0, "beta": 0.0, "scaled_nll": False},
    "b": {"alpha": ALPHA, "beta": 0.0},
    "c": {"alpha": ALPHA, "beta": BETA, "scale_noise": False},
    "d": {"alpha": ALPHA, "beta": BETA},
}


def points() -> list[dict]:
    """Every point of the study: the grid, then (a) and (c)."""
    grid = [{"alpha": a, "beta": b} for a in ALPHAS for b in BETAS]
    return grid + [CLASSIC["a"], CLASSIC["c"]]


def key(point: dict) -> str:
    """A point's name: its weights, and how it differs from the grid's settings."""
    name = f"alpha={point['alpha']:g} beta={point['beta']:g}"
    if not point.get("scaled_nll", True):
        name += " nats"
    if not point.get("scale_noise", True):
        name += " length-T"
    return name


def classic_of(point: dict) -> str | None:
    return next((c for c, p in CLASSIC.items() if key(p) == key(point)), None)


def starting(model_path: str | None):
    return load("glow-coloured-mnist") if model_path is None else load_glow(model_path)[0]


def run_points(chosen: list[dict], args) -> list[dict]:
    """Fine-tune and measure each point (in this process)."""
    train, test = image_splits("coloured-mnist")
    test = test[: args.test]
    classifier = load("digit-classifier")
    start = starting(args.model)
    rows = []
    for point in chosen:
        model = copy.deepcopy(start)
        config = LossConfig(**point)
        optimizer, scheduler = FINETUNE.make_optimizer(model)
        terms, history = fit(model, train, config, args.steps, optimizer, scheduler, seed=0)
        model.eval()
        measures = evaluate(model, test, 0.7, 0.1, args.samples, classifier=classifier)
        row = {"key": key(point), "point": point, "classic": classic_of(point)}
        row |= {"steps": history.steps, "stopped": history.stopped, **measures}
        if row["classic"]:
            row["terms"] = {
                name: getattr(terms, name) for name in ("total", "nll", "recon", "channel")
            }
            with torch.no_grad():
                s = sample_with_grad(model, 36, 0.7, True, torch.Generator().manual_seed(3))
            row["samples"] = (s.nan_to_num(0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        print(
            f"{row['key']:28s} bpd {row['bpd']:.4f} gap {row['channel_gap']:.4f} "
            f"digits {row.get('recognisable', 0):.1%}",
            flush=True,
        )
        rows.append(row)
    return rows


def table(report: dict) -> str:
    lines = [
        f"{report['steps']} fine-tuning steps from glow-coloured-mnist, the same batches; "
        f"{report['test']:,} coloured test digits, {report['samples']} samples at T = 0.7",
        f"{'point':30s} {'cfg':>3s} {'test bpd':>8s} {'gap':>7s} {'R':>9s} {'digits':>7s} "
        f"{'one bg':>7s}",
    ]
    for r in [report["start"], *report["points"]]:
        lines.append(
            f"{r['key']:30s} {r.get('classic') or '':>3s} {r['bpd']:8.4f} {r['channel_gap']:7.4f} "
            f"{r['recon']:9.2e} {r['recognisable']:7.1%} {r['single_background']:7.1%}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.output_options(parser)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", help="a train_glow run checkpoint instead of the shipped model")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # a worker: JSON list of points
    parser.add_argument("--into", help=argparse.SUPPRESS)  # a worker's output file
    args = parser.parse_args()
    if args.only:
        torch.save(run_points(json.loads(args.only), args), args.into)
        return 0
    if harness.table_only(parser, args, table):
        return 0
    run = harness.run_record(threads=1 if args.workers > 1 else None)
    chosen = points()
    with tempfile.TemporaryDirectory() as tmp:
        shares = [chosen[k :: args.workers] for k in range(args.workers)]
        outs = [Path(tmp) / f"{k}.pt" for k in range(args.workers)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"} if args.workers > 1 else dict(os.environ)
        base = [
            sys.executable,
            __file__,
            "--steps",
            str(args.steps),
            "--test",
            str(args.test),
            "--samples",
            str(args.samples),
        ] + (["--model", args.model] if args.model else [])
        jobs = [
            subprocess.Popen([*base, "--only", json.dumps(s), "--into", str(o)], env=env)
            for s, o in zip(shares, outs, strict=True)
        ]
        if any(job.wait() for job in jobs):
            print("a worker failed", file=sys.stderr)
            return 1
        rows = [r for o in outs for r in torch.load(o, weights_only=False)]
    rows.sort(key=lambda r: chosen.index(r["point"]))
    train, test = image_splits("coloured-mnist")
    start = starting(args.model)
    measures = evaluate(
        start, test[: args.test], 0.7, 0.1, args.samples, classifier=load("digit-classifier")
    )
    with torch.no_grad():
        s = sample_with_grad(start, 36, 0.7, True, torch.Generator().manual_seed(3))
    samples = {"start": (s.clamp(0, 1) * 255).round().to(torch.uint8)}
    samples |= {r["classic"]: r.pop("samples") for r in rows if r["classic"]}
    torch.save(samples, args.out.with_name(args.out.stem + "_samples.pt"))
    report = {
        "steps": args.steps,
        "test": args.test,
        "samples": args.samples,
        "alphas": list(ALPHAS),
        "betas": list(BETAS),
        "configurations": {c: key(p) for c, p in CLASSIC.items()},
        "start": {"key": "starting model", "classic": None, **measures},
        "points": rows,
    }
    print(harness.write_result(args.out, report, table(report), run=run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
