"""Benchmark: two torch processes sharing the cores, with and without passive OpenMP waiting.

``make test`` runs two test processes (pytest-xdist) and lessons set 2 threads.
This measures what that costs: the seconds one process takes for a fixed amount
of work (gradients of glow-mnist's ``log p`` for 64 digits), alone and with a
second identical process beside it, with OpenMP's default waiting (idle
threads spin) and with ``OMP_WAIT_POLICY=PASSIVE`` (they sleep).

Usage::

    .venv/bin/python benchmarks/threads.py --out benchmarks/results/threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

#: (name, threads per process, processes at once, OMP_WAIT_POLICY or None).
CASES = [
    ("alone, 2 threads", 2, 1, None),
    ("alone, 1 thread", 1, 1, None),
    ("alone, 2 threads, passive", 2, 1, "PASSIVE"),
    ("pair, 2 threads each", 2, 2, None),
    ("pair, 2 threads each, passive", 2, 2, "PASSIVE"),
    ("pair, 1 thread each", 1, 2, None),
]


def work(threads: int, repeats: int) -> float:
    """Seconds for ``repeats`` gradients of glow-mnist's log p on 64 digits (after a warm-up)."""
    import torch

    from course_utils import pretrained
    from course_utils.inpaint.flow import coordinates, log_prob_and_grad

    torch.set_num_threads(threads)
    coords = coordinates(pretrained.load("glow-mnist"))
    g = torch.Generator().manual_seed(0)
    y = coords.to_model(torch.rand(64, 1, 28, 28, generator=g) * 0.9 + 0.05)
    mask = torch.rand(64, 1, 28, 28, generator=g) < 0.3
    log_prob_and_grad(coords.log_prob, y, mask)
    start = time.perf_counter()
    for _ in range(repeats):
        log_prob_and_grad(coords.log_prob, y, mask)
    return time.perf_counter() - start


def run_case(threads: int, processes: int, policy: str | None, repeats: int) -> list[float]:
    """Start ``processes`` copies of :func:`work` at once; each one's seconds."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, __file__, "--work", str(threads), "--repeats", str(repeats)]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the JSON (and .txt) here")
    parser.add_argument("--repeats", type=int, default=15, help="gradients per process")
    parser.add_argument("--work", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work is not None:
        print(work(args.work, args.repeats))
        return 0
    rows = []
    for name, threads, processes, policy in CASES:
        seconds = run_case(threads, processes, policy, args.repeats)
        rows.append(
            {
                "case": name,
                "threads": threads,
                "processes": processes,
                "omp_wait_policy": policy or "default",
                "seconds": [round(s, 2) for s in seconds],
            }
        )
    alone = rows[0]["seconds"][0]
    lines = [
        f"{args.repeats} gradients of glow-mnist's log p on 64 digits, per process "
        f"({platform.machine()}, {os.cpu_count()} cores)",
        f"{'case':32s} {'seconds each':>14s} {'x alone, 2 threads':>19s}",
    ]
    for r in rows:
        worst = max(r["seconds"])
        shown = " / ".join(f"{s:.1f}" for s in r["seconds"])
        lines.append(f"{r['case']:32s} {shown:>14s} {worst / alone:19.2f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(
            json.dumps({"repeats": args.repeats, "cores": os.cpu_count(), "rows": rows}, indent=1)
            + "\n"
        )
        args.out.with_suffix(".txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
