"""Benchmark of the shipped models: load time, and every manifest figure measured again.

For each model in ``pretrained/``: the seconds ``pretrained.load`` takes
(sha256 check included; the median of three loads, target under 2 s), and,
for every Glow, the figures of its manifest measured afresh from the committed
file by the same function that wrote them (:func:`course_utils.glow.measure.measure_glow`:
test bits/dim on the whole official test split, and for MNIST the recognisable
share of 1,000 samples at T = 0.7 and T = 1, or for a class-conditional Glow
the share drawn as asked, 100 samples of each digit at T = 0.7 and T = 1, and
its Bayes-rule accuracy on the test split; for the coloured-MNIST Glow
:func:`course_utils.composite.measure.measure_coloured_glow`, the same on the coloured
test digits, with the samples' colour gap), side by side with the manifest's values. A figure that
does not reproduce is printed as a mismatch and the script exits with 1.

Usage::

    .venv/bin/python benchmarks/pretrained.py --out benchmarks/results/pretrained.json

writes the JSON report and, beside it, the printed table (``pretrained.txt``);
``--table --out benchmarks/results/pretrained.json`` prints and writes the table
of a report again without measuring anything.
"""

from __future__ import annotations

import argparse
import statistics

import harness  # benchmarks/harness.py, beside this script
import torch

from course_utils import pretrained
from course_utils.composite.measure import measure_coloured_glow
from course_utils.core.data import IMAGE_DATASETS
from course_utils.glow.measure import measure_glow

TARGET_LOAD_SECONDS = 2.0


def figures_of(info: dict) -> dict:
    """The manifest's measured figures in the shape :func:`measure_glow` returns them."""
    keys = (
        "test_bits_per_dim",
        "test_images",
        "recognisable_real_test_digits",
        "recognisable_T0.7",
        "recognisable_T1.0",
        "drawn_as_asked_T0.7",
        "drawn_as_asked_T1.0",
        "bayes_test_accuracy",
    )
    return {k: info[k] for k in keys if k in info}


def bench(name: str) -> dict:
    """Load ``name`` three times and, for a Glow, measure its manifest's figures again."""
    info = pretrained.manifest(name)
    seconds = []
    for _ in range(3):
        model, s = harness.timed(lambda: pretrained.load(name))
        seconds.append(s)
    row = {
        "name": name,
        "kind": info["kind"],
        "megabytes": round(info["bytes"] / 1e6, 2),
        "load_seconds": round(statistics.median(seconds), 3),
    }
    dataset = info.get("dataset", "").split(" ")[0]
    if info["kind"] == "glow" and dataset in IMAGE_DATASETS:
        if dataset == "coloured-mnist":
            measured, s = harness.timed(lambda: measure_coloured_glow(model))
        else:
            measured, s = harness.timed(lambda: measure_glow(model, dataset))
        row["measure_seconds"] = round(s, 1)
        row["manifest"] = figures_of(info)
        row["measured"] = figures_of(measured)
        row["reproduced"] = row["manifest"] == row["measured"]
    return row


def table(report: dict) -> tuple[str, bool]:
    """The report as the printed table, and whether every target was met and figure reproduced."""
    lines = [
        "shipped models",
        f"{'name':22s} {'MB':>6s} {'load s':>7s}  manifest figures measured again",
    ]
    ok = True
    for r in report["models"]:
        note = ""
        if "measured" in r:
            m, f = r["manifest"], r["measured"]
            note = f"test bpd {f['test_bits_per_dim']:.4f} (manifest {m['test_bits_per_dim']:.4f})"
            if "recognisable_T0.7" in f:
                note += (
                    f", recognisable at T = 0.7 {f['recognisable_T0.7']['share']:.1%}"
                    f" (manifest {m['recognisable_T0.7']['share']:.1%})"
                )
            if "drawn_as_asked_T0.7" in f:
                d, dm = f["drawn_as_asked_T0.7"], m["drawn_as_asked_T0.7"]
                note += (
                    f", drawn as asked at T = 0.7 {d['share']:.1%} (manifest {dm['share']:.1%};"
                    f" worst digit {min(d['per_class']):.0%})"
                )
            if "bayes_test_accuracy" in f:
                note += (
                    f", Bayes-rule accuracy {f['bayes_test_accuracy']:.2%}"
                    f" (manifest {m['bayes_test_accuracy']:.2%})"
                )
            note += "  reproduced" if r["reproduced"] else "  MISMATCH"
            ok &= r["reproduced"]
        ok &= r["load_seconds"] < report["target_load_seconds"]
        lines.append(f"{r['name']:22s} {r['megabytes']:6.2f} {r['load_seconds']:7.3f}  {note}")
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.output_options(parser)
    args = parser.parse_args()
    if harness.table_only(parser, args, lambda report: table(report)[0]):
        return 0 if table(harness.read_result(args.out))[1] else 1
    torch.set_num_threads(1)  # as the manifests were measured, so sums run in the same order
    run = harness.run_record()
    names = sorted(p.stem for p in pretrained.PRETRAINED_DIR.glob("*.json"))
    rows = [bench(n) for n in names]
    report = {"target_load_seconds": TARGET_LOAD_SECONDS, "models": rows}
    text, ok = table(report)
    print(harness.write_result(args.out, report, text, run=run))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
