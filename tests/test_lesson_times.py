"""Lesson times: timed, merged by key and tabled (benchmarks/), written into the docs (tools/)."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

_ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the benchmark imports the harness, the tool the benchmark
    spec.loader.exec_module(module)
    return module


_load("harness", _ROOT / "benchmarks" / "harness.py")
lt = _load("lesson_times", _ROOT / "benchmarks" / "lesson_times.py")
docs = _load("lesson_times_docs", _ROOT / "tools" / "lesson_times_docs.py")


def _run(lesson: str, mode: str, seconds: float, copy: str = "lesson", ok: bool = True) -> dict:
    return {
        "lesson": lesson,
        "copy": copy,
        "mode": mode,
        "label": "",
        "device": "cpu",
        "seconds": seconds,
        "ok": ok,
        "run": {"date": "2025-01-02T10:00:00+00:00", "machine": {"cores": 2, "gpu": None}},
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
    text = f"# Guide\n\n{docs.BEGIN}\nOLD TABLE\n{docs.END}\n\nmore\n"
    guide.write_text(text, encoding="utf-8")
    data = {"runs": [_run("01_a", "fast", 9.6)]}
    assert docs.update_guide(data, guide)
    text = guide.read_text(encoding="utf-8")
    assert "| 01_a | 10 s |" in text and "Measured on 2 CPU cores, 2025-01-02:" in text
    assert text.endswith(f"{docs.END}\n\nmore\n") and "OLD TABLE" not in text
    assert not docs.update_guide(data, guide)
    mine = {**_run("01_a", "full", 99.0), "label": "mine", "settings": {"MODEL": '"mine"'}}
    assert docs.update_guide({"runs": [*data["runs"], mine]}, guide)
    assert 'Columns marked *mine* ran with `MODEL = "mine"`.' in guide.read_text(encoding="utf-8")
    guide.write_text("nothing", encoding="utf-8")
    with pytest.raises(ValueError, match="no lesson-times block"):
        docs.update_guide(data, guide)


def test_update_readme_fills_the_time_column(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Course\n\n"
        f"| # | lesson | what you do | {docs.README_COLUMN} |\n"
        "|---|---|---|---|\n"
        "| 01 | [A](a.ipynb) | a \\| b | old |\n"
        "| 02 | [B](b.ipynb) | b | old |\n"
        "| 03 | [C](c.ipynb) | c | old |\n"
        "\nAfter the table: | 01 | stays.\n",
        encoding="utf-8",
    )
    mine = {**_run("02_b", "full", 130.0), "label": "mine"}
    failed = _run("03_c", "full", 30.0, ok=False)
    data = {"runs": [_run("01_a", "full", 75.0), _run("02_b", "full", 61.0), mine, failed]}
    assert docs.update_readme(data, readme)
    lines = readme.read_text(encoding="utf-8").splitlines()
    assert lines[4] == "| 01 | [A](a.ipynb) | a \\| b | 1 min 15 s |"
    assert lines[5] == '| 02 | [B](b.ipynb) | b | 1 min 01 s; with `MODEL = "mine"`: 2 min 10 s |'
    assert lines[6] == "| 03 | [C](c.ipynb) | c | not measured |"  # a failed run is no time
    assert lines[-1] == "After the table: | 01 | stays."
    assert not docs.update_readme(data, readme)
    readme.write_text("no table", encoding="utf-8")
    with pytest.raises(ValueError, match="no lesson table"):
        docs.update_readme(data, readme)


def test_the_readme_has_the_lesson_table() -> None:
    assert f"| {docs.README_COLUMN} |" in docs.README.read_text(encoding="utf-8")


def test_the_teacher_guide_has_the_block() -> None:
    text = docs.GUIDE.read_text(encoding="utf-8")
    assert docs.BEGIN in text and docs.END in text


def test_the_guide_and_readme_are_up_to_date_with_the_committed_times(tmp_path: Path) -> None:
    data = json.loads(docs.RESULTS.read_text(encoding="utf-8"))
    for update, path in ((docs.update_guide, docs.GUIDE), (docs.update_readme, docs.README)):
        copy = tmp_path / path.name
        copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        assert not update(data, copy), f"run tools/lesson_times_docs.py: {path.name} is stale"


def test_select_names_lessons_by_number_and_refuses_unknown_ones() -> None:
    chosen = lt.select(["01"], student=True)
    assert [(c, p.parent.name, p.name[:2]) for c, p in chosen] == [
        ("lesson", "notebooks", "01"),
        ("student", "student", "01"),
    ]
    with pytest.raises(ValueError, match="match no notebook"):
        lt.select(["77"], student=False)


def test_apply_settings_replaces_a_switch_of_the_first_code_cell() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell('MODEL = "in prose"'),
        nbformat.v4.new_code_cell('import torch\nMODEL = "pretrained"  # or "mine"\nN = 3'),
        nbformat.v4.new_code_cell('MODEL = "later"'),
    ]
    lt.apply_settings(nb, {"MODEL": '"mine"', "N": "5"})
    assert nb.cells[1].source == 'import torch\nMODEL = "mine"\nN = 5'
    assert nb.cells[0].source == 'MODEL = "in prose"' and nb.cells[2].source == 'MODEL = "later"'
    with pytest.raises(ValueError, match="no line 'STEPS = ...'"):
        lt.apply_settings(nb, {"STEPS": "1"})
    with pytest.raises(ValueError, match="not a Python literal"):
        lt.apply_settings(nb, {"MODEL": "mine"})


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
    assert path.read_bytes() == before  # the notebook is never rewritten, not even by keep
    assert not lt.run_notebook(path, "fast", {}, "fresh", timeout=60, keep=True)["ok"]
    assert path.read_bytes() == before  # ... when a cell failed
    nb.cells = nb.cells[:1]
    nbformat.write(nb, path)
    kept = lt.run_notebook(path, "fast", {}, "fresh", timeout=60, keep=True)
    assert kept["ok"] and nbformat.read(path, as_version=4).cells[0].outputs[0].text == "1\n"
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.environ['COURSE_DATA_DIR'])")]
    nbformat.write(nb, path)
    env = {"COURSE_DATA_DIR": "some/where"}  # relative to here, not to the notebook's folder
    kept = lt.run_notebook(path, "fast", env, "fresh", timeout=60, keep=True)
    text = nbformat.read(path, as_version=4).cells[0].outputs[0].text
    assert kept["ok"] and text == f"{Path('some/where').resolve()}\n"
    with pytest.raises(ValueError, match="cannot be combined"):
        lt.run_notebook(path, "fast", {}, "fresh", keep=True, settings={"X": "1"})
    nb.cells = [nbformat.v4.new_code_cell("import os\nos._exit(1)")]  # the kernel dies
    nbformat.write(nb, path)
    died = lt.run_notebook(path, "fast", {}, "fresh", timeout=60)
    assert not died["ok"] and died["error"]  # reported as a failed run, not a crash
    with pytest.raises(ValueError, match="mode must be"):
        lt.run_notebook(path, "medium", {}, "fresh")


def _tiny(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


def test_a_kept_run_carries_its_figures_and_a_timed_run_draws_nowhere(tmp_path: Path) -> None:
    path = tmp_path / "99_figure.ipynb"
    draw = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 1))\n"
    draw += "ax.plot([0, 1])\nplt.show()"
    _tiny(path, draw, "print(fig.dpi)")
    before = path.read_bytes()
    assert lt.run_notebook(path, "fast", {}, "fresh", timeout=60)["ok"]
    assert path.read_bytes() == before  # a timed run writes nothing back
    assert lt.run_notebook(path, "fast", {}, "fresh", timeout=60, keep=True)["ok"]
    cells = nbformat.read(path, as_version=4).cells
    (figure,) = [o for o in cells[0].outputs if "image/png" in o.get("data", {})]
    assert cells[1].outputs[0].text == f"{float(lt.KEEP_DPI)}\n"
    assert base64.b64decode(figure.data["image/png"]).startswith(b"\x89PNG")
