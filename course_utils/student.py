"""Student notebooks: the lessons with each exercise's solution replaced by a stub.

``python -m course_utils.student`` (``make student``) reads every
``notebooks/NN_*.ipynb`` and writes ``student/NN_*.ipynb``:

* in each code cell that starts with ``# EXERCISE NN.k``, every block from
  ``### BEGIN SOLUTION`` to ``### END SOLUTION`` becomes
  ``raise NotImplementedError("exercise NN.k")`` at the block's indentation;
* outputs, execution counts, execution timings and saved widget states are
  cleared; the rest of the notebook (metadata, cell ids) is kept;
* a notebook with exercises gets a short note on top saying how they work.

* solution blocks in a markdown cell (an answer written out in prose) are
  replaced by a line that asks for the learner's answer.

The output is deterministic (nbformat's JSON layout), so the committed
``student/`` can be compared with what this command writes
(``python -m course_utils.student --check``).

**A learner's work is never overwritten or removed.** ``student/.generated.json``
(:data:`RECORD`, committed with the copies) holds the sha256 of every copy as
this command last wrote it. A copy whose bytes still match is the command's
own and may be replaced (or removed, when its lesson is gone); a copy that
differs was changed since, by a learner solving its exercises, so it is kept
as it is and the command says so and exits with 1. ``--force`` writes the new
copy anyway, after moving the learner's to ``NN_topic.yours.ipynb`` beside it.
A file the record does not know is never touched. A missing or empty lesson
folder, or an output folder that is the lesson folder, is refused before
anything is written. A cell with unbalanced markers,
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
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
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
    "ANSWER",
    "RECORD",
    "StudentWorkKept",
    "stub_source",
    "stub_markdown",
    "student_notebook",
    "render",
    "lessons",
    "generate",
    "main",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
NOTEBOOKS = REPO_ROOT / "notebooks"
STUDENT = REPO_ROOT / "student"
NOTE_ID = "student-copy-note"
#: The file in the student folder that records what this command last wrote.
RECORD = ".generated.json"
#: What a solution block of a markdown cell becomes.
ANSWER = "*Your answer here.*"
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

    def stub(line: str, number: int) -> str:
        indent = line[: len(line) - len(line.lstrip())]
        if not indent:
            raise ValueError(
                f"{where}: the solution block of line {number} is not inside a function "
                "body (a student copy would stop the lesson there)"
            )
        return f'{indent}raise NotImplementedError("exercise {exercise_id}")'

    new = _replace_blocks(lines, stub, where)
    try:  # IPython's magics and shell escapes are not Python: blank them for the parse
        ast.parse(re.sub(r"(?m)^\s*[%!].*$", "", new))
    except SyntaxError as error:
        raise ValueError(f"{where}: the student copy does not parse: {error}") from None
    return new, exercise_id


def stub_markdown(source: str, where: str = "cell") -> str:
    """Replace each solution block of a markdown (or raw) cell by :data:`ANSWER`.

    A lesson may write an answer out in prose between the same markers as in
    code; the student copy must not show it.

    Raises:
        ValueError: the markers are unbalanced or nested.

    >>> print(stub_markdown("Why?\\n### BEGIN SOLUTION\\nBecause.\\n### END SOLUTION"))
    Why?
    *Your answer here.*
    """
    return _replace_blocks(source.split("\n"), lambda line, number: ANSWER, where)


def _replace_blocks(lines: list[str], stub, where: str) -> str:
    """``lines`` with each block from :data:`BEGIN` to :data:`END` replaced by one line.

    ``stub(begin_line, line_number)`` gives that line. Unbalanced or nested
    markers raise a ValueError that names ``where`` and the line.
    """
    out: list[str] = []
    opened: int | None = None  # line number of the open BEGIN
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if opened is not None:
                raise ValueError(
                    f"{where}: {BEGIN!r} on line {number} inside the block of line {opened}"
                )
            out.append(stub(line, number))
            opened = number
        elif marker == END:
            if opened is None:
                raise ValueError(f"{where}: {END!r} on line {number} without a {BEGIN!r}")
            opened = None
        elif opened is None:
            out.append(line)
    if opened is not None:
        raise ValueError(f"{where}: the {BEGIN!r} of line {opened} is never closed")
    return "\n".join(out)


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
            cell.source = stub_markdown(cell.source, f"{name}, cell {index}")
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
    """The student copy of the lesson file ``lesson`` as the exact text to write.

    Raises:
        ValueError: ``lesson`` is not a notebook (the message names the file),
            or one of its cells is refused (see :func:`stub_source`).
    """
    try:
        nb = nbformat.read(lesson, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as err:  # nbformat raises JSON, validation and key errors alike
        raise ValueError(f"{lesson} is not a notebook this command can read: {err}") from None
    text = nbformat.writes(student_notebook(nb, lesson.name))
    return text if text.endswith("\n") else text + "\n"


def lessons(notebooks: Path = NOTEBOOKS) -> list[Path]:
    """The lesson notebooks, ``NN_*.ipynb``, in order."""
    return sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))


class StudentWorkKept(RuntimeError):
    """Student copies that were changed since this command wrote them were left as they are.

    Attributes:
        names: the copies kept.
    """

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_record(out: Path) -> dict[str, str]:
    """What the command last wrote into ``out``: copy name → sha256 (empty if unknown)."""
    path = out / RECORD
    try:
        copies = json.loads(path.read_text(encoding="utf-8")).get("copies", {})
    except (OSError, ValueError, AttributeError):
        return {}  # no record (or a damaged one): no copy counts as the command's own
    return {k: v for k, v in copies.items() if isinstance(k, str) and isinstance(v, str)}


def _record_text(copies: dict[str, str]) -> str:
    record = {
        "about": "sha256 of each student copy as `python -m course_utils.student` last wrote "
        "it; a copy that no longer matches holds a learner's work and is never overwritten",
        "copies": dict(sorted(copies.items())),
    }
    return json.dumps(record, indent=1) + "\n"


@dataclass
class _Plan:
    """What :func:`generate` would do in ``out``."""

    expected: dict[str, str] = field(default_factory=dict)  # name -> the copy's text
    write: dict[str, str] = field(default_factory=dict)  # name -> text
    remove: list[str] = field(default_factory=list)  # the command's own copies of gone lessons
    kept: list[str] = field(default_factory=list)  # changed since written: a learner's
    record: dict[str, str] = field(default_factory=dict)  # the record after the run
    record_stale: bool = False


def _plan(notebooks: Path, out: Path) -> _Plan:
    if not notebooks.is_dir():
        raise ValueError(
            f"the lesson folder {notebooks} does not exist (the lessons are in {NOTEBOOKS}); "
            "nothing was written or removed"
        )
    found = lessons(notebooks)
    if not found:
        raise ValueError(
            f"no lessons (NN_*.ipynb) in {notebooks} (the lessons are in {NOTEBOOKS}); "
            "nothing was written or removed"
        )
    if out.resolve() == notebooks.resolve():
        raise ValueError(
            f"the student folder {out} is the lesson folder: the copies would replace the "
            "lessons; give another --out"
        )
    expected = {lesson.name: render(lesson) for lesson in found}  # every lesson read first
    last = _read_record(out)
    plan = _Plan(expected=expected)
    for name, text in expected.items():
        target = out / name
        data = text.encode("utf-8")
        if target.is_file():
            current = target.read_bytes()
            if current == data:
                plan.record[name] = _digest(data)
                continue
            if last.get(name) != _digest(current):  # changed since the command wrote it
                plan.kept.append(name)
                if name in last:
                    plan.record[name] = last[name]
                continue
        plan.write[name] = text
        plan.record[name] = _digest(data)
    for stale in sorted(out.glob("[0-9][0-9]_*.ipynb")):
        name = stale.name
        if name in expected or name not in last:
            continue  # a file the command never wrote is not its to remove
        if _digest(stale.read_bytes()) == last[name]:
            plan.remove.append(name)
        else:
            plan.kept.append(name)
            plan.record[name] = last[name]
    plan.record_stale = _read_record(out) != plan.record or not (out / RECORD).is_file()
    return plan


def _aside(path: Path) -> Path:
    """The first free ``NN_topic.yours[-k].ipynb`` beside ``path``."""
    k = 1
    while True:
        tail = ".yours" if k == 1 else f".yours-{k}"
        backup = path.with_name(f"{path.stem}{tail}{path.suffix}")
        if not backup.exists():
            return backup
        k += 1


def _write(path: Path, text: str) -> None:
    """Write ``text`` atomically: a crash leaves the old file or the new, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def generate(
    notebooks: Path = NOTEBOOKS, out: Path = STUDENT, check: bool = False, force: bool = False
) -> list[str]:
    """Write (or, with ``check``, compare) every student notebook.

    Args:
        notebooks: the folder of the lessons; a missing or empty one is refused.
        out: the student folder. A copy this command wrote (its sha256 is in
            :data:`RECORD`) is replaced, or removed when its lesson no longer
            exists; a copy changed since is a learner's and is kept.
        check: change nothing, only report.
        force: replace changed copies too, after moving each to
            ``NN_topic.yours.ipynb`` beside it.

    Returns:
        The names of the files that were (or, with ``check``, would be) written
        or removed, then (``force``) the changed copies' new names; with
        ``check``, also the changed copies a run would keep, and :data:`RECORD`
        if it is not current.

    Raises:
        ValueError: the lesson folder is missing or empty, or is ``out``, or a
            lesson is not a notebook or has a bad exercise cell.
        StudentWorkKept: (not with ``check`` or ``force``) copies changed since
            they were written were kept; everything else was written.
    """
    notebooks, out = Path(notebooks), Path(out)
    plan = _plan(notebooks, out)
    if check:
        names = sorted([*plan.write, *plan.remove, *plan.kept], key=_order(plan))
        return names + ([RECORD] if plan.record_stale else [])
    moved = []
    if force:  # the changed copies go aside, under a name no run of this command touches
        for name in plan.kept:
            backup = _aside(out / name)
            os.replace(out / name, backup)
            moved.append(backup.name)
            if name in plan.expected:
                plan.write[name] = plan.expected[name]
                plan.record[name] = _digest(plan.expected[name].encode("utf-8"))
            else:
                plan.record.pop(name, None)
        plan.kept = []
    if plan.write or plan.record_stale or moved:
        out.mkdir(parents=True, exist_ok=True)
    for name, text in plan.write.items():
        _write(out / name, text)
    for name in plan.remove:
        (out / name).unlink()
        plan.record.pop(name, None)
    if plan.write or plan.remove or plan.record_stale or moved:
        _write(out / RECORD, _record_text(plan.record))
    if plan.kept:
        listed = "\n".join(f"  {out / name}" for name in plan.kept)
        raise StudentWorkKept(
            f"kept {len(plan.kept)} student copies that were changed since this command wrote "
            f"them (a learner's work?); they were not replaced:\n{listed}\n"
            "To replace them and keep the changed ones as NN_topic.yours.ipynb beside them, run "
            f"`python -m course_utils.student --notebooks {notebooks} --out {out} --force`",
            plan.kept,
        )
    return sorted([*plan.write, *plan.remove], key=_order(plan)) + moved


def _order(plan: _Plan):
    """Lessons in order, then the copies of gone lessons."""
    gone = set(plan.remove)
    return lambda name: (name in gone, name)


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.student [--check] [--force] [--notebooks DIR] [--out DIR]``.

    Exit codes: 0 done (or current), 1 stale (``--check``) or a learner's copy
    kept, 2 refused (a missing or empty lesson folder, a lesson that is not a
    notebook).
    """
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.student",
        description="Write student/ from notebooks/: solutions become stubs, outputs are cleared. "
        "A copy changed since it was written (a learner's work) is never overwritten.",
    )
    parser.add_argument("--check", action="store_true", help="only say whether student/ is current")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace changed copies too, keeping each as NN_topic.yours.ipynb beside it",
    )
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="the lesson folder")
    parser.add_argument("--out", type=Path, default=STUDENT, help="the student folder")
    args = parser.parse_args(argv)
    try:
        changed = generate(args.notebooks, args.out, check=args.check, force=args.force)
    except StudentWorkKept as kept:
        print(f"error: {kept}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
