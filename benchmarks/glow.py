"""Benchmark of lesson 07: the course's CPU Glow recipe against normflows' reference recipe.

For each dataset, the two recipes train **side by side at the same time**, one
CPU thread each, so both get the same wall-clock budget on the same (noisy)
machine. Each run trains to the first budget (e.g. 5 minutes), is evaluated on
the whole held-out split, resumes from its checkpoint (exactly: the batch order
and optimizer state are saved) to the next budget, and is evaluated again.
Neither recipe's learning-rate schedule depends on the budget, so the 5-minute
model is the 15-minute run's state after 5 minutes.

Datasets: ``fashion-mnist`` (60k train / 10k test) and ``mnist-9k`` (the
official MNIST test split divided 9,000 / 1,000, the only MNIST available
offline). Evaluation and checkpointing do not count as training time.

Targets: at every budget the course recipe's test bits/dim is lower than the
reference's on both datasets, and the course recipe reaches the reference's
final bits/dim (on the curve's 1,000-image held-out subset) in at most a third
of the final budget.

Usage::

    .venv/bin/python benchmarks/glow.py --minutes 5 15 --out benchmarks/results/glow.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DATASETS = ("fashion-mnist", "mnist-9k")
RECIPES = ("course", "reference")


def worker(dataset: str, recipe: str, budgets: list[float], checkpoint: Path, out: Path) -> None:
    """Train one recipe through the budgets (minutes) and write its measurements."""
    torch.set_num_threads(1)
    from course_utils.data import image_splits
    from course_utils.models import RECIPES as SPECS
    from course_utils.models import dequantize
    from course_utils.train import train_glow

    _, test = image_splits(dataset)
    points = []
    for minutes in budgets:
        model, history = train_glow(
            dataset,
            minutes=minutes,
            recipe=recipe,
            device="cpu",
            checkpoint=checkpoint,
            resume=True,
            eval_images=1000,
            steps_per_epoch=40,
            progress=False,
        )
        t0 = time.perf_counter()
        bpd = model.bits_per_dim(dequantize(test, torch.Generator().manual_seed(1)))
        points.append(
            {
                "minutes": minutes,
                "test_bpd": round(bpd, 4),
                "train_seconds": round(history.seconds[-1], 1),
                "steps": history.steps,
                "images_per_second": round(
                    history.steps * SPECS[recipe]["batch_size"] / history.seconds[-1], 1
                ),
                "eval_seconds": round(time.perf_counter() - t0, 1),
                "stopped": history.stopped,
            }
        )
    result = {
        "dataset": dataset,
        "recipe": recipe,
        "spec": SPECS[recipe],
        "n_params": sum(p.numel() for p in model.parameters()),
        "budgets": points,
        "curve": {
            "train_seconds": [round(s, 1) for s in history.seconds],
            "bpd_1000": [round(v, 4) for v in history.eval],
        },
    }
    out.write_text(json.dumps(result, indent=1))


def time_to_reach(curve: dict, level: float) -> float | None:
    """First training time at which the held-out curve is at or below ``level``."""
    for s, v in zip(curve["train_seconds"], curve["bpd_1000"], strict=True):
        if v <= level:
            return s
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 15])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--worker", nargs=4, metavar=("DATASET", "RECIPE", "CKPT", "OUT"))
    args = parser.parse_args()
    budgets = sorted(args.minutes)
    if args.worker:
        dataset, recipe, ckpt, out = args.worker
        worker(dataset, recipe, budgets, Path(ckpt), Path(out))
        return 0

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            procs = {}
            for recipe in RECIPES:  # both recipes at once, one thread each
                part = Path(tmp) / f"{dataset}-{recipe}.json"
                cmd = [sys.executable, __file__, "--minutes", *map(str, budgets), "--out", "-"]
                cmd += ["--worker", dataset, recipe, str(Path(tmp) / f"{dataset}-{recipe}.pt")]
                cmd += [str(part)]
                procs[recipe] = (subprocess.Popen(cmd), part)
            for recipe, (proc, part) in procs.items():
                if proc.wait() != 0:
                    raise SystemExit(f"{dataset}/{recipe} failed with exit code {proc.returncode}")
                results.setdefault(dataset, {})[recipe] = json.loads(part.read_text())

    summary = {}
    for dataset, by_recipe in results.items():
        course, ref = by_recipe["course"], by_recipe["reference"]
        lower = all(
            c["test_bpd"] < r["test_bpd"]
            for c, r in zip(course["budgets"], ref["budgets"], strict=True)
        )
        ref_final = ref["curve"]["bpd_1000"][-1]
        reach = time_to_reach(course["curve"], ref_final)
        limit = budgets[-1] * 60 / 3
        summary[dataset] = {
            "course_lower_at_every_budget": lower,
            "reference_final_bpd_1000": ref_final,
            "course_seconds_to_reach_it": reach,
            "third_of_budget_seconds": limit,
            "reached_within_a_third": reach is not None and reach <= limit,
        }
    report = {
        "benchmark": "lesson 07: Glow on a CPU, course recipe vs normflows reference recipe",
        "budgets_minutes": budgets,
        "threads_per_run": 1,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "results": results,
        "summary": summary,
        "targets_met": all(
            s["course_lower_at_every_budget"] and s["reached_within_a_third"]
            for s in summary.values()
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))

    print(f"Glow on CPU, both recipes side by side, 1 thread each ({os.cpu_count()} cores)")
    header = ("dataset", "recipe", "min", "test bpd", "img/s", "steps")
    print("{:14s} {:10s} {:>5s} {:>9s} {:>7s} {:>6s}".format(*header))
    for dataset, by_recipe in results.items():
        for recipe, r in by_recipe.items():
            for p in r["budgets"]:
                print(
                    f"{dataset:14s} {recipe:10s} {p['minutes']:5g} {p['test_bpd']:9.3f} "
                    f"{p['images_per_second']:7.0f} {p['steps']:6d}"
                )
    for dataset, s in summary.items():
        reach = s["course_seconds_to_reach_it"]
        when = "never" if reach is None else f"{reach:.0f} s"
        print(
            f"{dataset}: course lower at every budget: {s['course_lower_at_every_budget']}; "
            f"reaches the reference's final {s['reference_final_bpd_1000']:.3f} bpd in "
            f"{when} (limit {s['third_of_budget_seconds']:.0f} s)"
        )
    print("targets met:", report["targets_met"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
