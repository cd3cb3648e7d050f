"""Checked exercises: every registered checker passes its reference and fails what is wrong.

The first half runs over the course's registry (one test per exercise, so a
new ``lessonNN.py`` is covered as soon as it registers); the second half pins
down what ``check``, ``hint`` and the helpers do, on tiny exercises made here.
"""

from __future__ import annotations

import inspect
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils import exercises as ex
from course_utils.exercises import (
    REGISTRY,
    Exercise,
    ExerciseFailed,
    Registry,
    expect,
    expect_close,
)
from course_utils.exercises.guide import BEGIN, END, GUIDE, answers_markdown, update_guide

ROOT = Path(__file__).resolve().parent.parent
ALL = list(REGISTRY)
WRONG = [(e, w) for e in ALL for w in e.wrong]


def not_done_stub(reference):
    """What a student notebook holds before the exercise is solved.

    A function stub raises on every call; a class stub is the reference with the
    methods its own body defines (other than ``__init__``) raising.
    """
    message = "exercise stub"
    if not inspect.isclass(reference):

        def stub(*args, **kwargs):
            raise NotImplementedError(message)

        return stub

    def raiser(*args, **kwargs):
        raise NotImplementedError(message)

    methods = {
        name: raiser
        for name, value in vars(reference).items()
        if callable(value)
        and name != "__init__"
        and (not name.startswith("__") or name == "__call__")
    }
    return type(f"Stub{reference.__name__}", (reference,), methods)


def _ids(items):
    return [e.id for e in items]


# The course's exercises ------------------------------------------------------------------


@pytest.mark.parametrize("e", ALL, ids=_ids(ALL))
def test_reference_passes(e: Exercise) -> None:
    result = REGISTRY.evaluate(e.id, e.reference)
    assert result.status == "correct", f"{e.id}: the reference fails its own checker: {result}"


@pytest.mark.parametrize("e", ALL, ids=_ids(ALL))
def test_stub_reports_not_done(e: Exercise, capsys: pytest.CaptureFixture[str]) -> None:
    returned = REGISTRY.check(e.id, not_done_stub(e.reference))
    assert returned is e.reference
    assert f"exercise {e.id}: not done yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("e", "w"), WRONG, ids=[f"{e.id}-{getattr(w, '__name__', i)}" for i, (e, w) in enumerate(WRONG)]
)
def test_planted_wrong_answer_fails(e: Exercise, w, capsys: pytest.CaptureFixture[str]) -> None:
    result = REGISTRY.evaluate(e.id, w)
    assert result.status == "wrong", f"{e.id}: the planted answer {w!r} is not caught: {result}"
    assert len(result.message) > 10, f"{e.id}: the message {result.message!r} says too little"
    assert REGISTRY.check(e.id, w) is e.reference
    assert capsys.readouterr().out.startswith(f"✗ exercise {e.id}: {result.message}")


@pytest.mark.parametrize("e", ALL, ids=_ids(ALL))
def test_exercise_is_complete_and_in_its_lesson_module(e: Exercise) -> None:
    assert e.module == f"course_utils.exercises.lesson{e.id[:2]}", (
        f"exercise {e.id} is registered by {e.module}, not by its lesson's module"
    )
    assert e.wrong and e.hint.strip() and e.answer.strip() and e.title.strip()
    assert e.answer.strip() not in e.hint, f"{e.id}: the hint gives the answer away"


def exercise_cells() -> dict[str, list[tuple[str, str]]]:
    """``id -> [(notebook name, cell source)]`` for every ``# EXERCISE`` cell of the lessons."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            first = source.splitlines()[0] if source else ""
            m = ex.EXERCISE_LINE.match(first)
            if cell["cell_type"] == "code" and m:
                found.setdefault(m.group(1), []).append((path.name, source))
    return found


def test_every_exercise_cell_and_every_exercise_meet_once() -> None:
    cells = exercise_cells()
    unknown = sorted(set(cells) - {e.id for e in ALL})
    assert not unknown, f"exercise cells with no registered exercise: {unknown}"
    for e in ALL:
        where = cells.get(e.id, [])
        assert len(where) == 1, f"exercise {e.id} appears in {len(where)} notebook cells"
        name, source = where[0]
        assert name.startswith(e.id[:2] + "_"), f"exercise {e.id} sits in {name}"
        assert f'check("{e.id}"' in source, f"the cell of exercise {e.id} does not check it"
        assert "### BEGIN SOLUTION" in source, f"the cell of exercise {e.id} has no solution block"


def test_the_course_registry_is_loaded_from_every_lesson_module() -> None:
    modules = sorted(
        p.stem for p in (ROOT / "course_utils" / "exercises").glob("lesson[0-9][0-9].py")
    )
    assert ex.load_lessons() == [f"course_utils.exercises.{m}" for m in modules]
    assert {e.module.rsplit(".", 1)[-1] for e in ALL} <= set(modules)


def test_teacher_guide_holds_the_current_answers() -> None:
    assert answers_markdown() in GUIDE.read_text(encoding="utf-8"), (
        "docs/teaching.md is stale: run `python -m course_utils.exercises --update-guide`"
    )


# What check, hint and the helpers do ---------------------------------------------------------


def _ref(x: float) -> float:
    return x * x


def _doubles(x: float) -> float:
    """Doubles instead of squaring."""
    return 2 * x


@pytest.fixture
def reg() -> Registry:
    r = Registry()

    @r.exercise(
        "42.1", "Square", reference=_ref, wrong=[_doubles], hint="Use `x * x` <b>.", answer="x*x"
    )
    def _check(fn):
        for x in (0.0, 1.5, -3.0):
            expect_close(fn(x), x * x, f"square({x})")

    return r


def test_check_returns_a_correct_candidate(reg: Registry, capsys) -> None:
    def mine(x):
        return x**2

    assert reg.check("42.1", mine) is mine
    assert capsys.readouterr().out == "✓ exercise 42.1 (Square): correct\n"


def test_check_returns_the_reference_for_a_wrong_candidate(reg: Registry, capsys) -> None:
    assert reg.check("42.1", _doubles) is _ref
    out = capsys.readouterr().out
    assert out.startswith("✗ exercise 42.1: square(1.5) = 3 but should be 2.25\n")
    assert "reference implementation" in out and 'hint("42.1")' in out


def test_check_says_not_done_for_a_stub(reg: Registry, capsys) -> None:
    def stub(x):
        raise NotImplementedError("exercise 42.1")

    assert reg.check("42.1", stub) is _ref
    assert capsys.readouterr().out == (
        "… exercise 42.1: not done yet (the lesson continues with the reference implementation)\n"
    )
    assert reg.evaluate("42.1", not_done_stub(_ref)).status == "not done"


def test_not_done_seen_through_a_checker_that_wraps_the_error() -> None:
    r = Registry()

    @r.exercise("42.1", "Wrapped", reference=_ref, wrong=[_doubles], hint="h", answer="a")
    def _check(fn):
        try:
            fn(1.0)
        except Exception as error:
            raise ExerciseFailed("calling it failed") from error

    assert r.evaluate("42.1", not_done_stub(_ref)).status == "not done"


def test_a_crashing_or_uncallable_candidate_is_wrong_with_a_message(reg: Registry) -> None:
    def crashes(x):
        return x + "a"

    result = reg.evaluate("42.1", crashes)
    assert result.status == "wrong" and result.message.startswith("your code raised TypeError")
    result = reg.evaluate("42.1", 3.0)
    assert result.status == "wrong" and "function or class" in result.message


def test_unknown_id_is_a_value_error_naming_the_known_ones(reg: Registry) -> None:
    with pytest.raises(ValueError, match=r"exercise_id '42.9'.*known: 42.1"):
        reg.check("42.9", _ref)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"id": "2.1"}, "id must look like"),
        ({"id": "02"}, "id must look like"),
        ({"wrong": []}, "at least one"),
        ({"hint": " "}, "hint must be"),
        ({"answer": ""}, "answer must be"),
        ({"checker": None}, "callable"),
    ],
)
def test_an_incomplete_exercise_is_refused(changes: dict, match: str) -> None:
    fields = dict(
        id="42.1", title="t", reference=_ref, checker=_ref, wrong=[_doubles], hint="h", answer="a"
    )
    with pytest.raises(ValueError, match=match):
        Exercise(**{**fields, **changes})


def test_an_id_registered_by_two_modules_is_refused(reg: Registry) -> None:
    other = Exercise("42.1", "t", _ref, lambda fn: None, [_doubles], "h", "a", module="elsewhere")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(other)


def test_module_level_register_records_the_calling_module() -> None:
    e = Exercise("42.7", "t", _ref, lambda fn: None, [_doubles], "h", "a")
    try:
        assert ex.register(e).module == __name__
    finally:
        REGISTRY._exercises.pop("42.7")


def test_checking_neither_depends_on_nor_changes_the_lesson_random_state() -> None:
    seen = []
    r = Registry()

    @r.exercise("42.1", "Random", reference=_ref, wrong=[_doubles], hint="h", answer="a")
    def _check(fn):
        seen.append((random.random(), np.random.rand(), torch.rand(()).item()))  # noqa: NPY002

    random.seed(5), np.random.seed(5), torch.manual_seed(5)  # noqa: NPY002
    before = (random.random(), np.random.rand(), torch.rand(()).item())  # noqa: NPY002
    random.seed(5), np.random.seed(5), torch.manual_seed(5)  # noqa: NPY002
    r.check("42.1", _ref)
    torch.rand(10)  # the lesson's own draws move the state; the check's must not
    r.check("42.1", _ref)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)  # noqa: NPY002
    r.check("42.1", _ref)
    after = (random.random(), np.random.rand(), torch.rand(()).item())  # noqa: NPY002
    assert after == before
    assert seen[0] == seen[1] == seen[2]


def test_checkers_run_with_gradients_on(reg: Registry) -> None:
    r = Registry()

    @r.exercise("42.1", "Grad", reference=_ref, wrong=[_doubles], hint="h", answer="a")
    def _check(fn):
        x = torch.tensor(1.5, requires_grad=True)
        (g,) = torch.autograd.grad(fn(x), x)
        expect_close(g, 3.0, "the derivative at 1.5")

    with torch.no_grad():
        assert r.evaluate("42.1", _ref).status == "correct"
        assert r.evaluate("42.1", _doubles).status == "wrong"


def test_hint_is_folded_html_with_escaped_text(reg: Registry, monkeypatch) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    reg.hint("42.1")
    (h,) = shown
    html = h._repr_html_()
    assert html.startswith("<details><summary>Hint for exercise 42.1")
    assert "<code>x * x</code> &lt;b&gt;." in html and html.endswith("</details>")
    assert repr(h) == "Hint for exercise 42.1: Use `x * x` <b>."


def test_expect_close_names_shape_nan_and_gap() -> None:
    expect_close(torch.ones(3), [1.0, 1.0, 1.0], "v")
    with pytest.raises(ExerciseFailed, match=r"v has shape \(2,\) but should have shape \(3,\)"):
        expect_close(torch.ones(2), torch.ones(3), "v")
    with pytest.raises(ExerciseFailed, match="NaN"):
        expect_close(torch.tensor([1.0, float("nan")]), torch.ones(2), "v")
    with pytest.raises(ExerciseFailed, match="differs from the correct values by up to 0.5"):
        expect_close(torch.tensor([1.0, 1.5]), torch.ones(2), "v")
    with pytest.raises(ExerciseFailed, match="should be a number or a tensor, got str"):
        expect_close("one", 1.0, "v")
    with pytest.raises(ExerciseFailed, match="^no$"):
        expect(False, "no")
    expect(True, "never raised")


# The teacher guide's answers section ----------------------------------------------------------


def test_answers_markdown_lists_answers_and_planted_mistakes(reg: Registry) -> None:
    text = answers_markdown(reg)
    assert text.startswith(BEGIN) and text.rstrip().endswith(END)
    assert "**42.1 Square.** x*x" in text
    assert "Planted mistakes the checker catches: Doubles instead of squaring." in text


def test_update_guide_rewrites_only_its_section(reg: Registry, tmp_path: Path) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text(f"intro\n\n{BEGIN}\nold\n{END}\n\noutro\n", encoding="utf-8")
    assert update_guide(guide, reg)
    assert guide.read_text(encoding="utf-8") == f"intro\n\n{answers_markdown(reg)}\noutro\n"
    assert not update_guide(guide, reg)
    guide.write_text("no markers", encoding="utf-8")
    with pytest.raises(ValueError, match="has no answers section"):
        update_guide(guide, reg)
