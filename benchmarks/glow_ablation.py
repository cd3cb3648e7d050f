"""Which choices make a Glow train fast on a CPU? One change at a time from the course recipe.

Each variant differs from ``course_utils.models.COURSE_RECIPE`` in one setting
and trains for the same wall-clock budget on one CPU thread; variants run two
at a time (one per core), so each pair shares the machine's noise. Held-out
bits/dim is measured every 40 steps on 1,000 digits of the dataset's held-out
split (MNIST 9k/1k by default).

Usage::

    .venv/bin/python benchmarks/glow_ablation.py --seconds 150 \
        --out benchmarks/results/ablation.json
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

VARIANTS: dict[str, dict] = {
    "course recipe": {},
    "no logit (model u directly)": {"logit_alpha": None},
    "K = 8 blocks per level": {"blocks": 8},
    "hidden 32": {"hidden": 32},
    "lr 1e-3": {"lr": 1e-3},
    "lr 4e-3": {"lr": 4e-3},
    "batch 32": {"batch_size": 32},
    "K = 2, hidden 96": {"blocks": 2, "hidden": 96},
    "one level (no multi-scale)": {"levels": 1},
    "reference recipe": None,  # normflows' example, as in benchmarks/glow.py
}


def variant_recipe(changes: dict | None) -> dict:
    """The course recipe with ``changes`` applied (model keys go into ``model``)."""
    from course_utils.models import COURSE_RECIPE, REFERENCE_RECIPE

    if changes is None:
        return copy.deepcopy(REFERENCE_RECIPE)
    recipe = copy.deepcopy(COURSE_RECIPE)
    for key, value in changes.items():
        (recipe["model"] if key in recipe["model"] else recipe)[key] = value
    return recipe


def worker(name: str, dataset: str, seconds: float, out: Path) -> None:
    torch.set_num_threads(1)
    from course_utils.train import train_glow

    recipe = variant_recipe(VARIANTS[name])
    with tempfile.TemporaryDirectory() as tmp:
        _, h = train_glow(
            dataset,
            minutes=seconds / 60,
            recipe=recipe,
            device="cpu",
            checkpoint=Path(tmp) / "c.pt",
            resume=False,
            eval_images=1000,
            steps_per_epoch=40,
            progress=False,
        )
    out.write_text(
        json.dumps(
            {
                "variant": name,
                "recipe": recipe,
                "images_per_second": h.steps * recipe["batch_size"] / h.seconds[-1],
                "train_seconds": [round(s, 1) for s in h.seconds],
                "bpd_1000": [round(v, 4) for v in h.eval],
            }
        )
    )


def at(result: dict, seconds: float) -> float | None:
    """The last held-out bits/dim measured at or before ``seconds``."""
    pairs = zip(result["train_seconds"], result["bpd_1000"], strict=True)
    before = [v for s, v in pairs if s <= seconds]
    return before[-1] if before else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--dataset", default="mnist-9k")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--worker", metavar="VARIANT")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.dataset, args.seconds, args.out)
        return 0

    results = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        names = args.variants
        for i in range(0, len(names), 2):  # two at a time, one per core
            procs = []
            for j, name in enumerate(names[i : i + 2]):
                part = Path(tmp) / f"{i + j}.json"
                cmd = [sys.executable, __file__, "--worker", name, "--dataset", args.dataset]
                cmd += ["--seconds", str(args.seconds), "--out", str(part)]
                procs.append((name, subprocess.Popen(cmd), part))
            for name, proc, part in procs:
                if proc.wait() != 0 or not part.is_file():  # keep going; say which one failed
                    print(f"{name}: failed with exit code {proc.returncode}", file=sys.stderr)
                    continue
                results.append(json.loads(part.read_text()))
            # Written after every pair, so an interrupted run keeps what it measured.
            report = {"dataset": args.dataset, "seconds": args.seconds, "results": results}
            args.out.write_text(json.dumps(report, indent=1))

    half = args.seconds / 2
    print(f"Glow ablation on {args.dataset}: {args.seconds:g} s each, 1 thread, two at a time")
    print(f"{'variant':30s} {'img/s':>6s} {f'bpd @{half:g}s':>11s} {'bpd final':>10s}")
    for r in results:
        mid = at(r, half)
        print(
            f"{r['variant']:30s} {r['images_per_second']:6.0f} "
            f"{'-' if mid is None else f'{mid:.3f}':>11s} {r['bpd_1000'][-1]:10.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
