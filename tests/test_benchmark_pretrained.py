"""``benchmarks/pretrained.py``: the committed table is the committed report's."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

_ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _load("harness", _ROOT / "benchmarks" / "harness.py")  # the script imports it
B = _load("bench_pretrained", _ROOT / "benchmarks" / "pretrained.py")

RESULTS = _ROOT / "benchmarks" / "results"


def test_the_committed_table_is_the_committed_reports() -> None:
    report = json.loads((RESULTS / "pretrained.json").read_text())
    text, ok = B.table(report)
    header = harness.header(report[harness.RUN_KEY])
    assert (RESULTS / "pretrained.txt").read_text() == f"{header}\n{text}\n"
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
