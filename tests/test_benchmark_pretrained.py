"""``benchmarks/pretrained.py``: the committed table is the committed report's."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "bench_pretrained", _ROOT / "benchmarks" / "pretrained.py"
)
assert _spec is not None and _spec.loader is not None
B = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = B
_spec.loader.exec_module(B)

RESULTS = _ROOT / "benchmarks" / "results"


def test_the_committed_table_is_the_committed_reports() -> None:
    report = json.loads((RESULTS / "pretrained.json").read_text())
    text, ok = B.table(report)
    assert (RESULTS / "pretrained.txt").read_text() == text + "\n"
    assert ok  # every shipped model's figures reproduced and it loads within the target


def test_a_figure_that_does_not_reproduce_is_flagged() -> None:
    report = json.loads((RESULTS / "pretrained.json").read_text())
    row = next(r for r in report["models"] if "measured" in r)
    row["measured"] = {
        **row["measured"],
        "test_bits_per_dim": row["measured"]["test_bits_per_dim"] + 0.01,
    }
    row["reproduced"] = False
    text, ok = B.table(report)
    assert not ok and "MISMATCH" in text
