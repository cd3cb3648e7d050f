"""benchmarks/lesson_times.py: runs are timed, merged by key, tabled and put in the guide."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "lesson_times.py"
_spec = importlib.util.spec_from_file_location("lesson_times", _PATH)
lt = importlib.util.module_from_spec(_spec)
sys.modules["lesson_times"] = lt
_spec.loader.exec_module(lt)


def _run(lesson: str, mode: str, seconds: float, copy: str = "lesson", ok: bool = True) -> dict:
    return {
        "lesson": lesson,
        "copy": copy,
        "mode": mode,
        "label": "",
        "device": "cpu",
        "date": "2025-01-02",
        "seconds": seconds,
        "ok": ok,
        "machine": {"cpu_count": 2, "gpu": None},
    }


def test_merge_replaces_runs_with_the_same_key() -> None:
    old = [_run("01_a", "fast", 10.0), _run("01_a", "full", 100.0)]
    merged = lt.merge(old, [_run("01_a", "fast", 12.0), _run("02_b", "fast", 5.0)])
    assert [(r["lesson"], r["mode"], r["seconds"]) for r in merged] == [
        ("01_a", "fast", 12.0),
        ("01_a", "full", 100.0),
        ("02_b", "fast", 5.0),
    ]


def test_table_has_a_row_per_lesson_and_a_column_per_mode() -> None:
    runs = [
        _run("01_a", "full", 125.0),
        _run("01_a", "fast", 9.6),
        _run("01_a", "fast", 11.0, copy="student"),
        _run("02_b", "fast", 5.0, ok=False),
    ]
    assert lt.table(runs).splitlines() == [
        "| lesson | fast (cpu) | full (cpu) |",
        "|---|---:|---:|",
        "| 01_a | 10 s | 2 min 05 s |",
        "| 01_a (student copy) | 11 s | – |",
        "| 02_b | 5 s (failed) | – |",
    ]
    assert lt.table([]) == "(No lesson has been timed yet.)"


def test_update_guide_fills_the_marked_block(tmp_path: Path) -> None:
    guide = tmp_path / "teaching.md"
    guide.write_text(f"# Guide\n\n{lt.BEGIN}\nOLD TABLE\n{lt.END}\n\nmore\n", encoding="utf-8")
    data = {"runs": [_run("01_a", "fast", 9.6)]}
    assert lt.update_guide(data, guide)
    text = guide.read_text(encoding="utf-8")
    assert "| 01_a | 10 s |" in text and "Measured on 2 CPU cores, 2025-01-02" in text
    assert text.endswith(f"{lt.END}\n\nmore\n") and "OLD TABLE" not in text
    assert not lt.update_guide(data, guide)
    guide.write_text("nothing", encoding="utf-8")
    with pytest.raises(ValueError, match="no lesson-times block"):
        lt.update_guide(data, guide)


def test_the_teacher_guide_has_the_block() -> None:
    text = lt.GUIDE.read_text(encoding="utf-8")
    assert lt.BEGIN in text and lt.END in text


def test_select_names_lessons_by_number_and_refuses_unknown_ones() -> None:
    chosen = lt.select(["01"], student=True)
    assert [(c, p.parent.name, p.name[:2]) for c, p in chosen] == [
        ("lesson", "notebooks", "01"),
        ("student", "student", "01"),
    ]
    with pytest.raises(ValueError, match="match no notebook"):
        lt.select(["77"], student=False)


@pytest.mark.slow
def test_run_notebook_times_a_tiny_notebook_and_reports_a_failure(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "# NBVAL_IGNORE_OUTPUT\nimport os\nprint(os.environ['COURSE_FAST'])"
        ),
        nbformat.v4.new_code_cell("raise RuntimeError('boom')"),
    ]
    path = tmp_path / "99_tiny.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    result = lt.run_notebook(path, "fast", {}, "fresh", timeout=60)
    assert not result["ok"] and "boom" in result["error"]
    assert result["seconds"] >= result["kernel_start_seconds"] >= 0
    assert {c["first_line"] for c in result["slowest_cells"]} <= {
        "import os",
        "raise RuntimeError('boom')",
    }
    assert path.read_bytes() == before  # the notebook is never rewritten
    with pytest.raises(ValueError, match="mode must be"):
        lt.run_notebook(path, "medium", {}, "fresh")
