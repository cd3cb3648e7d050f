"""How long each lesson takes to run top to bottom, for the teacher guide and the README.

Executes every lesson notebook (or the ones named) in a fresh kernel, in fast
mode (``COURSE_FAST=1``, what the tests run) or full mode (what a learner
runs), optionally the student copies too, and records the wall time of the
whole run, the kernel's start and the slowest cells. Nothing in the repository
is rewritten: the executed notebook is thrown away, figures go to a temporary
folder, and by default every run gets a fresh, empty cache (what a first run in
class sees; ``--cache user`` reuses the cache of earlier runs instead).

Results are merged into the JSON file by (lesson, copy, mode, label, device),
so runs made at different times (fast now, full later, on a GPU elsewhere)
accumulate. ``--label`` names a configuration, together with the settings it
stands for: ``--env NAME=VALUE`` for the kernel's environment, or ``--set
NAME=VALUE`` to replace the line ``NAME = ...`` of the lesson's first code
cell (the switches a learner edits, e.g. ``--set MODEL='"mine"'``).

``--keep`` (full mode, lessons only, no ``--set``) instead writes the executed
notebook back and its figures to ``figures/``: the run is then both the
lesson's committed run and its measured time, as ``make notebooks`` would run it.
A kept run draws its figures into the notebook (matplotlib's inline backend, PNG
at :data:`KEEP_DPI` dpi); a run only timed draws nowhere (``Agg``).

Each run in the JSON carries its harness record (command, commit, date, machine),
and the table of every run is written beside it (``lesson_times.txt``);
``tools/lesson_times_docs.py`` writes the times into the teacher guide and the README.

Usage::

    .venv/bin/python benchmarks/lesson_times.py --mode fast 01            # one lesson
    .venv/bin/python benchmarks/lesson_times.py --mode full               # every lesson
    .venv/bin/python benchmarks/lesson_times.py --mode fast --student     # lessons and copies
    .venv/bin/python benchmarks/lesson_times.py --mode full --label mine --set MODEL='"mine"' 10
    .venv/bin/python benchmarks/lesson_times.py --mode full --keep 09     # and keep the run
    .venv/bin/python benchmarks/lesson_times.py --table                   # print, run nothing
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script
import nbformat

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "lesson_times.json"
KEY = ("lesson", "copy", "mode", "label", "device")
#: The backend of a kept run: the figures land in the notebook, as in JupyterLab.
KEEP_BACKEND = "module://matplotlib_inline.backend_inline"
#: The resolution of a kept run's figures: enough to read, light enough to commit.
KEEP_DPI = 90


def _stamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def cell_seconds(cell: nbformat.NotebookNode) -> float | None:
    """A code cell's run time from the timestamps nbclient records in its metadata."""
    ex = cell.get("metadata", {}).get("execution", {})
    start, stop = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (start and stop):
        return None
    return (_stamp(stop) - _stamp(start)).total_seconds()


def _first_line(source: str) -> str:
    """The first line that says what a cell does (nbval's markers skipped)."""
    lines = [line for line in source.split("\n") if line.strip()]
    useful = [line for line in lines if not line.startswith("# NBVAL")]
    return (useful or lines or [""])[0][:80]


def apply_settings(nb: nbformat.NotebookNode, settings: dict[str, str]) -> None:
    """Replace the line ``NAME = ...`` of the first code cell by ``NAME = VALUE``, per setting.

    Each value must be a Python literal, and each name must be assigned on a
    line of its own in that cell (a learner's switch); anything else is an error.
    """
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    if cell is None and settings:
        raise ValueError("the notebook has no code cell to apply --set to")
    for name, value in settings.items():
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"--set {name}={value}: the value is not a Python literal") from None
        pattern = re.compile(rf"^{re.escape(name)} = .*$", re.M)
        if len(pattern.findall(cell.source)) != 1:
            raise ValueError(f"--set {name}: the first code cell has no line '{name} = ...'")
        line = f"{name} = {value}"
        cell.source = pattern.sub(lambda _, line=line: line, cell.source)


def run_notebook(
    path: Path,
    mode: str,
    env: dict[str, str],
    cache: str,
    timeout: int = 3600,
    settings: dict[str, str] | None = None,
    keep: bool = False,
) -> dict:
    """Execute ``path`` in a fresh kernel in its own folder and time it.

    Args:
        path: the notebook.
        mode: ``"fast"`` or ``"full"``.
        env: extra environment variables for the kernel.
        cache: ``"fresh"`` (an empty cache folder for this run) or ``"user"``.
        timeout: seconds allowed per cell.
        settings: lines of the first code cell to replace (:func:`apply_settings`).
        keep: write the executed notebook back to ``path`` (only when every
            cell ran), with its figures drawn in it (inline backend, PNG at
            :data:`KEEP_DPI` dpi), and leave its figures where the lesson saves them.

    Returns:
        A JSON-ready dict: ``seconds`` (the whole run, kernel start included),
        ``kernel_start_seconds``, ``ok``, ``error`` (the first line of the
        failure, or None) and ``slowest_cells`` (the three slowest, with their
        first source line).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if mode not in ("fast", "full"):
        raise ValueError(f"mode must be 'fast' or 'full', got {mode!r}")
    if keep and settings:
        raise ValueError("keep writes the lesson back: it cannot be combined with settings")
    nb = nbformat.read(path, as_version=4)
    apply_settings(nb, settings or {})
    with tempfile.TemporaryDirectory(prefix="lesson-times-") as tmp:
        kernel_env = {
            **os.environ,
            "COURSE_FAST": "1" if mode == "fast" else "0",
            # A run only timed draws nowhere; a kept run is committed, so it shows its figures.
            "MPLBACKEND": KEEP_BACKEND if keep else "Agg",
            **env,
        }
        for name in ("COURSE_DATA_DIR", "COURSE_CACHE_DIR", "COURSE_FIGURES_DIR"):
            # The kernel runs in notebooks/: a relative path keeps the meaning it has here.
            if kernel_env.get(name, "").strip():
                kernel_env[name] = str(Path(kernel_env[name]).expanduser().resolve())
        if not keep:
            kernel_env["COURSE_FIGURES_DIR"] = str(Path(tmp) / "figures")
        if cache == "fresh":
            kernel_env["COURSE_CACHE_DIR"] = str(Path(tmp) / "cache")
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            extra_arguments=[
                "--InlineBackend.figure_formats={'png'}",
                f"--InlineBackend.rc={{'figure.dpi': {KEEP_DPI}}}",
            ]
            if keep
            else [],
        )
        error = None
        t0 = time.perf_counter()
        try:
            client.execute(env=kernel_env)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            error = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
        seconds = time.perf_counter() - t0
    if keep and error is None:
        nbformat.write(nb, path)
    timed = [
        (s, _first_line(cell.source))
        for cell in nb.cells
        if cell.cell_type == "code" and (s := cell_seconds(cell)) is not None
    ]
    slowest = sorted(timed, reverse=True)[:3]
    return {
        "seconds": round(seconds, 1),
        "kernel_start_seconds": round(max(0.0, seconds - sum(s for s, _ in timed)), 1),
        "ok": error is None,
        "error": error,
        "slowest_cells": [{"seconds": round(s, 1), "first_line": line} for s, line in slowest],
    }


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with every run of ``new`` put in, replacing the run with the same key."""
    runs = {tuple(r.get(k) for k in KEY): r for r in old}
    for r in new:
        runs[tuple(r.get(k) for k in KEY)] = r
    return sorted(runs.values(), key=lambda r: tuple(str(r.get(k)) for k in KEY))


def as_minutes(seconds: float | None) -> str:
    """``"42 s"`` or ``"3 min 07 s"``; ``"–"`` for None."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def table(runs: list[dict]) -> str:
    """A markdown table: one row per lesson (and copy), one column per mode/label/device."""
    columns = sorted(
        {(r["mode"], r.get("label") or "", r["device"]) for r in runs},
        key=lambda c: (c[2], c[1], c[0] != "fast"),
    )
    rows = sorted({(r["lesson"], r["copy"]) for r in runs})
    if not rows:
        return "(No lesson has been timed yet.)"
    found = {
        (r["lesson"], r["copy"], r["mode"], r.get("label") or "", r["device"]): r for r in runs
    }

    def title(mode: str, label: str, device: str) -> str:
        return f"{mode}{', ' + label if label else ''} ({device})"

    lines = [
        "| lesson | " + " | ".join(title(*c) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for lesson, copy in rows:
        cells = []
        for c in columns:
            r = found.get((lesson, copy, *c))
            cells.append(
                "–" if r is None else as_minutes(r["seconds"]) + ("" if r["ok"] else " (failed)")
            )
        name = lesson + (" (student copy)" if copy == "student" else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def select(names: list[str], student: bool) -> list[tuple[str, Path]]:
    """``(copy, path)`` for the lessons named by number or stem (all when none)."""
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if names:
        unknown = [n for n in names if not any(p.stem.startswith(n) for p in lessons)]
        if unknown:
            raise ValueError(f"lessons {unknown} match no notebook in notebooks/")
        lessons = [p for p in lessons if any(p.stem.startswith(n) for n in names)]
    chosen = [("lesson", p) for p in lessons]
    if student:
        chosen += [("student", ROOT / "student" / p.name) for p in lessons]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    parser.add_argument("--mode", choices=["fast", "full"], default="fast")
    parser.add_argument("--student", action="store_true", help="also time the student copies")
    parser.add_argument("--label", default="", help="names a configuration, e.g. 'pretrained'")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="set for the kernel"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="replace the line NAME = ... of the first code cell",
    )
    parser.add_argument(
        "--keep", action="store_true", help="write the executed lessons back (full mode)"
    )
    parser.add_argument(
        "--cell-timeout",
        type=int,
        default=None,
        help="seconds a cell may run (default: 600 in fast mode, 3600 in full mode)",
    )
    parser.add_argument("--cache", choices=["fresh", "user"], default="fresh")
    harness.output_options(parser, out=OUT)
    args = parser.parse_args(argv)
    if harness.table_only(parser, args, lambda data: table(data["runs"])):
        return 0

    env, settings = {}, {}
    for option, items, into in (("--env", args.env, env), ("--set", args.set, settings)):
        for item in items:
            name, sep, value = item.partition("=")
            if not sep or not name:
                parser.error(f"{option} wants NAME=VALUE, got {item!r}")
            into[name] = value
    if args.keep and (args.mode != "full" or args.student or settings):
        parser.error("--keep runs lessons in full mode as they are: no --student or --set")
    data = harness.read_result(args.out) if args.out.is_file() else {"runs": []}
    run = harness.run_record()
    device = "cuda" if run["machine"]["gpu"] else "cpu"
    new: list[dict] = []
    for copy, path in select(args.lessons, args.student):
        print(f"{path.relative_to(ROOT)} ({args.mode}) ...", end=" ", flush=True)
        result = run_notebook(
            path,
            args.mode,
            env,
            args.cache,
            timeout=args.cell_timeout or (600 if args.mode == "fast" else 3600),
            settings=settings,
            keep=args.keep,
        )
        print(
            as_minutes(result["seconds"]) + ("" if result["ok"] else f" FAILED: {result['error']}")
        )
        new.append(
            {
                "lesson": path.stem,
                "copy": copy,
                "mode": args.mode,
                "label": args.label,
                "device": device,
                "cache": args.cache,
                "env": env,
                "settings": settings,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                # The runs of a file accumulate from many commands: each keeps its own.
                harness.RUN_KEY: run,
                **result,
            }
        )
    data = {"runs": merge(data["runs"], new)}
    print(harness.write_result(args.out, data, table(data["runs"]), run=run))
    print(f"wrote {args.out}; tools/lesson_times_docs.py puts it in the guide and the README")
    return 1 if any(not r["ok"] for r in new) else 0


if __name__ == "__main__":
    sys.exit(main())
