"""``benchmarks/``: one harness, and every committed result carries the record of its run."""

from __future__ import annotations

import ast
import datetime as dt
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RESULTS = BENCHMARKS / "results"
#: Modules of benchmarks/ that are not scripts: the harness, and the UvA model glow.py trains.
NOT_SCRIPTS = {"harness.py", "uva_multiscale.py"}
COMMIT = re.compile(r"^[0-9a-f]{40}(-dirty)?$")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the scripts import it by this name
    spec.loader.exec_module(module)
    return module


harness = _load("harness")


def _records(path: Path, report: dict) -> list[dict]:
    """The run records of a result: its own, and those of the runs it gathers."""
    found = [report[harness.RUN_KEY], *report.get("earlier_runs", [])]
    if path.name == "lesson_times.json":  # runs of many commands, each with its record
        found += [r[harness.RUN_KEY] for r in report["runs"]]
    if isinstance(report.get("architectures"), dict):
        found.append(report["architectures"][harness.RUN_KEY])
    return found


def _check(run: dict, where: str) -> None:
    assert {"command", "commit", "date", "machine"} <= set(run), where
    assert {"cpu", "cores", "threads", "torch"} <= set(run["machine"]), where
    assert run["commit"] is None or COMMIT.match(run["commit"]), where
    if run["date"] is not None:
        dt.date.fromisoformat(run["date"][:10])  # an ISO date, maybe with a time
    assert run["command"] is None or isinstance(run["command"], (str, list)), where


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_every_result_records_its_run_under_the_harness_keys(path: Path) -> None:
    report = json.loads(path.read_text(encoding="utf-8"))
    for k, run in enumerate(_records(path, report)):
        _check(run, f"{path.name}, record {k}")
    table = path.with_suffix(".txt")
    if table.is_file():  # the table says which run it shows
        header = harness.header(report[harness.RUN_KEY])
        assert table.read_text(encoding="utf-8").startswith(header + "\n")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_benchmark_script_uses_the_harness() -> None:
    scripts = sorted(p for p in BENCHMARKS.glob("*.py") if p.name not in NOT_SCRIPTS)
    assert len(scripts) >= 7
    for path in scripts:
        assert "harness" in _imports(path), f"{path.name} does not import the harness"


def test_a_run_in_this_checkout_records_its_commit_date_and_machine() -> None:
    run = harness.run_record(["benchmarks/x.py", "--out", "x.json"], threads=3)
    assert run["command"] == ["python", "benchmarks/x.py", "--out", "x.json"]
    assert COMMIT.match(run["commit"]) and len(run["commit"].split("-")[0]) == 40
    date = dt.datetime.fromisoformat(run["date"])
    assert date.utcoffset() == dt.timedelta(0)
    assert run["machine"]["threads"] == 3 and run["machine"]["cores"] >= 1
    _check(run, "run_record")


def test_outside_a_checkout_the_commit_is_unknown(tmp_path: Path) -> None:
    assert harness.git_commit(tmp_path) is None


def test_a_written_result_reads_back_and_its_table_renders_again(tmp_path: Path) -> None:
    run = {
        "command": ["python", "benchmarks/x.py"],
        "commit": "0" * 40,
        "date": "2026-01-02T03:04:05+00:00",
        "machine": {"cpu": "a CPU", "cores": 2, "threads": 1, "torch": "2.0"},
    }
    out = tmp_path / "x.json"
    text = harness.write_result(out, {"value": 1.5, harness.RUN_KEY: "replaced"}, "v 1.5", run=run)
    assert harness.read_result(out) == {harness.RUN_KEY: run, "value": 1.5}
    assert text == out.with_suffix(".txt").read_text(encoding="utf-8").rstrip("\n")
    assert text.splitlines()[0] == "# python benchmarks/x.py"
    assert "000000000000, 2026-01-02" in text and text.endswith("\nv 1.5")
    assert harness.rerender(out, lambda r: f"v {r['value']}") == text
    assert harness.write_result(tmp_path / "y.json", {"value": 2}, run=run) is None
    assert not (tmp_path / "y.txt").exists()


def test_timed_returns_the_value_and_the_seconds() -> None:
    value, seconds = harness.timed(lambda: 42)
    assert value == 42 and 0 <= seconds < 1


def test_side_by_side_reads_each_workers_json_and_reports_a_failure(tmp_path: Path) -> None:
    def job(name: str, code: str) -> tuple[list[str], Path]:
        part = tmp_path / f"{name}.json"
        return [sys.executable, "-c", code.format(part=str(part))], part

    ok = "import json; json.dump({{'n': 1}}, open({part!r}, 'w'))"
    assert harness.side_by_side({"a": job("a", ok), "b": job("b", ok)}) == {
        "a": {"n": 1},
        "b": {"n": 1},
    }
    with pytest.raises(RuntimeError, match="c: the worker failed"):
        harness.side_by_side({"c": job("c", "raise SystemExit(3)")})


def test_lesson_09s_study_covers_its_grid_and_saves_the_samples_it_draws() -> None:
    study = _load("composite_study")
    report = json.loads((RESULTS / "composite_study.json").read_text(encoding="utf-8"))
    assert [r["key"] for r in report["points"]] == [study.key(p) for p in study.points()]
    assert report["alphas"] == list(study.ALPHAS) and report["betas"] == list(study.BETAS)
    assert {r["classic"] for r in report["points"] if r["classic"]} == set("abcd")
    for row in [report["start"], *report["points"]]:
        assert {"bpd", "channel_gap", "recon", "recognisable", "single_background"} <= set(row)
    for row in report["points"]:  # the lesson draws the curves of (a)-(d) from these
        if row["classic"]:
            assert {len(v) for v in row["terms"].values()} == {report["steps"]}
    samples = torch.load(RESULTS / "composite_study_samples.pt", weights_only=True)
    assert sorted(samples) == ["a", "b", "c", "d", "start"]
    assert {(tuple(v.shape), v.dtype) for v in samples.values()} == {((36, 3, 28, 28), torch.uint8)}
    rendered = (RESULTS / "composite_study.txt").read_text(encoding="utf-8")
    assert rendered.endswith(study.table(report) + "\n")


def test_lesson_09s_design_result_compares_both_designs() -> None:
    design = _load("coloured_design")
    report = json.loads((RESULTS / "coloured_design.json").read_text(encoding="utf-8"))
    assert [r["dataset"] for r in report["designs"]] == list(design.DESIGNS)
    assert report["single_background"] == design.SINGLE_BACKGROUND
