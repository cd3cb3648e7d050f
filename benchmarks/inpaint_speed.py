"""Benchmark of lesson 08's flow-only methods: hole PSNR against seconds per 64, fewer steps.

Lesson 08's speed targets are a batch of 64 in 30 s with the posterior sampler
and 10 s with latent MAP, which with the settings of
:data:`course_utils.inpaint.comparison.SETTINGS` take several times longer. This
measures what shorter settings cost: each row runs on the same 64 digits, the
last 64 of MNIST's training split (the model trained on them, so only the
differences between rows mean anything; no test digit is looked at), with
the lesson's two mask types (masks of seed 2), on 2 threads, one after another.

Usage::

    .venv/bin/python benchmarks/inpaint_speed.py --out benchmarks/results/inpaint_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from inpaint import tuning_masks  # benchmarks/inpaint.py, beside this script

from course_utils import inpaint as ip
from course_utils import pretrained
from course_utils.core.data import image_splits
from course_utils.core.metrics import masked_psnr
from course_utils.inpaint import flow
from course_utils.inpaint.comparison import SETTINGS

#: (method, settings); the first of each method is the one the benchmark and lesson use.
CONFIGS = [
    ("latent", SETTINGS["latent"]),
    ("latent", {"steps": 30, "lr": 0.1}),
    ("latent", {"steps": 25, "lr": 0.1}),
    ("latent", {"steps": 20, "lr": 0.15}),
    ("posterior", SETTINGS["posterior"]),
    ("posterior", {"chains": 4, "steps": 8, "warmup": 4, "latent_steps": 20, "latent_lr": 0.15}),
    ("posterior", {"chains": 3, "steps": 8, "warmup": 4, "latent_steps": 25, "latent_lr": 0.1}),
    ("posterior", {"chains": 4, "steps": 2, "warmup": 1, "latent_steps": 25, "latent_lr": 0.1}),
]
LIMITS = {"latent": 10.0, "posterior": 30.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the JSON (and .txt) here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = pretrained.load("glow-mnist")
    train, _ = image_splits("mnist")
    images = ip.to_unit(train[-64:])
    masks = tuning_masks(["squares", "noise"], 64)  # as benchmarks/inpaint.py --tune
    rows = []
    for method, settings in CONFIGS:
        row = {"method": method, "settings": settings, "psnr": {}, "seconds": {}}
        for kind, mask in masks.items():
            start = time.perf_counter()
            if method == "latent":
                out = flow.latent_inpaint(model, images, mask, **settings).images
            else:
                gen = torch.Generator().manual_seed(0)
                out = flow.posterior_inpaint(model, images, mask, generator=gen, **settings).images
            row["seconds"][kind] = round(time.perf_counter() - start, 1)
            row["psnr"][kind] = round(float(masked_psnr(out, images, mask).mean()), 2)
        rows.append(row)
        print(row, flush=True)
    lines = [
        "hole PSNR (dB) and seconds per batch of 64, the last 64 training digits "
        f"(glow-mnist; {platform.machine()}, {torch.get_num_threads()} threads)",
        f"{'method':10s} {'settings':62s} {'squares':>8s} {'noise':>7s} {'s/64':>6s} limit",
    ]
    for r in rows:
        text = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        worst = max(r["seconds"].values())
        lines.append(
            f"{r['method']:10s} {text:62s} {r['psnr']['squares']:8.2f} {r['psnr']['noise']:7.2f}"
            f" {worst:6.1f} {LIMITS[r['method']]:.0f}"
        )
    lines.append("the first row of each method: the settings the benchmark and lesson 08 use")
    lines.append("command: python " + " ".join(sys.argv))
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
        args.out.with_suffix(".txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
