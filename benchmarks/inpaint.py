"""Benchmark of lesson 08: inpainting by the flow alone, by the flow judging neighbours, baselines.

On held-out digits (the first ``--images`` of MNIST's official test split, which
the model never saw; lesson 08 measures the first 32 of them), for every mask
type, each method fills the hole and is scored by the PSNR of the hole only
(:func:`course_utils.core.metrics.masked_psnr`), and timed per batch of 64 images.

Groups (:data:`course_utils.inpaint.comparison.METHODS`):
    * baselines, from the 60,000 training digits: ``zero``, ``mean``, ``nn``
      (the training digit nearest on the known pixels), ``kernel`` (the
      distance-weighted average of the 16 nearest neighbours' holes);
    * flow only, no training image: ``ascent`` (likelihood ascent on the hole
      from the black fill, to convergence), ``latent`` (latent MAP from z = 0),
      ``posterior`` (the mean of MALA chains on the hole at temperature 1,
      started from latent MAP fits);
    * flow-assisted: ``nn+ascent`` (the ascent started from the ``nn`` fill) and
      ``kernel+flow`` (the neighbour average with the flow's likelihood-ratio vote).

Mask types: ``squares`` (two 10×10) and ``noise`` (60 % missing) are the lesson's,
on which the flow methods' settings were chosen by hand; ``square14`` (one
14×14 square) and ``noise30`` (30 % missing) were not looked at before this
benchmark ran.

Targets: on every mask type the best flow-only method beats the best baseline
(a paired gain over the same digits larger than twice its standard error), and
a batch of 64 inpaints in at most 30 s with the sampler and 10 s with every
other method. Results are written after each (mask, method), so an interrupted
run keeps what it measured; ``--resume`` continues one.

With ``--tune`` it instead chooses the settings of ``kernel`` and
``kernel+flow`` (neighbours k, kernel width, flow temperature τ) on the last
``--tune-images`` training digits as queries, the other training digits as the
pool (no test digit is looked at), and writes the grid.

Usage::

    .venv/bin/python benchmarks/inpaint.py --out benchmarks/results/inpaint.json
    .venv/bin/python benchmarks/inpaint.py --tune --out benchmarks/results/inpaint_tuning.json
    .venv/bin/python benchmarks/inpaint.py --table --out benchmarks/results/inpaint.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script
import torch

from course_utils import inpaint as ip
from course_utils import pretrained
from course_utils.core.data import image_splits
from course_utils.glow.train import load_glow
from course_utils.inpaint.comparison import METHODS, best, compare, paired_gain, psnr_table

#: Mask type → (kind of :func:`course_utils.inpaint.make_masks`, its settings, seen while tuning).
MASKS = {
    "squares": ("squares", {"size": 10, "count": 2}, True),
    "noise": ("noise", {"fraction": 0.6}, True),
    "square14": ("squares", {"size": 14, "count": 1}, False),
    "noise30": ("noise", {"fraction": 0.3}, False),
}
#: The limits per batch of 64: the sampler, every other method.
TIME_LIMITS = {"posterior": 30.0, "other": 10.0}
#: The grid of ``--tune``.
TUNE_K, TUNE_WIDTHS = (8, 16, 32), (0.5, 1.0, 2.0)
TUNE_TEMPERATURES = (0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


def tuning_masks(kinds: list[str], n: int) -> dict[str, torch.Tensor]:
    """The masks of the held-out training digits that settings are chosen on: seed 2 per type.

    ``--tune`` and the benchmarks beside this one query the last ``n`` training
    digits with these masks (the other training digits are the neighbours' pool).
    """
    out = {}
    for kind in kinds:
        mk, kw, _ = MASKS[kind]
        out[kind] = ip.make_masks(mk, n, generator=torch.Generator().manual_seed(2), **kw)
    return out


def load_model(args):
    """The Glow to measure and what the results say about it."""
    if args.checkpoint:
        model, state = load_glow(args.checkpoint)
        hist = state["history"]
        return model, {"checkpoint": str(args.checkpoint), "steps": hist["steps"]}
    info = pretrained.manifest("glow-mnist")
    keep = ("test_bits_per_dim", "recognisable_share", "steps", "training_minutes", "sha256")
    return pretrained.load("glow-mnist"), {"pretrained": "glow-mnist"} | {
        k: info[k] for k in keep if k in info
    }


def summarise(rows: list[dict]) -> dict:
    """Per mask type: the best of each group and the paired gains over the best baseline."""
    summary = {}
    for kind in dict.fromkeys(r["mask"] for r in rows):
        base = best(rows, kind, "baseline")
        entry = {"best_baseline": base["method"], "best_baseline_psnr": base["psnr"]}
        for group in ("flow", "assisted"):
            top = best(rows, kind, group)
            if top is None:
                continue
            gain, sem = paired_gain(top, base)
            entry[group] = {
                "method": top["method"],
                "psnr": top["psnr"],
                "gain_db": gain,
                "gain_sem_db": sem,
                "wins": gain > 2 * sem,
            }
        summary[kind] = entry
    return summary


def report(result: dict) -> str:
    """The text table of a result."""
    rows, summary = result["rows"], result["summary"]
    model = result["model"]
    name = model.get("pretrained") or model.get("checkpoint")
    lines = [
        f"hole PSNR in dB, mean over test digits 0-{result['images_per_mask'] - 1} of MNIST's "
        f"official test split (model: {name}"
        + (f", {model['test_bits_per_dim']} test bits/dim" if "test_bits_per_dim" in model else "")
        + ")",
        psnr_table(rows),
        "",
        "paired gain over the best baseline (± standard error over the digits):",
    ]
    for kind, s in summary.items():
        seen = "" if MASKS[kind][2] else "  (mask type not seen while tuning)"
        parts = [f"{kind:9s} best baseline {s['best_baseline']} {s['best_baseline_psnr']:.2f}"]
        for group, word in (("flow", "flow only"), ("assisted", "flow-assisted")):
            if group in s:
                g = s[group]
                verdict = "wins" if g["wins"] else "does not win"
                gain = f"{g['gain_db']:+.2f} ± {g['gain_sem_db']:.2f}"
                parts.append(f"{word}: {g['method']} {gain} ({verdict})")
        lines.append(";  ".join(parts) + seen)
    seconds = {}
    for r in rows:
        seconds[r["method"]] = max(seconds.get(r["method"], 0.0), r["seconds_per_batch"])
    lines.append(
        "seconds per batch of 64 (slowest mask type): "
        + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
    )
    t = result["targets"]
    lines.append(
        f"targets: best flow-only method beats the best baseline on every mask type: "
        f"{t['flow_only_wins_on_every_mask']}; sampler within {TIME_LIMITS['posterior']:.0f} s "
        f"per 64: {t['sampler_within_limit']}; the others within {TIME_LIMITS['other']:.0f} s: "
        f"{t['others_within_limit']} ({result[harness.RUN_KEY]['machine']['threads']} threads, "
        f"{result['note']})"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.output_options(parser)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a Glow checkpoint instead")
    parser.add_argument("--images", type=int, default=256, help="held-out test digits per mask")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--masks", nargs="*", default=list(MASKS), choices=list(MASKS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--resume", action="store_true", help="keep the rows of --out")
    parser.add_argument("--note", default="", help="e.g. whether the CPU was shared")
    parser.add_argument("--tune", action="store_true", help="choose the neighbour settings")
    parser.add_argument("--tune-images", type=int, default=500)
    args = parser.parse_args()
    if args.table and args.tune:  # its table ranks by z-scores of per-image PSNRs it does not keep
        parser.error("--table re-renders the comparison, not --tune's grid")
    if harness.table_only(parser, args, report):
        return
    torch.set_num_threads(args.threads)
    run = harness.run_record()
    model, model_info = load_model(args)
    train_u8, test_u8 = image_splits("mnist")
    if args.tune:
        return tune(model, ip.to_unit(train_u8), args, model_info, run)
    train, test = ip.to_unit(train_u8), ip.to_unit(test_u8[: args.images])
    print(f"model: {model_info}", flush=True)
    result = {
        "model": model_info,
        "held_out": f"test digits 0-{len(test) - 1} of MNIST's official test split",
        "images_per_mask": len(test),
        "masks": {
            k: {"kind": MASKS[k][0], **MASKS[k][1], "seen_while_tuning": MASKS[k][2]}
            for k in args.masks
        },  # fmt: skip
        "rows": [],
        "note": args.note or "CPU not shared",
    }
    per_image = {}
    if args.resume and args.out.exists():
        old = harness.read_result(args.out)
        if old.get("model") != model_info or old.get("images_per_mask") != len(test):
            sys.exit(
                f"{args.out} was measured on another model or number of digits "
                f"({old.get('model')}, {old.get('images_per_mask')} digits); "
                "run without --resume to start afresh"
            )
        result["rows"] = old["rows"]
        result["masks"] = old.get("masks", {}) | result["masks"]
        # The rows kept were measured by the earlier runs, which their records say.
        result["earlier_runs"] = [*old.get("earlier_runs", []), old[harness.RUN_KEY]]
        per_image = {(r["mask"], r["method"]): r["psnr_per_image"] for r in old["rows"]}
    for kind in args.masks:
        mk, kw, _ = MASKS[kind]
        mask = ip.make_masks(mk, len(test), generator=torch.Generator().manual_seed(1), **kw)
        for method in args.methods:
            if (kind, method) in per_image:
                continue
            start = time.perf_counter()
            (row,) = compare(model, test, {kind: mask}, train, methods=(method,), batch_size=64)
            result["rows"].append(row)
            print(
                f"{kind:9s} {method:11s} {row['psnr']:6.2f} ± {row['psnr_sem']:.2f} dB "
                f"{row['seconds_per_batch']:6.1f} s per 64 ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
            write(result, args.out, run)
    write(result, args.out, run, final=True)


def write(result: dict, out: Path, run: dict, final: bool = False) -> None:
    """Write the JSON (and, once every mask type has a baseline, the table)."""
    rows = result["rows"]
    kinds = list(dict.fromkeys(r["mask"] for r in rows))
    complete = kinds and all(best(rows, k, "baseline") for k in kinds)
    if complete:
        result["summary"] = summarise(rows)
        flow_rows = [r for r in rows if r["group"] != "baseline"]
        sampler = [r["seconds_per_batch"] for r in flow_rows if r["method"] == "posterior"]
        others = [r["seconds_per_batch"] for r in rows if r["method"] != "posterior"]
        result["targets"] = {
            "flow_only_wins_on_every_mask": all(
                s.get("flow", {}).get("wins", False) for s in result["summary"].values()
            ),
            "sampler_within_limit": bool(sampler) and max(sampler) <= TIME_LIMITS["posterior"],
            "others_within_limit": bool(others) and max(others) <= TIME_LIMITS["other"],
            "slowest_seconds_per_64": {
                r["method"]: max(q["seconds_per_batch"] for q in rows if q["method"] == r["method"])
                for r in rows
            },
        }
    result = {harness.RUN_KEY: run, **result}
    table = report(result) if complete and (final or len(rows) % 3 == 0) else None
    text = harness.write_result(out, result, table, run=run)
    if final and text:
        print(text)


def tune(model, train, args, model_info, run: dict) -> None:
    """The grid search behind the neighbour settings of ``course_utils.inpaint.masks``."""
    from course_utils.core.metrics import masked_psnr

    n = args.tune_images
    queries, pool = train[-n:], train[:-n]
    psnr = {}  # (k, width, τ or None) → mask → per-image PSNR
    kinds = [k for k in args.masks if MASKS[k][2]]
    for kind, mask in tuning_masks(kinds, n).items():
        # One pass of the flow over the largest k; smaller k are its first columns.
        res = ip.flow_kernel_inpaint(model, queries, mask, pool, k=max(TUNE_K))
        idx, dist, score = (res.extra[key] for key in ("index", "distance", "score"))
        for k in TUNE_K:
            for width in TUNE_WIDTHS:
                for tau in (None, *TUNE_TEMPERATURES):
                    if tau is None:
                        w = ip.neighbour_weights(dist[:, :k], width)
                    else:
                        w = ip.neighbour_weights(dist[:, :k], width, score[:, :k], mask, tau)
                    out = ip.blend_neighbours(queries, mask, pool, idx[:, :k], w)
                    psnr.setdefault((k, width, tau), {})[kind] = masked_psnr(out, queries, mask)
        print(f"{kind}: scored", flush=True)

    def mean(key):
        return sum(float(v.mean()) for v in psnr[key].values()) / len(kinds)

    kernels = [key for key in psnr if key[2] is None]
    kernel = max(kernels, key=mean)
    best_kernel = {kind: max(kernels, key=lambda c: float(psnr[c][kind].mean())) for kind in kinds}

    def z_scores(key):
        out = {}
        for kind in kinds:
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
        f"tuning on the last {n} training digits (pool: the other {len(pool)}; masks of seed 2); "
        "hole PSNR in dB",
        f"{'setting':24s}" + "".join(f"{k:>9s}" for k in kinds) + "     mean  min z",
    ]
    for key in [kernel, *flows[:8]]:
        name = f"k={key[0]} width={key[1]}" + ("" if key[2] is None else f" τ={key[2]}")
        z = "" if key[2] is None else f"{min(z_scores(key).values()):7.1f}"
        lines.append(
            f"{name:24s}"
            + "".join(f"{float(psnr[key][k].mean()):9.2f}" for k in kinds)
            + f"{mean(key):9.2f}{z}"
        )
    lines.append(
        f"chosen: kernel k={kernel[0]} width={kernel[1]}; kernel+flow k={chosen[0]} "
        f"width={chosen[1]} τ={chosen[2]} (in course_utils.inpaint.masks: k={ip.NEIGHBOURS} "
        f"width={ip.BANDWIDTH}, kernel+flow width={ip.FLOW_BANDWIDTH} τ={ip.FLOW_TEMPERATURE})"
    )
    table = "\n".join(lines)
    result = {
        "model": model_info,
        "queries": f"the last {n} training digits",
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
    print(harness.write_result(args.out, result, table, run=run))


if __name__ == "__main__":
    main()
