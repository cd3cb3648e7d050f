"""Benchmark of lesson 09: is the loss playground responsive on a CPU?

Builds the playground panel exactly as the lesson does (the shipped
``glow-coloured-mnist``, the coloured digits of MNIST's 60,000 training and
10,000 test images, the digit classifier and the panel's default settings),
then times, through the widgets themselves:

* a **Train click** with the default settings (``DEFAULT_STEPS`` steps with
  all three loss terms, the held-out measures, the table and the redraw);
  target ≤ 10 s;
* a **re-sample at a new temperature** (moving the T slider: samples drawn
  and the figure redrawn, no training); target ≤ 1 s.

Both timings include rendering the figure to PNG, which a notebook does
before the browser can show it. Each click continues the previous one, as in
class. The load average before and after is recorded: other processes on the
machine slow every timing.

``--architectures SECONDS`` instead trains each candidate for lesson 09's
Glow for that long (NLL alone, one thread, held-out training digits) and adds
the curves to the JSON: how :data:`course_utils.composite.losses.PLAYGROUND_MODEL` was chosen.

Usage::

    .venv/bin/python benchmarks/playground.py --out benchmarks/results/playground.json
    .venv/bin/python benchmarks/playground.py --out benchmarks/results/playground.json \\
        --architectures 240
    .venv/bin/python benchmarks/playground.py --table --out benchmarks/results/playground.json
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import harness  # noqa: E402  (benchmarks/harness.py, beside this script)
import torch  # noqa: E402

from course_utils import seed_everything  # noqa: E402
from course_utils.core.data import coloured_splits  # noqa: E402
from course_utils.glow.model import GlowConfig  # noqa: E402
from course_utils.glow.recipes import COURSE, PLAYGROUND_MODEL  # noqa: E402
from course_utils.glow.train import train_glow  # noqa: E402
from course_utils.panels.playground import (  # noqa: E402
    PlaygroundState,
    playground_panel,
    starting_model,
)
from course_utils.pretrained import load  # noqa: E402

TARGET_TRAIN_S = 10.0
TARGET_RESAMPLE_S = 1.0


def render(panel) -> None:
    """Render the panel's latest figure to PNG, as a notebook front end receives it.

    Outside a notebook ``display`` prints the figure's name instead of
    rendering it, so the timings add the rendering here.
    """
    panel.last_figure.savefig(io.BytesIO(), format="png", bbox_inches="tight")


def measure(train_clicks: int = 3, temperatures: tuple[float, ...] = (0.5, 0.9, 1.0, 0.6)) -> dict:
    """Time Train clicks and temperature changes on a freshly built panel.

    Args:
        train_clicks: how many Train clicks to time (each continues the last).
        temperatures: the temperatures the slider is moved to, one timing each.

    Returns:
        A JSON-ready dict with every timing, their medians and maxima, and
        whether the targets are met (by the slowest repeat).
    """
    seed_everything(0)
    train_images, test_images = coloured_splits("mnist", seed=0)
    model, load_s = harness.timed(starting_model)
    state = PlaygroundState(model, train_images, test_images, classifier=load("digit-classifier"))
    panel, build_s = harness.timed(lambda: playground_panel(state))
    defaults = panel.values()

    def click() -> None:
        panel.train_button.click()
        render(panel)

    def move_to(t: float) -> None:
        panel.controls["temperature"].value = t
        render(panel)

    train_s, rows = [], []
    for _ in range(train_clicks):
        runs_before = len(state.runs)
        train_s.append(harness.timed(click)[1])
        if len(state.runs) != runs_before + 1:
            raise RuntimeError(f"the Train click did not add a run: {panel.status.value}")
        row = state.runs[-1]
        keys = ("steps", "seconds", "bpd", "channel_gap", "recognisable", "stopped")
        rows.append({k: row[k] for k in keys})

    resample_s = []
    for t in temperatures:
        draws = panel.draws
        resample_s.append(harness.timed(lambda t=t: move_to(t))[1])
        if panel.draws != draws + 1:
            raise RuntimeError("moving the temperature slider did not redraw the samples")

    return {
        "defaults": defaults,
        "load_s": load_s,
        "build_s": build_s,
        "train_click_s": train_s,
        "train_click_median_s": statistics.median(train_s),
        "train_click_max_s": max(train_s),
        "runs": rows,
        "resample_s": resample_s,
        "resample_median_s": statistics.median(resample_s),
        "resample_max_s": max(resample_s),
        "targets": {"train_click_s": TARGET_TRAIN_S, "resample_s": TARGET_RESAMPLE_S},
        "targets_met": max(train_s) <= TARGET_TRAIN_S and max(resample_s) <= TARGET_RESAMPLE_S,
    }


def table(result: dict) -> str:
    """The result as a plain-text table."""
    env = result["environment"]
    lines = [
        "Loss playground (lesson 09)",
        f"defaults: {result['defaults']}",
        f"load average before / after (1 min): {env['load_before']:.2f} / {env['load_after']:.2f}"
        + (f"; {env['note']}" if env.get("note") else ""),
        f"{'action':38s} {'median s':>9s} {'max s':>7s} {'target s':>9s}  each (s)",
        f"{'Train click, default settings':38s} {result['train_click_median_s']:9.1f} "
        f"{result['train_click_max_s']:7.1f} {TARGET_TRAIN_S:9.0f}  "
        + ", ".join(f"{t:.1f}" for t in result["train_click_s"]),
        f"{'re-sample at a new temperature':38s} {result['resample_median_s']:9.2f} "
        f"{result['resample_max_s']:7.2f} {TARGET_RESAMPLE_S:9.0f}  "
        + ", ".join(f"{t:.2f}" for t in result["resample_s"]),
        f"targets met: {'yes' if result['targets_met'] else 'no'}",
    ]
    return "\n".join(lines)


#: The candidates for lesson 09's Glow: lesson 07's course model on 3 channels with
#: normflows' GlowBase and with the cosine-basis base
#: (:data:`course_utils.glow.recipes.PLAYGROUND_MODEL`), and the narrower model with the
#: cosine-basis base that the lesson used before (a faster Train click, fewer digits).
def candidates() -> dict[str, GlowConfig]:
    narrow = replace(
        PLAYGROUND_MODEL, blocks=(2, 2), hidden=(32, 48), full_res_hidden=24, dequantizer=2
    )
    return {
        "course model, 3 channels, GlowBase": replace(PLAYGROUND_MODEL, base="channel"),
        "course model, 3 channels, spectral base (PLAYGROUND_MODEL)": PLAYGROUND_MODEL,
        "narrow, spectral base": narrow,
    }


def compare_architectures(seconds: float) -> list[dict]:
    """Train each candidate for ``seconds`` on coloured MNIST (NLL alone, 1 thread).

    :func:`course_utils.glow.train.train_glow` with the course recipe's optimiser
    settings; the last 2,000 training digits are held out (the first 500 of them
    give the curve, every 100 steps), so the choice never looks at the test split.
    Each candidate runs after the other, under the same conditions.
    """
    import tempfile

    torch.set_num_threads(1)
    rows = []
    for name, spec in candidates().items():
        with tempfile.TemporaryDirectory() as tmp:
            model, history = train_glow(
                "coloured-mnist",
                minutes=seconds / 60,
                recipe=replace(COURSE, model=spec),
                device="cpu",
                checkpoint=Path(tmp) / "run.pt",
                eval_images=500,
                progress=False,
                validation=2000,
            )
        rows.append(
            {
                "model": name,
                "parameters": sum(q.numel() for q in model.parameters()),
                "steps": history.steps,
                "held_out_bpd": [round(v, 3) for v in history.eval],
                "at_seconds": [round(t) for t in history.seconds],
            }
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.output_options(parser)
    parser.add_argument("--clicks", type=int, default=3, help="Train clicks to time")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument(
        "--architectures",
        type=float,
        default=0,
        metavar="SECONDS",
        help="instead, train each candidate model this long and add the curves to --out",
    )
    args = parser.parse_args(argv)
    if harness.table_only(parser, args, table):
        return 0
    old = harness.read_result(args.out) if args.out.is_file() else {}
    load_before = os.getloadavg()[0]
    if args.architectures:
        # A run of its own: its record sits inside, the file's record stays the clicks'.
        run = harness.run_record(threads=1)
        old["architectures"] = {
            harness.RUN_KEY: run,
            "seconds": args.architectures,
            "rows": compare_architectures(args.architectures),
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "note": args.note,
        }
        harness.write_result(args.out, old, run=old.get(harness.RUN_KEY, run))
        return 0
    run = harness.run_record()
    result = measure(train_clicks=args.clicks)
    if "architectures" in old:
        result["architectures"] = old["architectures"]
    result["environment"] = {
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "note": args.note,
    }
    print(harness.write_result(args.out, result, table(result), run=run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
