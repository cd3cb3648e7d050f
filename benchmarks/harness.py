"""What every benchmark shares: the record of a run, writing a result and its table, timing.

Every result file in ``benchmarks/results/`` is one JSON object whose key
:data:`RUN_KEY` holds the record of the run that measured it
(:func:`run_record`: the command line, the git commit, the date and the
machine), beside the benchmark's own payload; its printed table is written
beside it as ``.txt``, under a header saying the same. A benchmark script
imports this module from beside it (``import harness``), which works because
Python puts a script's own folder first on ``sys.path``.

>>> sorted(run_record(["benchmarks/x.py"])["machine"])
['cores', 'cpu', 'gpu', 'platform', 'python', 'threads', 'torch']
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
#: The key of the run record in every result JSON.
RUN_KEY = "run"
T = TypeVar("T")


def cpu_model() -> str | None:
    """The CPU's model name, from ``/proc/cpuinfo`` where there is one, else from ``platform``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def git_commit(root: Path = ROOT) -> str | None:
    """The commit checked out in ``root``, with ``-dirty`` when tracked code differs from it.

    Changes under ``benchmarks/results/`` do not count: a benchmark that writes its
    result as it goes would otherwise call the next run's code dirty.

    Returns:
        The 40-hex sha (maybe with ``-dirty``), or None outside a git checkout.
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = ["git", "status", "--porcelain", "--untracked-files=no"]
        changes = subprocess.run(
            [*status, "--", ".", ":(exclude)benchmarks/results"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if changes else "")


def machine(threads: int | None = None) -> dict[str, Any]:
    """What the numbers are measured on.

    Args:
        threads: the torch threads each measuring process used, when it is not
            this process's ``torch.get_num_threads()`` (e.g. workers of one thread).

    Returns:
        ``cpu`` (model name), ``cores`` (``os.cpu_count()``), ``threads``, ``torch``,
        ``python``, ``platform`` and ``gpu`` (the CUDA device's name, or None).
    """
    import torch  # here, so that --help and --table do not wait for it

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_record(argv: list[str] | None = None, threads: int | None = None) -> dict[str, Any]:
    """The record of this run: command line, commit, date (ISO 8601, UTC) and machine.

    Args:
        argv: the command line (default: ``python`` and ``sys.argv``).
        threads: passed to :func:`machine`.
    """
    return {
        "command": ["python", *(sys.argv if argv is None else argv)],
        "commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine(threads),
    }


def header(run: Mapping[str, Any]) -> str:
    """Two lines saying which run a table shows: its command, then commit, date and machine."""
    command = run.get("command")
    if isinstance(command, list):
        command = shlex.join(command)
    m = run.get("machine") or {}
    commit = run.get("commit") or "unknown"
    commit = commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")
    where = "committed in" if run.get("commit_note") else "at commit"

    def known(value: Any) -> str:
        return "?" if value is None else str(value)

    cpu = m.get("cpu") or "CPU not recorded" + (f" ({m['platform']})" if m.get("platform") else "")
    return (
        f"# {command or '(command not recorded)'}\n"
        f"# {where} {commit}, {run.get('date') or 'date not recorded'}; {cpu}, "
        f"cores {known(m.get('cores'))}, torch threads {known(m.get('threads'))}, "
        f"torch {known(m.get('torch'))}" + (f", {m['gpu']}" if m.get("gpu") else "")
    )


def write_result(
    out: Path, payload: Mapping[str, Any], table: str | None = None, run: dict | None = None
) -> str | None:
    """Write ``{RUN_KEY: run, **payload}`` to ``out`` and the table, under its header, beside it.

    Args:
        out: the JSON file; the table goes to ``out.with_suffix(".txt")``.
        payload: the benchmark's own results (a key :data:`RUN_KEY` in it is replaced).
        table: the printed table, or None to write no ``.txt``.
        run: the run record (default: a fresh :func:`run_record`).

    Returns:
        The text written to the ``.txt`` (header and table), or None.
    """
    run = run_record() if run is None else run
    report = {RUN_KEY: run, **{k: v for k, v in payload.items() if k != RUN_KEY}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if table is None:
        return None
    text = header(run) + "\n" + table
    out.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    return text


def read_result(path: Path) -> dict[str, Any]:
    """A result JSON as written by :func:`write_result`."""
    return json.loads(path.read_text(encoding="utf-8"))


def output_options(parser: argparse.ArgumentParser, out: Path | None = None) -> None:
    """Add ``--out`` (the result JSON) and ``--table`` (re-render its table, measure nothing)."""
    parser.add_argument(
        "--out", type=Path, default=out, help="the result JSON (its table goes beside it as .txt)"
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="measure nothing: print the table of --out and write it again beside it",
    )


def table_only(
    parser: argparse.ArgumentParser, args: argparse.Namespace, table: Callable[[dict], str]
) -> bool:
    """Insist on ``--out``; with ``--table``, print and write its table again. Returns ``--table``.

    A script calls it right after parsing and stops when it returns True.
    """
    if args.out is None:
        parser.error("--out is required")
    if args.table:
        print(rerender(args.out, table))
    return args.table


def rerender(out: Path, table: Callable[[dict], str]) -> str:
    """Write the table of the result ``out`` again, under its recorded run's header; return it."""
    report = read_result(out)
    text = header(report[RUN_KEY]) + "\n" + table(report)
    out.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    return text


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the wall-clock seconds it took."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def side_by_side(jobs: Mapping[str, tuple[list[str], Path]]) -> dict[str, Any]:
    """Start every command at once, wait for all, and read the JSON each one wrote.

    Benchmarks that compare two trainings run them *beside each other*, so both
    share the machine's speed at that moment.

    Args:
        jobs: name → (command line, the JSON file it writes).

    Returns:
        name → the JSON each command wrote.

    Raises:
        RuntimeError: a command failed or wrote nothing.
    """
    procs = {name: (subprocess.Popen(cmd), part) for name, (cmd, part) in jobs.items()}
    results = {}
    for name, (proc, part) in procs.items():
        if proc.wait() != 0 or not part.is_file():
            raise RuntimeError(f"{name}: the worker failed with exit code {proc.returncode}")
        results[name] = json.loads(part.read_text())
    return results
