"""Benchmark of lesson 08: zero-shot inpainting with the Glow against simple baselines.

On held-out digits (never seen in training), for every mask type, each method
fills the hole and is scored by the PSNR of the hole only
(:func:`course_utils.metrics.masked_psnr`, averaged over images), and timed per
batch of 64 images.

Methods:
    * baselines: ``zero`` fill, ``mean`` training image, ``nn``: the training
      digit nearest on the known pixels, ``kernel``: the holes of the 16 nearest
      training digits averaged with weights that fall with their distance (a
      stronger baseline than the issue's three: averaging plausible holes pays
      under a squared error);
    * flow: ``ascent`` (gradient ascent on log p over the hole, the classic
      zero-shot method, started from the mean fill), ``latent`` (optimise the
      latents with a data-consistency term, started from the mean fill's
      encoding; half the steps, as each costs two passes), ``nn+ascent`` (the
      same ascent started from the ``nn`` fill: the flow refines the best
      baseline), ``kernel+flow`` (the ``kernel`` average, with each neighbour's
      weight also scaled by the flow's likelihood ratio for its hole next to the
      known pixels: the ``kernel`` baseline is its ablation). Its settings were
      chosen on held-out digits 500-999; this benchmark scores digits 0-255.

Targets: on every mask type the best flow method's PSNR beats the best
baseline's (a paired gain over the same images larger than twice its standard
error, so that noise does not count as a win), and a batch of 64 inpaints in at
most 10 s (every flow method).

The model is lesson 08's small Glow (``SMALL_RECIPE``), read from its checkpoint
(trained with ``python -m course_utils.train glow --dataset mnist-9k --recipe small
--minutes 8`` when it is missing); the JSON names its dataset, steps and held-out
bits/dim.

With ``--tune`` it instead chooses the settings of ``kernel`` and
``kernel+flow`` (neighbours k, kernel width, flow temperature τ) on other
held-out digits, 500-999 with masks of another seed, and writes the grid:
``kernel`` takes the (k, width) of the best mean PSNR over the mask types;
``kernel+flow`` the (k, width, τ) whose smallest paired gain over the best
``kernel`` setting of each mask type, in standard errors, is largest.

Usage::

    .venv/bin/python benchmarks/inpaint.py --out benchmarks/results/inpaint.json
    .venv/bin/python benchmarks/inpaint.py --tune --out benchmarks/results/inpaint_tuning.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from course_utils import inpaint as ip
from course_utils.config import seed_everything
from course_utils.data import image_splits
from course_utils.models import SMALL_RECIPE, load_glow
from course_utils.train import glow_checkpoint_path, train_glow

#: The mask types of the lesson, with their settings.
MASKS = {
    "squares": {"size": 10, "count": 2},
    "noise": {"fraction": 0.6},
    "centre": {"size": 12},
    "left": {},
    "right": {},
    "top": {},
    "bottom": {},
}
TIME_LIMIT = 10.0
#: The grid of ``--tune`` and its held-out digits (the comparison uses the first ``--images``).
TUNE_K, TUNE_WIDTHS = (8, 16, 32), (0.5, 1.0, 2.0)
TUNE_TEMPERATURES = (0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
TUNE_DIGITS = slice(500, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--dataset", default="mnist-9k")
    parser.add_argument("--images", type=int, default=256, help="held-out images per mask type")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--masks", nargs="*", default=list(MASKS))
    parser.add_argument("--tune", action="store_true", help="choose the neighbour settings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    path = args.checkpoint or glow_checkpoint_path(args.dataset, SMALL_RECIPE)
    if not Path(path).exists():
        print(f"no checkpoint at {path}: training the course Glow for 8 minutes first")
        train_glow(args.dataset, minutes=8, recipe="small", checkpoint=path, progress=False)
    model, state = load_glow(path)
    train_u8, test_u8 = image_splits(state["extra"]["dataset"])
    train, test = ip.to_unit(train_u8), ip.to_unit(test_u8[: args.images])
    if args.tune:
        test = ip.to_unit(test_u8[TUNE_DIGITS])
    hist = state["history"]
    model_info = {
        "checkpoint": str(path),
        "dataset": state["extra"]["dataset"],
        "train_images": len(train_u8),
        "steps": hist["steps"],
        "train_seconds": hist["seconds"][-1] if hist["seconds"] else None,
        "held_out_bpd": hist["eval"][-1] if hist["eval"] else None,
    }
    print(f"model: {model_info}")
    if args.tune:
        return tune(model, train, test, args, model_info)

    masks = {
        kind: ip.make_masks(
            kind, len(test), generator=torch.Generator().manual_seed(1), **MASKS[kind]
        )
        for kind in args.masks
    }
    seed_everything(0)
    rows = ip.compare(model, test, masks, train, steps=args.steps, batch_size=64)
    for row in rows:
        print(
            f"{row['mask']:8s} {row['method']:11s} {row['psnr']:6.2f} ± {row['psnr_sem']:.2f} dB "
            f"{row['seconds_per_batch']:6.2f} s per 64",
            flush=True,
        )

    summary = {}
    for kind in args.masks:
        mine = [r for r in rows if r["mask"] == kind]
        best_flow = max((r for r in mine if r["flow"]), key=lambda r: r["psnr"])
        best_base = max((r for r in mine if not r["flow"]), key=lambda r: r["psnr"])
        # Paired over the same images: the gain must exceed twice its standard error.
        diff = torch.tensor(best_flow["psnr_per_image"]) - torch.tensor(best_base["psnr_per_image"])
        gain, sem = float(diff.mean()), float(diff.std() / len(diff) ** 0.5)
        summary[kind] = {
            "best_flow": best_flow["method"],
            "best_flow_psnr": best_flow["psnr"],
            "best_baseline": best_base["method"],
            "best_baseline_psnr": best_base["psnr"],
            "gain_db": gain,
            "gain_sem_db": sem,
            "flow_wins": gain > 2 * sem,
        }
    slowest = max(r["seconds_per_batch"] for r in rows if r["flow"])
    targets = {
        "best_flow_beats_best_baseline_on_every_mask": all(
            s["flow_wins"] for s in summary.values()
        ),
        "slowest_flow_method_seconds_per_64": slowest,
        "batch_of_64_within_10_s": slowest <= TIME_LIMIT,
    }
    result = {
        "model": model_info,
        "images_per_mask": len(test),
        "steps": args.steps,
        "masks": {k: MASKS[k] for k in args.masks},
        "rows": [{k: v for k, v in r.items() if k != "psnr_per_image"} for r in rows],
        "summary": summary,
        "targets": targets,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    lines = [
        f"hole PSNR in dB, mean over {len(test)} held-out digits of {model_info['dataset']} "
        f"(Glow: {model_info['steps']} steps, {model_info['held_out_bpd']:.3f} bpd held out)",
        ip.psnr_table(rows),
        "seconds per batch of 64 (slowest mask type): "
        + ", ".join(
            f"{m} {max(r['seconds_per_batch'] for r in rows if r['method'] == m):.2f}"
            for m in ip.METHODS
        ),
    ]
    lines.append(
        f"targets: flow beats baselines on every mask: "
        f"{targets['best_flow_beats_best_baseline_on_every_mask']}; "
        f"batch of 64 within {TIME_LIMIT:.0f} s: {targets['batch_of_64_within_10_s']} "
        f"(torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )
    lines.insert(
        2,
        "paired gain of the best flow method over the best baseline: "
        + ", ".join(
            f"{k} {s['gain_db']:+.2f} ± {s['gain_sem_db']:.2f} dB"
            + ("" if s["flow_wins"] else " (no win)")
            for k, s in summary.items()
        ),
    )
    table = "\n".join(lines)
    print(table)
    args.out.with_suffix(".txt").write_text(table + "\n")


def tune(model, train, test, args, model_info) -> None:
    """The grid search behind ``ip.NEIGHBOURS``, ``ip.BANDWIDTH`` and ``ip.FLOW_TEMPERATURE``."""
    from course_utils.metrics import masked_psnr

    psnr = {}  # (k, width, τ or None) → mask → per-image PSNR
    for kind in args.masks:
        mask = ip.make_masks(
            kind, len(test), generator=torch.Generator().manual_seed(2), **MASKS[kind]
        )
        # One pass of the flow over the largest k; smaller k are its first columns.
        res = ip.flow_kernel_inpaint(model, test, mask, train, k=max(TUNE_K))
        idx, dist, score = (res.extra[key] for key in ("index", "distance", "score"))
        for k in TUNE_K:
            for width in TUNE_WIDTHS:
                for tau in (None, *TUNE_TEMPERATURES):
                    if tau is None:
                        w = ip.neighbour_weights(dist[:, :k], width)
                    else:
                        w = ip.neighbour_weights(dist[:, :k], width, score[:, :k], mask, tau)
                    out = ip.blend_neighbours(test, mask, train, idx[:, :k], w)
                    psnr.setdefault((k, width, tau), {})[kind] = masked_psnr(out, test, mask)
        print(f"{kind}: scored", flush=True)

    def mean(key):
        return sum(float(v.mean()) for v in psnr[key].values()) / len(args.masks)

    kernels = [key for key in psnr if key[2] is None]
    kernel = max(kernels, key=mean)
    best_kernel = {
        kind: max(kernels, key=lambda c: float(psnr[c][kind].mean())) for kind in args.masks
    }

    def z_scores(key):
        out = {}
        for kind in args.masks:
            d = psnr[key][kind] - psnr[best_kernel[kind]][kind]
            out[kind] = float(d.mean() / (d.std() / len(d) ** 0.5))
        return out

    flows = sorted(
        (key for key in psnr if key[2] is not None),
        key=lambda c: min(z_scores(c).values()),
        reverse=True,
    )
    chosen = flows[0]
    lines = [
        f"tuning on held-out digits {TUNE_DIGITS.start}-{TUNE_DIGITS.stop - 1} of "
        f"{model_info['dataset']} (masks of seed 2); hole PSNR in dB",
        f"{'setting':24s}" + "".join(f"{k:>9s}" for k in args.masks) + "     mean  min z",
    ]
    for key in [kernel, *flows[:8]]:
        name = f"k={key[0]} width={key[1]}" + ("" if key[2] is None else f" τ={key[2]}")
        z = "" if key[2] is None else f"{min(z_scores(key).values()):7.1f}"
        lines.append(
            f"{name:24s}"
            + "".join(f"{float(psnr[key][k].mean()):9.2f}" for k in args.masks)
            + f"{mean(key):9.2f}{z}"
        )
    lines.append(
        f"chosen: kernel k={kernel[0]} width={kernel[1]}; kernel+flow k={chosen[0]} "
        f"width={chosen[1]} τ={chosen[2]} (in course_utils.inpaint: k={ip.NEIGHBOURS} "
        f"width={ip.BANDWIDTH} τ={ip.FLOW_TEMPERATURE})"
    )
    table = "\n".join(lines)
    print(table)
    result = {
        "model": model_info,
        "digits": [TUNE_DIGITS.start, TUNE_DIGITS.stop],
        "kernel": {"k": kernel[0], "width": kernel[1]},
        "kernel+flow": {"k": chosen[0], "width": chosen[1], "temperature": chosen[2]},
        "grid": [
            {
                "k": key[0],
                "width": key[1],
                "temperature": key[2],
                "psnr": {kind: float(v.mean()) for kind, v in psnr[key].items()},
            }
            for key in psnr
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    args.out.with_suffix(".txt").write_text(table + "\n")


if __name__ == "__main__":
    main()
