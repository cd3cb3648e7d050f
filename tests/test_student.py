"""Student notebooks: generated from the lessons, stubs in place of solutions, no outputs.

The committed ``student/`` must be exactly what ``python -m course_utils.student``
writes; a tiny synthetic lesson shows, in a real kernel, that a stubbed
exercise says "not done yet" and the lesson goes on with the reference.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from course_utils import student
from course_utils.core import config
from course_utils.student import BEGIN, END, stub_source

ROOT = Path(__file__).resolve().parent.parent
LESSONS = student.lessons()


def test_committed_student_notebooks_are_what_the_command_writes() -> None:
    assert LESSONS, "no lesson notebooks found"
    stale = student.generate(check=True)
    assert not stale, f"student/ is stale ({stale}): run `make student`"
    assert sorted(p.name for p in (ROOT / "student").glob("*.ipynb")) == [p.name for p in LESSONS]
    # The record of what the command wrote is committed with the copies, and matches them.
    assert (ROOT / "student" / student.RECORD).is_file()


def _solution_lines(source: str) -> tuple[set[str], set[str]]:
    """(stripped lines inside solution blocks, stripped lines outside them)."""
    inside, outside, opened = set(), set(), False
    for line in source.split("\n"):
        marker = line.strip()
        if marker in (BEGIN, END):
            opened = marker == BEGIN
        elif marker:
            (inside if opened else outside).add(marker)
    return inside, outside


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_student_copy_has_stubs_no_solutions_and_no_outputs(lesson: Path) -> None:
    solution = nbformat.read(lesson, as_version=4)
    copy = nbformat.read(ROOT / "student" / lesson.name, as_version=4)
    assert copy.metadata.get("kernelspec") == solution.metadata.get("kernelspec")
    assert "widgets" not in copy.metadata
    cells = {c.id: c for c in copy.cells}
    for cell in copy.cells:
        assert BEGIN not in cell.source and END not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        assert "execution" not in cell.metadata
    for cell in solution.cells:
        mine = cells[cell.id]
        if cell.cell_type == "code":
            assert mine.source == stub_source(cell.source)[0]
        inside, outside = _solution_lines(cell.source)
        leaked = (inside - outside) & set(line.strip() for line in mine.source.split("\n"))
        assert not leaked, f"{lesson.name}, cell {cell.id}: solution lines left: {leaked}"
        if inside:
            exercise_id = cell.source.split("\n")[0].split()[-1]
            assert f'raise NotImplementedError("exercise {exercise_id}")' in mine.source
    has_exercises = any(_solution_lines(c.source)[0] for c in solution.cells)
    assert (student.NOTE_ID in cells) == has_exercises
    assert len(copy.cells) == len(solution.cells) + has_exercises


CELL = """# EXERCISE 99.1
import math


def area(r):
    \"\"\"The disc's area.\"\"\"
    ### BEGIN SOLUTION
    return math.pi * r**2
    ### END SOLUTION


class Box:
    def volume(self, a):
        if a > 0:
            ### BEGIN SOLUTION
            v = a**3
            return v
            ### END SOLUTION
        return 0.0

%time area = check("99.1", area)
"""


def test_stub_source_replaces_each_block_at_its_indentation() -> None:
    new, exercise_id = stub_source(CELL)
    assert exercise_id == "99.1"
    assert new == CELL.replace(
        "    ### BEGIN SOLUTION\n    return math.pi * r**2\n    ### END SOLUTION\n",
        '    raise NotImplementedError("exercise 99.1")\n',
    ).replace(
        "            ### BEGIN SOLUTION\n            v = a**3\n            return v\n"
        "            ### END SOLUTION\n",
        '            raise NotImplementedError("exercise 99.1")\n',
    )
    assert stub_source("x = 1\nprint(x)") == ("x = 1\nprint(x)", None)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (
            "def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION",
            "not '# EXERCISE NN.k'",
        ),
        ("# EXERCISE 99.1\ndef f():\n    ### BEGIN SOLUTION\n    pass", "never closed"),
        ("# EXERCISE 99.1\ndef f():\n    pass\n    ### END SOLUTION", "without a"),
        (
            "# EXERCISE 99.1\ndef f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n"
            "    ### END SOLUTION",
            "inside the block of line 3",
        ),
        ("# EXERCISE 99.1\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "not inside a function"),
        ("# EXERCISE 99.1\ndef f():\n    return 1", "has no '### BEGIN SOLUTION' block"),
        ("# EXERCISE 2.1\ndef f():\n    return 1", "is not '# EXERCISE NN.k'"),
        (
            "# EXERCISE 99.1\ndef f(x):\n    ### BEGIN SOLUTION\n    y = (x +\n"
            "    ### END SOLUTION\n        1)\n    return y",
            "does not parse",
        ),
    ],
)
def test_stub_source_refuses_bad_cells_naming_them(source: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        stub_source(source, "99_x.ipynb, cell 3")
    assert str(info.value).startswith("99_x.ipynb, cell 3: ")


def _lesson(tmp_path: Path) -> Path:
    """A tiny lesson with one exercise, saved with an output and timings as a run leaves it."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["widgets"] = {"state": {}}
    setup = (
        "from course_utils.exercises import Exercise, check, expect_close, hint, register\n"
        "\n"
        "def ref(x):\n    return x * x\n\n"
        "def checker(fn):\n    expect_close(fn(3.0), 9.0, 'square(3)')\n\n"
        "_ = register(Exercise('99.1', 'Square', ref, checker, [abs], 'Multiply.', 'x * x'))"
    )
    exercise = (
        "# EXERCISE 99.1\ndef square(x):\n    ### BEGIN SOLUTION\n    return x**2\n"
        "    ### END SOLUTION\n\nsquare = check('99.1', square)\nhint('99.1')"
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny lesson"),
        nbformat.v4.new_code_cell(setup),
        nbformat.v4.new_code_cell(
            exercise,
            execution_count=2,
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="✓ ...\n")],
        ),
        nbformat.v4.new_code_cell("print('square(4) =', square(4.0))"),
    ]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
        cell.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    path = tmp_path / "notebooks" / "99_tiny.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


def _run(path: Path) -> str:
    """Execute a notebook in a fresh kernel of this interpreter; all its stdout."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "COURSE_FAST": "1", "MPLBACKEND": "Agg"}
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env=env)  # jupyter_client starts "python" kernels with this interpreter
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_a_student_copy_runs_and_says_not_done(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path)
    out = tmp_path / "student"
    assert student.main(["--notebooks", str(lesson.parent), "--out", str(out)]) == 0
    assert student.generate(lesson.parent, out, check=True) == []
    copy = out / lesson.name
    nb = nbformat.read(copy, as_version=4)
    assert [c.id for c in nb.cells][:2] == ["cell-0", student.NOTE_ID]
    assert "widgets" not in nb.metadata and nb.metadata.kernelspec.name == "python3"
    text = _run(copy)
    assert "… exercise 99.1: not done yet" in text
    assert "square(4) = 16.0" in text  # the reference took over
    text = _run(lesson)
    assert "✓ exercise 99.1 (Square): correct" in text and "square(4) = 16.0" in text


def test_generate_removes_stale_copies_and_check_reports(tmp_path: Path, capsys) -> None:
    lesson = _lesson(tmp_path)
    out = tmp_path / "student"
    out.mkdir()
    (out / "98_other.ipynb").write_text("{}", encoding="utf-8")  # not the command's: left alone
    assert student.main(["--check", "--notebooks", str(lesson.parent), "--out", str(out)]) == 1
    assert "stale (99_tiny.ipynb, .generated.json)" in capsys.readouterr().out
    assert student.generate(lesson.parent, out) == ["99_tiny.ipynb"]
    first = (out / "99_tiny.ipynb").read_bytes()
    assert student.generate(lesson.parent, out) == []
    assert (out / "99_tiny.ipynb").read_bytes() == first
    # The lesson is renamed: the command's own copy of the old name goes, the other file stays.
    lesson.rename(lesson.with_name("97_tiny.ipynb"))
    assert student.generate(lesson.parent, out) == ["97_tiny.ipynb", "99_tiny.ipynb"]
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["97_tiny.ipynb", "98_other.ipynb"]
    assert (out / "98_other.ipynb").read_text(encoding="utf-8") == "{}"


# ------------------------------------------------- a learner's work is never lost


def _solve(copy: Path) -> bytes:
    """Do what a learner does: write the exercise's code in the copy and save it."""
    nb = nbformat.read(copy, as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("# EXERCISE"))
    cell.source = cell.source.replace('raise NotImplementedError("exercise 99.1")', "return x * x")
    nbformat.write(nb, copy)
    return copy.read_bytes()


def test_regenerating_keeps_a_copy_a_learner_changed(tmp_path: Path, capsys) -> None:
    lesson = _lesson(tmp_path)
    out = tmp_path / "student"
    args = ["--notebooks", str(lesson.parent), "--out", str(out)]
    assert student.main(args) == 0
    work = _solve(out / lesson.name)
    # The lesson changes upstream, and `make student` runs again: the work stays, it says so.
    nb = nbformat.read(lesson, as_version=4)
    nb.cells[0].source += "\n\nA new paragraph."
    nbformat.write(nb, lesson)
    assert student.main(args) == 1
    message = capsys.readouterr().err
    assert str(out / lesson.name) in message and "--force" in message
    assert (out / lesson.name).read_bytes() == work
    with pytest.raises(student.StudentWorkKept):
        student.generate(lesson.parent, out)
    assert student.generate(lesson.parent, out, check=True) == [lesson.name]
    assert (out / lesson.name).read_bytes() == work
    # --force writes the new copy and keeps the learner's beside it.
    assert student.main([*args, "--force"]) == 0
    assert (out / "99_tiny.yours.ipynb").read_bytes() == work
    assert "A new paragraph." in (out / lesson.name).read_text(encoding="utf-8")
    assert student.generate(lesson.parent, out, check=True) == []
    # Solved again and forced again: the first kept copy is not overwritten either.
    second = _solve(out / lesson.name)
    assert student.main([*args, "--force"]) == 0
    assert (out / "99_tiny.yours.ipynb").read_bytes() == work
    assert (out / "99_tiny.yours-2.ipynb").read_bytes() == second


def test_a_changed_copy_of_a_removed_lesson_is_kept(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path)
    out = tmp_path / "student"
    student.generate(lesson.parent, out)
    work = _solve(out / lesson.name)
    other = lesson.with_name("97_other.ipynb")
    lesson.rename(other)
    with pytest.raises(student.StudentWorkKept, match="99_tiny.ipynb"):
        student.generate(other.parent, out)
    assert (out / "99_tiny.ipynb").read_bytes() == work
    assert (out / "97_other.ipynb").is_file()


@pytest.mark.parametrize("folder", ["notebook", "empty", "missing/deeper"])
def test_a_missing_or_empty_lesson_folder_is_refused_and_nothing_changes(
    tmp_path: Path, folder: str, capsys
) -> None:
    lesson = _lesson(tmp_path)
    out = tmp_path / "student"
    student.generate(lesson.parent, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "empty").mkdir()
    (tmp_path / "notebook").mkdir()
    (tmp_path / "notebook" / "README.md").write_text("not a lesson", encoding="utf-8")
    bad = tmp_path / folder
    assert student.main(["--notebooks", str(bad), "--out", str(out)]) == 2
    assert str(bad) in capsys.readouterr().err
    with pytest.raises(ValueError, match="nothing was written or removed"):
        student.generate(bad, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_lesson_folder_is_never_the_output(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path)
    before = lesson.read_bytes()
    with pytest.raises(ValueError, match="is the lesson folder"):
        student.generate(lesson.parent, lesson.parent / ".")
    assert lesson.read_bytes() == before


def test_a_lesson_that_is_not_a_notebook_is_named(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path)
    broken = lesson.with_name("98_broken.ipynb")
    broken.write_text("this is not JSON", encoding="utf-8")
    with pytest.raises(ValueError, match=r"98_broken\.ipynb is not a notebook"):
        student.generate(lesson.parent, tmp_path / "student")
    assert not (tmp_path / "student").exists()  # every lesson is read before anything is written


def test_solution_blocks_in_markdown_cells_become_a_request_for_the_answer(
    tmp_path: Path,
) -> None:
    lesson = _lesson(tmp_path)
    nb = nbformat.read(lesson, as_version=4)
    nb.cells.insert(
        3,
        nbformat.v4.new_markdown_cell(
            "**Question.** Why square?\n### BEGIN SOLUTION\nBecause areas scale so.\n"
            "### END SOLUTION\nThen carry on."
        ),
    )
    copy = student.student_notebook(nb, "99_tiny")
    text = "\n".join(c.source for c in copy.cells)
    assert "Because areas scale so." not in text and BEGIN not in text
    assert f"Why square?\n{student.ANSWER}\nThen carry on." in text
    nb.cells[3].source = "### BEGIN SOLUTION\nnever closed"
    with pytest.raises(ValueError, match="99_tiny, cell 3: .* never closed"):
        student.student_notebook(nb, "99_tiny")


def test_repeated_exercise_ids_in_one_notebook_are_refused(tmp_path: Path) -> None:
    nb = nbformat.read(_lesson(tmp_path), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(nb.cells[2].source))
    with pytest.raises(ValueError, match=r"99_x: exercises \['99.1'\] appear in more than one"):
        student.student_notebook(nb, "99_x")


def test_figures_of_a_student_copy_stay_in_student(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_FIGURES_DIR", raising=False)
    monkeypatch.setenv("COURSE_FAST", "0")
    monkeypatch.chdir(ROOT / "student")
    assert config.figures_dir() == ROOT / "student" / "figures"
    monkeypatch.chdir(ROOT / "notebooks")
    assert config.figures_dir() == ROOT / "figures"
