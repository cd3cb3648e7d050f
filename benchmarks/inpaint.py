"""Benchmark of lesson 08: inpainting judged by closeness (hole PSNR) and by meaning (labels).

On held-out digits of MNIST's official test split (which the model never saw),
for every mask type, each method fills the hole and is scored twice: by the
PSNR of the hole only (:func:`course_utils.core.metrics.masked_psnr`), and by
**label consistency**, whether the shipped digit classifier reads the
completion as the digit it was made from
(:func:`course_utils.inpaint.comparison.label_consistency`). Each method is
timed per batch of 64 images.

Methods (:data:`course_utils.inpaint.comparison.METHODS`):
    * baselines, from the 60,000 training digits: ``zero``, ``mean``, ``nn``
      (the training digit nearest on the known pixels), ``kernel`` (the
      neighbour average of the 16 nearest neighbours' holes), ``gaussian``
      (E[hole | known pixels] of a Gaussian fitted to the training digits, its
      covariance shrunk toward the identity);
    * flow only, no training image: ``latent`` (latent MAP from z = 0),
      ``multistart`` (the mean of three latent MAP fits of 40 steps, from ``z = 0``
      and two random starts) and ``multistart-best`` (the fit of the lowest
      objective among them), the settings of lesson 08; ``latent`` is the first fit;
    * flow-assisted: ``kernel+flow`` (the neighbour average with the flow's
      likelihood-ratio vote).
  Likelihood ascent, MALA's posterior mean and ``nn+ascent`` are not run by
  default (``--methods`` can ask for them): earlier runs of this benchmark
  measured them (see ``benchmarks/README.md``): the ascent scores like the black
  fill, and the sampler costs several times the multi-start fits.

Mask types: ``squares`` (two 10×10) and ``noise`` (60 % missing) are the lesson's,
on which the flow methods' settings were chosen by hand; ``square14`` (one
14×14 square) and ``noise30`` (30 % missing) were not looked at before this
benchmark ran. The **ambiguous** masks ``4-or-9``, ``3-or-8`` and ``1-or-7``
hide the 100 pixels where the two classes' mean training digits differ most
(:func:`course_utils.inpaint.masks.ambiguous_mask`), on the first test digits
of those two classes; for them the table also gives the classes the
classifier reads in the flow's completions (every start of ``multistart``).

Target: on every mask type, the label consistency of the flow-only method
``multistart`` (the mean of the fits, lesson 08's flow-only estimate) at least
that of the neighbour average (``kernel``).

Mask types are measured one after the other (the lesson's first, then the
ambiguous ones, then those not seen while tuning) and the result is written after
each, so ``--resume`` continues an interrupted run with the (mask type, method)
pairs it lacks: e.g. the baselines of every mask type first (seconds), then the
flow methods (``--methods latent multistart multistart-best kernel+flow --resume``).

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
import shlex
import sys
import time
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script
import torch

from course_utils import inpaint as ip
from course_utils import pretrained
from course_utils.core.data import load_mnist
from course_utils.glow.train import load_glow
from course_utils.inpaint.comparison import (
    METHODS,
    best,
    class_shares,
    fill_many,
    label_table,
    paired_gain,
    psnr_rows,
    psnr_table,
)

#: Mask type → (kind of :func:`course_utils.inpaint.make_masks`, its settings, seen while tuning).
MASKS = {
    "squares": ("squares", {"size": 10, "count": 2}, True),
    "noise": ("noise", {"fraction": 0.6}, True),
    "square14": ("squares", {"size": 14, "count": 1}, False),
    "noise30": ("noise", {"fraction": 0.3}, False),
}
#: Ambiguous mask type → the two classes whose difference it hides.
AMBIGUOUS = {"4-or-9": (4, 9), "3-or-8": (3, 8), "1-or-7": (1, 7)}
#: Pixels an ambiguous mask hides (lesson 08 uses the same).
AMBIGUOUS_PIXELS = 100
#: The methods run unless ``--methods`` says otherwise.
DEFAULT_METHODS = (
    "zero",
    "mean",
    "nn",
    "kernel",
    "gaussian",
    "latent",
    "multistart",
    "multistart-best",
    "kernel+flow",
)
#: The flow-only method whose label consistency the target compares with ``kernel``'s.
TARGET_METHOD = "multistart"
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
    """Per mask type: the best of each group, the paired gains over the best baseline, labels."""
    summary = {}
    for kind in dict.fromkeys(r["mask"] for r in rows):
        base = best(rows, kind, "baseline")
        if base is None:
            continue
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
        vals = {r["method"]: r for r in rows if r["mask"] == kind and "label_consistency" in r}
        if TARGET_METHOD in vals and "kernel" in vals:
            diff = torch.tensor(vals[TARGET_METHOD]["label_per_image"]) - torch.tensor(
                vals["kernel"]["label_per_image"]
            )
            entry["labels"] = {
                "method": TARGET_METHOD,
                "consistency": vals[TARGET_METHOD]["label_consistency"],
                "kernel": vals["kernel"]["label_consistency"],
                "difference": float(diff.mean()),
                "difference_sem": float(diff.std() / len(diff) ** 0.5),
                "at_least_kernel": vals[TARGET_METHOD]["label_consistency"]
                >= vals["kernel"]["label_consistency"],
            }
        summary[kind] = entry
    return summary


def _share_line(shares: dict) -> str:
    return ", ".join(f"{k} {100 * max(v, 0.0):.0f} %" for k, v in shares.items())


def report(result: dict) -> str:
    """The text tables of a result."""
    rows, summary = result["rows"], result["summary"]
    model = result["model"]
    name = model.get("pretrained") or model.get("checkpoint")
    lines = [
        f"hole PSNR in dB, mean over {result['images_per_mask']} held-out test digits per mask "
        f"type (model: {name}"
        + (f", {model['test_bits_per_dim']} test bits/dim" if "test_bits_per_dim" in model else "")
        + ")",
        psnr_table(rows),
        "",
        "label consistency (%): the digit classifier reads the completion as the true digit",
        label_table(rows),
        "",
        "paired differences (± standard error over the digits):",
    ]
    for kind, s in summary.items():
        seen = "" if result["masks"][kind]["seen_while_tuning"] else "  (not seen while tuning)"
        parts = [
            f"{kind:9s} PSNR: best baseline {s['best_baseline']} {s['best_baseline_psnr']:.2f}"
        ]
        if "flow" in s:
            g = s["flow"]
            verdict = "wins" if g["wins"] else "does not win"
            parts.append(
                f"flow only {g['method']} {g['gain_db']:+.2f} ± {g['gain_sem_db']:.2f} ({verdict})"
            )
        if "labels" in s:
            lab = s["labels"]
            parts.append(
                f"labels: {lab['method']} {100 * lab['consistency']:.1f} % against kernel "
                f"{100 * lab['kernel']:.1f} % ({100 * lab['difference']:+.1f} ± "
                f"{100 * lab['difference_sem']:.1f} points)"
            )
        lines.append(";  ".join(parts) + seen)
    if result.get("class_mix"):
        lines += ["", "ambiguous masks: the classes the classifier reads in the completions"]
        for kind, per_class in result["class_mix"].items():
            for truth, by_method in per_class.items():
                lines.append(f"{kind} true {truth}:")
                for method, shares in by_method.items():
                    lines.append(f"    {method:22s} {_share_line(shares)}")
    seconds = {}
    for r in rows:
        seconds[r["method"]] = max(seconds.get(r["method"], 0.0), r["seconds_per_batch"])
    lines.append(
        "seconds per batch of 64 (slowest mask type; the latent and multistart methods share "
        "one run): " + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
    )
    for earlier in result.get("earlier_runs", []):
        command = earlier.get("command")
        command = shlex.join(command) if isinstance(command, list) else command
        lines.append(f"rows kept from an earlier run ({earlier.get('date')}): {command}")
    labels = [s["labels"]["at_least_kernel"] for s in summary.values() if "labels" in s]
    missing = [k for k, s in summary.items() if "labels" not in s]
    lines.append(
        f"target: {TARGET_METHOD}'s label consistency at least kernel's on every mask type: "
        f"{bool(labels) and all(labels) and not missing} "
        f"({result[harness.RUN_KEY]['machine']['threads']} threads, {result['note']})"
    )
    if missing:
        lines.append(
            "not yet measured with the flow methods (continue with --resume): " + ", ".join(missing)
        )
    return "\n".join(lines)


def problems(kind: str, n: int, test, test_labels, train, train_labels):
    """The images, labels and masks of one mask type: ``n`` of each."""
    if kind in AMBIGUOUS:
        pair = AMBIGUOUS[kind]
        chosen = ((test_labels == pair[0]) | (test_labels == pair[1])).nonzero().flatten()[:n]
        x, y = test[chosen], test_labels[chosen]
        mask = ip.ambiguous_mask(train, train_labels, pair, AMBIGUOUS_PIXELS).expand_as(x).clone()
        return x, y, mask
    mk, kw, _ = MASKS[kind]
    mask = ip.make_masks(mk, n, generator=torch.Generator().manual_seed(1), **kw)
    return test[:n], test_labels[:n], mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.output_options(parser)
    kinds = ["squares", "noise", *AMBIGUOUS, "square14", "noise30"]
    parser.add_argument("--checkpoint", type=Path, default=None, help="a Glow checkpoint instead")
    parser.add_argument("--images", type=int, default=256, help="held-out test digits per mask")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--masks", nargs="*", default=kinds, choices=kinds)
    parser.add_argument(
        "--methods", nargs="*", default=list(DEFAULT_METHODS), choices=list(METHODS)
    )
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
    train_u8, train_labels = load_mnist("mnist", "train")
    test_u8, test_labels = load_mnist("mnist", "test")
    train, test = ip.to_unit(train_u8[:, None]), ip.to_unit(test_u8[:, None])
    if args.tune:
        return tune(model, train, args, model_info, run)
    classifier = pretrained.load("digit-classifier")
    settings = {"gaussian": {"fit": ip.gaussian_fit(train)}}  # fitted once, not per batch
    print(f"model: {model_info}", flush=True)
    result = {
        "model": model_info,
        "held_out": "the first test digits of MNIST's official test split (of the two classes, "
        "for an ambiguous mask)",
        "images_per_mask": args.images,
        "masks": {},
        "rows": [],
        "class_mix": {},
        "note": args.note or "CPU not shared",
    }
    done = set()
    if args.resume and args.out.exists():
        old = harness.read_result(args.out)
        if old.get("model") != model_info or old.get("images_per_mask") != args.images:
            sys.exit(
                f"{args.out} was measured on another model or number of digits "
                f"({old.get('model')}, {old.get('images_per_mask')} digits); "
                "run without --resume to start afresh"
            )
        result |= {k: old[k] for k in ("rows", "masks", "class_mix") if k in old}
        # The rows kept were measured by the earlier runs, which their records say.
        result["earlier_runs"] = [*old.get("earlier_runs", []), old[harness.RUN_KEY]]
        done = {(r["mask"], r["method"]) for r in old["rows"]}
    for kind in args.masks:
        todo = tuple(m for m in args.methods if (kind, m) not in done)
        if not todo:
            continue
        start = time.perf_counter()
        x, y, mask = problems(kind, args.images, test, test_labels, train, train_labels)
        result["masks"][kind] = (
            {"ambiguous": AMBIGUOUS[kind], "pixels": AMBIGUOUS_PIXELS, "seen_while_tuning": False}
            if kind in AMBIGUOUS
            else {"kind": MASKS[kind][0], **MASKS[kind][1], "seen_while_tuning": MASKS[kind][2]}
        )
        generator = torch.Generator().manual_seed(0)
        outs = {m: ([], []) for m in todo}
        fits = []
        for xb, mb in zip(x.split(64), mask.split(64), strict=True):
            extras = {}
            filled = fill_many(todo, model, xb, mb, train, settings, generator, extras)
            for method, (out, seconds) in filled.items():
                outs[method][0].append(out)
                outs[method][1].append(seconds)
            if "multistart" in extras:
                fits.append(extras["multistart"]["fits"])
        for method in todo:
            out = torch.cat(outs[method][0])
            (row,) = psnr_rows(x, {kind: mask}, {kind: {method: out}}, classifier, y)
            row["seconds_per_batch"] = sum(outs[method][1]) / len(outs[method][1])
            result["rows"].append(row)
            print(
                f"{kind:9s} {method:16s} {row['psnr']:6.2f} ± {row['psnr_sem']:.2f} dB, labels "
                f"{100 * row['label_consistency']:5.1f} %,{row['seconds_per_batch']:5.1f} s/64",
                flush=True,
            )
            if kind in AMBIGUOUS:
                per_class = result["class_mix"].setdefault(kind, {})
                pair = AMBIGUOUS[kind]
                for truth in pair:
                    chosen = y == truth
                    if method in ("kernel", "gaussian", "multistart-best"):
                        shares = class_shares(classifier, out[chosen], pair)
                        per_class.setdefault(str(truth), {})[method] = shares
                    if method == "multistart" and fits:
                        every = torch.cat(fits)[chosen].flatten(0, 1)
                        shares = class_shares(classifier, every, pair)
                        per_class.setdefault(str(truth), {})["every multistart fit"] = shares
        print(f"{kind}: {time.perf_counter() - start:.0f} s", flush=True)
        write(result, args.out, run)
    write(result, args.out, run, final=True)


def write(result: dict, out: Path, run: dict, final: bool = False) -> None:
    """Write the JSON and the table."""
    rows = result["rows"]
    result["summary"] = summarise(rows)
    labels = [s["labels"]["at_least_kernel"] for s in result["summary"].values() if "labels" in s]
    missing = [k for k, s in result["summary"].items() if "labels" not in s]
    result["targets"] = {
        "labels_at_least_kernel_on_every_mask": bool(labels) and all(labels) and not missing,
        "flow_not_measured_on": missing,
        "slowest_seconds_per_64": {
            r["method"]: max(q["seconds_per_batch"] for q in rows if q["method"] == r["method"])
            for r in rows
        },
    }
    result = {harness.RUN_KEY: run, **result}
    text = harness.write_result(out, result, report(result) if rows else None, run=run)
    if final and text:
        print(text)


def tune(model, train, args, model_info, run: dict) -> None:
    """The grid search behind the neighbour settings of ``course_utils.inpaint.masks``."""
    from course_utils.core.metrics import masked_psnr

    n = args.tune_images
    queries, pool = train[-n:], train[:-n]
    psnr = {}  # (k, width, τ or None) → mask → per-image PSNR
    kinds = [k for k in args.masks if k in MASKS and MASKS[k][2]]
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
