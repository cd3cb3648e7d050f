"""Benchmark of lesson 07: the course's CPU Glow beside normflows' example and UvA's tutorial model.

Every comparator trains **beside the course recipe, at the same time**, one CPU
thread each (one per core), so each pair shares the machine's speed at that
moment. The comparators:

* ``reference``: normflows' own Glow example scaled to 28×28
  (``course_utils.glow.recipes.REFERENCE``);
* ``uva-16``, ``uva-32``, ``uva-128``: the multi-scale flow of the UvA deep
  learning tutorial 11 (``benchmarks/uva_multiscale.py``, 1,711,818
  parameters), trained as the tutorial trains it (Adam 1e-3, gradient norm
  clipped to 1, its bits/dim as the loss) with batches of 16, 32 or 128 (the
  tutorial's own). Its learning-rate decay steps once per 49,920 images, which
  these budgets do not reach.

Each run trains to the first budget (5 minutes), is measured, resumes from its
checkpoint to the next (10 minutes) and is measured again; no schedule depends
on the budget, so the 5-minute model is the 10-minute run's state after 5
minutes. Measured at each budget: bits/dim on the first ``--test-images`` digits
of the official test split (fixed dequantization noise), images per second,
and for MNIST the **recognisable share** of 500 samples (the shipped digit
classifier's confidence ≥ 0.9; the course's Glows at T = 0.7 and T = 1, the UvA
model at T = 1, which is how it samples). The curve is measured on 500 test
digits about once a minute. The floor printed for reference is a per-pixel
256-bin histogram fitted to the training digits (every pixel independent).

Usage::

    .venv/bin/python benchmarks/glow.py --out benchmarks/results/glow.json
    .venv/bin/python benchmarks/glow.py --pairs mnist:uva-16 --minutes 1 2 --out /tmp/g.json
    .venv/bin/python benchmarks/glow.py --table --out benchmarks/results/glow.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script
import torch

ROOT = Path(__file__).resolve().parent.parent
PAIRS = (
    "mnist:uva-16",
    "mnist:uva-32",
    "mnist:reference",
    "fashion-mnist:uva-16",
    "fashion-mnist:reference",
    "mnist:uva-128",
)
#: Steps between curve points, for about one point a minute on one thread.
STEPS_PER_POINT = {"course": 500, "reference": 25, "uva-16": 150, "uva-32": 80, "uva-128": 20}
CURVE_IMAGES = 500
SAMPLES = 500


def _load_uva():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import uva_multiscale

    return uva_multiscale


def per_pixel_histogram_bpd(train: torch.Tensor, test: torch.Tensor) -> float:
    """Bits/dim of test images under independent per-pixel 256-bin histograms (add-one)."""
    flat_train, flat_test = train.flatten(1).long(), test.flatten(1).long()
    d = flat_train.shape[1]
    counts = torch.ones(d, 256)
    counts.scatter_add_(1, flat_train.T, torch.ones_like(flat_train.T, dtype=torch.float))
    log_p = (counts / counts.sum(1, keepdim=True)).log()
    ll = log_p.gather(1, flat_test.T).sum(0)  # (n,) nats per image
    return float(-ll.mean() / (d * math.log(2)))


def measure(model, name: str, dataset: str, test: torch.Tensor) -> dict:
    """Test bits/dim and, on MNIST, the recognisable share of samples."""
    from course_utils import pretrained
    from course_utils.glow.digits import recognisable

    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        if name.startswith("uva"):
            g = torch.Generator().manual_seed(1)
            bpd = float(torch.cat([model.bits_per_dim_each(b, g) for b in test.split(250)]).mean())
        else:
            bpd = model.bits_per_dim(test, seed=1)
    point: dict = {"test_bpd": round(bpd, 4)}
    if dataset == "mnist":
        classifier = pretrained.load("digit-classifier")
        temps = [1.0] if name.startswith("uva") else [0.7, 1.0]
        for t in temps:
            with torch.no_grad():  # raw draws: a non-finite sample counts as unrecognisable
                if name.startswith("uva"):
                    s = model.sample(SAMPLES)
                else:
                    s = model.sample(SAMPLES, t, redraw=False)
            r = recognisable(classifier, s.clamp(0, 1))
            point[f"T={t}"] = {
                "recognisable_share": round(r.share, 4),
                "digits_drawn": r.digits_drawn,
                "per_digit": list(r.counts),
                "non_finite": int((~torch.isfinite(s.flatten(1)).all(1)).sum()),
            }
    model.train()
    return point


def worker(dataset: str, name: str, budgets: list[float], test_n: int, tmp: Path, out: Path):
    """Train one model through the budgets and write its measurements."""
    torch.set_num_threads(1)
    from course_utils.core.data import image_splits
    from course_utils.core.train import train
    from course_utils.glow.train import train_glow

    train_images, test_images = image_splits(dataset)
    test = test_images[:test_n]
    curve_images = test_images[:CURVE_IMAGES]
    steps = STEPS_PER_POINT[name]
    ckpt = tmp / f"{dataset}-{name}.pt"
    if name.startswith("uva"):
        uva = _load_uva()
        batch = int(name.split("-")[1])
        torch.manual_seed(0)
        model = uva.build_uva_multiscale()
        optimizer, _ = uva.uva_optimizer(model)  # its decay would first step after 49,920 images
        g = torch.Generator().manual_seed(1)

        def curve(m):
            g.manual_seed(1)
            return float(m.bits_per_dim_each(curve_images, g).mean())

        def train_to(minutes: float):
            history = train(
                model,
                lambda m, k: m.bits_per_dim_each(k).mean(),
                train_images,
                epochs=10**9,
                batch_size=batch,
                optimizer=optimizer,
                device="cpu",
                max_grad_norm=uva.TUTORIAL_GRAD_CLIP_NORM,
                max_seconds=minutes * 60,
                eval_fn=curve,
                checkpoint=ckpt,
                steps_per_epoch=steps,
                progress=False,
            )
            return model, history
    else:
        from course_utils.glow.recipes import RECIPES

        batch = RECIPES[name].batch_size

        def train_to(minutes: float):
            return train_glow(
                dataset,
                minutes=minutes,
                recipe=name,
                device="cpu",
                checkpoint=ckpt,
                eval_images=CURVE_IMAGES,
                steps_per_epoch=steps,
                progress=False,
            )

    points = []
    for minutes in budgets:
        model, history = train_to(minutes)
        points.append(
            {
                "minutes": minutes,
                "steps": history.steps,
                "batch": batch,
                **measure(model, name, dataset, test),
            }
        )
    params = sum(p.numel() for p in model.parameters())
    for p in points:
        p["images_per_second"] = round(p["steps"] * batch / (p["minutes"] * 60), 1)
    out.write_text(
        json.dumps(
            {
                "model": name,
                "parameters": params,
                "budgets": points,
                "curve": {
                    "seconds": [round(s, 1) for s in history.seconds],
                    "bpd": [round(v, 4) for v in history.eval],
                },
                "stopped": history.stopped,
            }
        )
    )


def table(report: dict) -> str:
    lines = [
        "Glow on CPU: each comparator beside the course recipe, 1 thread each",
        f"test bits/dim on the first {report['test_images']:,} official test digits; "
        "recognisable = share of 500 samples the digit classifier labels with confidence >= 0.9",
        f"{'pair':24s} {'model':10s} {'params':>9s} {'batch':>5s} {'min':>4s} {'img/s':>6s} "
        f"{'test bpd':>8s} {'rec. T=0.7':>10s} {'rec. T=1':>9s}",
    ]
    for key, pair in report["pairs"].items():
        for run in (pair["course"], pair["comparator"]):
            for p in run["budgets"]:
                r07 = p.get("T=0.7", {}).get("recognisable_share")
                r1 = p.get("T=1.0", {}).get("recognisable_share")
                lines.append(
                    f"{key:24s} {run['model']:10s} {run['parameters']:9,d} {p['batch']:5d} "
                    f"{p['minutes']:4g} {p['images_per_second']:6.1f} {p['test_bpd']:8.3f} "
                    f"{'-' if r07 is None else f'{r07:.0%}':>10s} "
                    f"{'-' if r1 is None else f'{r1:.0%}':>9s}"
                )
    for dataset, floor in report["per_pixel_histogram_bpd"].items():
        lines.append(f"floor, {dataset}: independent per-pixel histograms {floor:.3f} bits/dim")
    for key, verdict in report["summary"].items():
        lines.append(f"{key}: {verdict}")
    return "\n".join(lines)


def summarise(report: dict) -> dict:
    summary = {}
    for key, pair in report["pairs"].items():
        c, o = pair["course"]["budgets"], pair["comparator"]["budgets"]
        diffs = [
            f"{a['minutes']:g} min {a['test_bpd'] - b['test_bpd']:+.3f}"
            for a, b in zip(c, o, strict=True)
        ]
        lower = all(a["test_bpd"] < b["test_bpd"] for a, b in zip(c, o, strict=True))
        summary[key] = f"course minus comparator: {', '.join(diffs)}; course lower: {lower}"
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 10])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS))
    parser.add_argument("--test-images", type=int, default=2000)
    harness.output_options(parser)
    parser.add_argument(
        "--append", action="store_true", help="keep the pairs already in --out and add these"
    )
    parser.add_argument("--worker", nargs=4, metavar=("DATASET", "MODEL", "TMP", "OUT"))
    args = parser.parse_args()
    budgets = sorted(args.minutes)
    if args.worker:
        dataset, name, tmp, out = args.worker
        worker(dataset, name, budgets, args.test_images, Path(tmp), Path(out))
        return 0
    if harness.table_only(parser, args, table):
        return 0
    for key in args.pairs:
        dataset, _, name = key.partition(":")
        if dataset not in ("mnist", "fashion-mnist") or name not in STEPS_PER_POINT:
            parser.error(f"unknown pair {key!r}; e.g. mnist:uva-16 or fashion-mnist:reference")

    from course_utils.core.data import image_splits

    run = harness.run_record(threads=1)
    report = {
        "benchmark": "lesson 07: the course's Glow beside normflows' example and UvA's model",
        "budgets_minutes": budgets,
        "test_images": args.test_images,
        "threads_per_model": 1,
        "per_pixel_histogram_bpd": {},
        "pairs": {},
    }
    for dataset in sorted({k.partition(":")[0] for k in args.pairs}):
        train_images, test_images = image_splits(dataset)
        report["per_pixel_histogram_bpd"][dataset] = round(
            per_pixel_histogram_bpd(train_images, test_images[: args.test_images]), 4
        )
    if args.append and args.out.is_file():
        earlier = harness.read_result(args.out)
        # The pairs kept were measured by the earlier runs, which their records say.
        report["earlier_runs"] = [*earlier.get("earlier_runs", []), earlier[harness.RUN_KEY]]
        report["pairs"] = earlier["pairs"]
        report["per_pixel_histogram_bpd"] = {
            **earlier["per_pixel_histogram_bpd"],
            **report["per_pixel_histogram_bpd"],
        }
    text = None
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.pairs:
            dataset, _, name = key.partition(":")
            jobs = {}
            for role, model in (("course", "course"), ("comparator", name)):
                part = Path(tmp) / f"{dataset}-{model}-{role}.json"
                cmd = [sys.executable, __file__, "--minutes", *map(str, budgets)]
                cmd += ["--test-images", str(args.test_images)]
                cmd += ["--worker", dataset, model, str(Path(tmp) / role), str(part)]
                (Path(tmp) / role).mkdir(exist_ok=True)
                jobs[role] = (cmd, part)
            pair = harness.side_by_side(jobs)
            for role in jobs:  # the next pair starts from scratch
                for f in (Path(tmp) / role).glob("*.pt"):
                    f.unlink()
            report["pairs"][key] = pair
            report["summary"] = summarise(report)
            # Written after every pair, so an interrupted run keeps what it measured.
            text = harness.write_result(args.out, report, table(report), run=run)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
