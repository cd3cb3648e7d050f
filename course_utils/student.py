"""Student notebooks: the lessons with each exercise's solution replaced by a stub.

``python -m course_utils.student`` (``make student``) reads every
``notebooks/NN_*.ipynb`` and writes ``student/NN_*.ipynb``:

* in each code cell that starts with ``# EXERCISE NN.k``, every block from
  ``### BEGIN SOLUTION`` to ``### END SOLUTION`` becomes
  ``raise NotImplementedError("exercise NN.k")`` at the block's indentation;
* outputs, execution counts, execution timings and saved widget states are
  cleared; the rest of the notebook (metadata, cell ids) is kept;
* a notebook with exercises gets a short note on top saying how they work.

The output is deterministic (nbformat's JSON layout), so the committed
``student/`` can be compared with what this command writes
(``python -m course_utils.student --check``). A cell with unbalanced markers,
markers but no ``# EXERCISE`` line, an exercise line but no solution block, or
a block that does not sit inside a function body is refused with a ValueError
that names the notebook and the cell.

Run from ``student/``, a lesson saves its figures under ``student/figures/``,
never over the lesson figures in ``figures/`` (see
:func:`course_utils.core.config.figures_dir`).
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
from pathlib import Path

import nbformat

from course_utils.core.config import REPO_ROOT
from course_utils.exercises import EXERCISE_LINE

__all__ = [
    "BEGIN",
    "END",
    "NOTEBOOKS",
    "STUDENT",
    "NOTE_ID",
    "NOTE",
    "stub_source",
    "student_notebook",
    "render",
    "lessons",
    "generate",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
NOTEBOOKS = REPO_ROOT / "notebooks"
STUDENT = REPO_ROOT / "student"
NOTE_ID = "student-copy-note"
NOTE = (
    "**Your copy of this lesson, with exercises.** Each code cell that starts with "
    "`# EXERCISE` waits for your code where it says `raise NotImplementedError`: "
    "write it, run the cell, and `check` tells you whether it is right; `hint(...)` "
    "opens a hint. An exercise you skip reports *not done yet*, and the lesson "
    "continues with a working version, so every later cell still runs."
)


def stub_source(source: str, where: str = "cell") -> tuple[str, str | None]:
    """Replace the solution blocks of one code cell by stubs.

    Args:
        source: the cell's code.
        where: how error messages name the cell, e.g. ``"02_x.ipynb, cell 14"``.

    Returns:
        ``(new source, exercise id)``; a cell without markers and without an
        ``# EXERCISE`` line comes back unchanged with id None.

    Raises:
        ValueError: the markers are unbalanced or nested, a block sits at the
            top level of the cell, the cell has markers but no ``# EXERCISE``
            line (or the reverse), or the stubbed code does not parse.

    >>> code = "# EXERCISE 02.1\\ndef f(x):\\n    ### BEGIN SOLUTION\\n    return x\\n"
    >>> print(stub_source(code + "    ### END SOLUTION\\nf = check('02.1', f)")[0])
    # EXERCISE 02.1
    def f(x):
        raise NotImplementedError("exercise 02.1")
    f = check('02.1', f)
    """
    lines = source.split("\n")
    match = EXERCISE_LINE.match(lines[0])
    exercise_id = match.group(1) if match else None
    has_markers = any(line.strip() in (BEGIN, END) for line in lines)
    if not has_markers:
        if exercise_id:
            raise ValueError(f"{where}: exercise {exercise_id} has no {BEGIN!r} block")
        if re.match(r"^#\s*EXERCISE\b", lines[0]):
            raise ValueError(f"{where}: the first line {lines[0]!r} is not '# EXERCISE NN.k'")
        return source, None
    if exercise_id is None:
        raise ValueError(
            f"{where}: solution markers in a cell whose first line is not '# EXERCISE NN.k' "
            f"(it is {lines[0]!r})"
        )
    out: list[str] = []
    opened: int | None = None  # line number of the open BEGIN
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if opened is not None:
                raise ValueError(
                    f"{where}: {BEGIN!r} on line {number} inside the block of line {opened}"
                )
            indent = line[: len(line) - len(line.lstrip())]
            if not indent:
                raise ValueError(
                    f"{where}: the solution block of line {number} is not inside a function "
                    "body (a student copy would stop the lesson there)"
                )
            opened = number
            out.append(f'{indent}raise NotImplementedError("exercise {exercise_id}")')
        elif marker == END:
            if opened is None:
                raise ValueError(f"{where}: {END!r} on line {number} without a {BEGIN!r}")
            opened = None
        elif opened is None:
            out.append(line)
    if opened is not None:
        raise ValueError(f"{where}: the {BEGIN!r} of line {opened} is never closed")
    new = "\n".join(out)
    try:  # IPython's magics and shell escapes are not Python: blank them for the parse
        ast.parse(re.sub(r"(?m)^\s*[%!].*$", "", new))
    except SyntaxError as error:
        raise ValueError(f"{where}: the student copy does not parse: {error}") from None
    return new, exercise_id


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student copy of a lesson notebook (the input is not changed).

    Args:
        nb: the lesson, as read by ``nbformat.read(..., as_version=4)``.
        name: how error messages name it.

    Returns:
        The copy, with stubs, without outputs, and a note on top if it has exercises.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)  # saved widget states are outputs too
    ids = []
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.source, exercise_id = stub_source(cell.source, f"{name}, cell {index}")
        if exercise_id:
            ids.append(exercise_id)
        cell.outputs = []
        cell.execution_count = None
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"{name}: exercises {repeated} appear in more than one cell")
    if ids:
        note = nbformat.v4.new_markdown_cell(NOTE)
        note.id = NOTE_ID
        nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, note)
    return nb


def render(lesson: Path) -> str:
    """The student copy of the lesson file ``lesson`` as the exact text to write."""
    nb = nbformat.read(lesson, as_version=4)
    text = nbformat.writes(student_notebook(nb, lesson.name))
    return text if text.endswith("\n") else text + "\n"


def lessons(notebooks: Path = NOTEBOOKS) -> list[Path]:
    """The lesson notebooks, ``NN_*.ipynb``, in order."""
    return sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))


def generate(notebooks: Path = NOTEBOOKS, out: Path = STUDENT, check: bool = False) -> list[str]:
    """Write (or, with ``check``, compare) every student notebook.

    Args:
        notebooks: the folder of the lessons.
        out: the student folder; student notebooks of lessons that no longer
            exist are removed from it.
        check: change nothing, only report.

    Returns:
        The names of the files that were (or, with ``check``, would be) written
        or removed.
    """
    changed = []
    expected = {}
    for lesson in lessons(notebooks):
        expected[lesson.name] = render(lesson)
    for name, text in expected.items():
        target = out / name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            changed.append(name)
            if not check:
                out.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    for stale in sorted(out.glob("[0-9][0-9]_*.ipynb")):
        if stale.name not in expected:
            changed.append(stale.name)
            if not check:
                stale.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.student",
        description="Write student/ from notebooks/: solutions become stubs, outputs are cleared.",
    )
    parser.add_argument("--check", action="store_true", help="only say whether student/ is current")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="the lesson folder")
    parser.add_argument("--out", type=Path, default=STUDENT, help="the student folder")
    args = parser.parse_args(argv)
    changed = generate(args.notebooks, args.out, check=args.check)
    if args.check:
        if changed:
            print(f"{args.out} is stale ({', '.join(changed)}): run `make student`")
            return 1
        print(f"{args.out} is up to date")
        return 0
    print(f"{args.out}: {len(changed)} notebooks written or removed" + (": " if changed else ""))
    for name in changed:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
