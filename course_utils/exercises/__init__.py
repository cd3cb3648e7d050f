"""Checked exercises: ``check`` a learner's code against a checker, ``hint`` on request.

The convention (one for the whole course)
-----------------------------------------
**In a lesson notebook** an exercise is a markdown cell that states the task
(never the answer) and a code cell like this one::

    # EXERCISE 02.1
    def coupling_log_det(s):
        ### BEGIN SOLUTION
        return s.sum(dim=1)
        ### END SOLUTION

    coupling_log_det = check("02.1", coupling_log_det)
    hint("02.1")

* The cell's first line is ``# EXERCISE NN.k`` (lesson ``NN``, exercise ``k``).
* The solution sits between nbgrader's ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` markers, *inside a function or method body*:
  ``python -m course_utils.student`` (``make student``) writes ``student/``,
  where each block becomes ``raise NotImplementedError("exercise 02.1")`` at
  the block's indentation and all outputs are cleared. The code outside the
  markers must still run once the block is replaced.
* ``check(id, candidate)`` takes the learner's function or class (any
  callable) and prints one line:

  - ``✓ exercise 02.1 (<title>): correct`` and returns the candidate;
  - ``✗ exercise 02.1: <what is wrong>`` and returns the reference;
  - ``… exercise 02.1: not done yet (...)`` when the candidate raises
    ``NotImplementedError``, and returns the reference.

  So a student notebook with unsolved exercises still runs top to bottom:
  the lesson continues with the reference implementation.
* ``hint(id)`` shows the hint folded in a ``<details>`` block that opens on a click.

**In the package** each lesson registers its 2-4 exercises in
``course_utils/exercises/lessonNN.py`` (imported automatically by this
package, so the registry is complete). An exercise has an ``id``, a ``title``,
a ``reference`` (what the lesson continues with), a ``checker`` that calls the
candidate and raises :class:`ExerciseFailed` with a helpful message when it is
wrong (checkers use oracles: autograd Jacobians, round trips, hand
computations, the reference on random inputs), planted ``wrong`` answers
(at least one; each must fail the checker, the test suite proves it), a ``hint``
for the learner and an ``answer`` for the teacher guide
(``python -m course_utils.exercises --answers``). A checker runs with the random
number generators seeded with 0 and restored afterwards, so checking never
changes what the rest of the lesson draws.

Example (a private :class:`Registry`, so the course's own stays as it is):

>>> reg = Registry()
>>> @reg.exercise("99.1", "Square a number", reference=lambda x: x * x,
...               wrong=[lambda x: 2 * x], hint="Multiply x by itself.",
...               answer="``x * x`` (or ``x ** 2``).")
... def _check(fn):
...     for x in (0.0, 1.5, -3.0):
...         expect_close(fn(x), x * x, f"square({x})")
>>> square = reg.check("99.1", lambda x: x**2)
✓ exercise 99.1 (Square a number): correct
>>> square = reg.check("99.1", lambda x: 2 * x)
✗ exercise 99.1: square(1.5) = 3 but should be 2.25
  (the lesson continues with the reference implementation; hint("99.1") gives a hint)
>>> square(3.0)
9.0
"""

from __future__ import annotations

import html
import importlib
import pkgutil
import random
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "Exercise",
    "ExerciseFailed",
    "REGISTRY",
    "Registry",
    "Result",
    "check",
    "evaluate",
    "exercise",
    "expect",
    "expect_close",
    "get",
    "hint",
    "register",
]

ID_PATTERN = re.compile(r"^(\d\d)\.(\d+)$")
#: The first line of an exercise cell, e.g. ``# EXERCISE 02.1``.
EXERCISE_LINE = re.compile(r"^#\s*EXERCISE\s+(\d\d\.\d+)\s*$")
NOT_DONE_SUFFIX = "not done yet (the lesson continues with the reference implementation)"


class ExerciseFailed(Exception):
    """Raised by a checker: the message tells the learner what is wrong."""


@dataclass(frozen=True)
class Exercise:
    """One checked exercise.

    Attributes:
        id: ``"NN.k"``, lesson ``NN``'s exercise ``k``.
        title: a few words, shown when the answer is correct.
        reference: the correct function or class; ``check`` returns it when the
            learner's is wrong or unfinished.
        checker: ``checker(candidate)`` calls the candidate, returns None when it
            is right and raises :class:`ExerciseFailed` when it is wrong.
        wrong: planted wrong answers (at least one), each of which must fail;
            a docstring's first line says which mistake it plants.
        hint: a nudge for the learner (backticks mark code).
        answer: the solution in words for the teacher guide (markdown).
        module: the module that registered it (filled in by ``register``).
    """

    id: str
    title: str
    reference: Callable[..., Any]
    checker: Callable[[Callable[..., Any]], None]
    wrong: Sequence[Callable[..., Any]]
    hint: str
    answer: str
    module: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_PATTERN.match(self.id):
            raise ValueError(f"id must look like '02.1' (lesson.number), got {self.id!r}")
        for name in ("title", "hint", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"exercise {self.id}: {name} must be a non-empty string")
        if not callable(self.reference) or not callable(self.checker):
            raise ValueError(f"exercise {self.id}: reference and checker must be callable")
        object.__setattr__(self, "wrong", tuple(self.wrong))
        if not self.wrong or not all(callable(w) for w in self.wrong):
            raise ValueError(f"exercise {self.id}: wrong must hold at least one callable")

    @property
    def lesson(self) -> int:
        """The lesson number, e.g. 2 for ``"02.1"``."""
        return int(self.id.split(".")[0])


@dataclass(frozen=True)
class Result:
    """What checking a candidate found: ``status`` and the message for the learner."""

    status: Literal["correct", "wrong", "not done"]
    message: str = ""


@contextmanager
def _seeded() -> Iterator[None]:
    """Seed ``random``, numpy and torch with 0 inside, restore their states after."""
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        random.seed(0)
        np.random.seed(0)  # noqa: NPY002 (the legacy global RNG is what lessons draw from)
        torch.manual_seed(0)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002


def _raised_not_implemented(error: BaseException | None) -> bool:
    """Whether ``error`` or an exception it was raised from is a NotImplementedError."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, NotImplementedError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class Registry:
    """Exercises by id, with :meth:`check`, :meth:`evaluate` and :meth:`hint` over them."""

    def __init__(self) -> None:
        self._exercises: dict[str, Exercise] = {}

    def __iter__(self) -> Iterator[Exercise]:
        return iter(sorted(self._exercises.values(), key=lambda e: _sort_key(e.id)))

    def __len__(self) -> int:
        return len(self._exercises)

    def __contains__(self, exercise_id: object) -> bool:
        return exercise_id in self._exercises

    def register(self, ex: Exercise) -> Exercise:
        """Add ``ex``; an id already taken by another module is an error.

        Registering the same id again from the same module (a reloaded module)
        replaces the earlier exercise.
        """
        if not isinstance(ex, Exercise):
            raise ValueError(f"ex must be an Exercise, got {type(ex).__name__}")
        old = self._exercises.get(ex.id)
        if old is not None and old.module != ex.module:
            raise ValueError(
                f"exercise {ex.id} is registered twice: by {old.module!r} and by {ex.module!r}"
            )
        self._exercises[ex.id] = ex
        return ex

    def exercise(
        self,
        id: str,
        title: str,
        *,
        reference: Callable[..., Any],
        wrong: Sequence[Callable[..., Any]],
        hint: str,
        answer: str,
    ) -> Callable[[Callable[[Callable[..., Any]], None]], Callable[[Callable[..., Any]], None]]:
        """Decorator: register the decorated function as the checker of a new exercise."""

        def decorate(checker: Callable[[Callable[..., Any]], None]):
            module = getattr(checker, "__module__", None) or ""
            self.register(Exercise(id, title, reference, checker, wrong, hint, answer, module))
            return checker

        return decorate

    def get(self, exercise_id: str) -> Exercise:
        """The exercise with this id; an unknown id is a ValueError listing the known ones."""
        try:
            return self._exercises[exercise_id]
        except (KeyError, TypeError):
            known = ", ".join(e.id for e in self) or "none"
            raise ValueError(
                f"exercise_id {exercise_id!r} is not a registered exercise (known: {known})"
            ) from None

    def evaluate(self, exercise_id: str, candidate: Any) -> Result:
        """Run the checker on ``candidate`` without printing anything.

        Returns:
            ``Result("correct")``; ``Result("not done", ...)`` when the candidate
            raises NotImplementedError; ``Result("wrong", message)`` when the
            checker raises :class:`ExerciseFailed` or the candidate raises any
            other exception (the message names it).
        """
        ex = self.get(exercise_id)
        if not callable(candidate):
            return Result(
                "wrong",
                f"check({exercise_id!r}, ...) expects the function or class you wrote, "
                f"got {type(candidate).__name__}",
            )
        try:
            with _seeded(), torch.enable_grad():
                ex.checker(candidate)
        except ExerciseFailed as error:
            if _raised_not_implemented(error):
                return Result("not done", NOT_DONE_SUFFIX)
            return Result("wrong", str(error) or "the check failed")
        except NotImplementedError:
            return Result("not done", NOT_DONE_SUFFIX)
        except Exception as error:  # the learner's code crashed: say how, do not stop the lesson
            return Result("wrong", f"your code raised {type(error).__name__}: {error}")
        return Result("correct")

    def check(self, exercise_id: str, candidate: Any) -> Any:
        """Check ``candidate``, print the verdict, and return what the lesson continues with.

        Args:
            exercise_id: e.g. ``"02.1"``.
            candidate: the learner's function or class.

        Returns:
            ``candidate`` when it is correct, else the exercise's reference.
        """
        ex = self.get(exercise_id)
        result = self.evaluate(exercise_id, candidate)
        if result.status == "correct":
            print(f"✓ exercise {ex.id} ({ex.title}): correct")
            return candidate
        if result.status == "not done":
            print(f"… exercise {ex.id}: {NOT_DONE_SUFFIX}")
        else:
            print(
                f"✗ exercise {ex.id}: {result.message}\n"
                f'  (the lesson continues with the reference implementation; hint("{ex.id}") '
                "gives a hint)"
            )
        return ex.reference

    def hint(self, exercise_id: str) -> None:
        """Display the exercise's hint, folded until the learner opens it."""
        from IPython.display import display  # only in a notebook: the CLI lists exercises too

        display(Hint(self.get(exercise_id)))


class Hint:
    """A hint shown as an HTML ``<details>`` block (plain text where HTML is not shown)."""

    def __init__(self, ex: Exercise) -> None:
        self.exercise = ex

    def _repr_html_(self) -> str:
        paragraphs = [p.strip() for p in self.exercise.hint.split("\n\n") if p.strip()]
        body = "".join(f"<p>{_inline_code(html.escape(p))}</p>" for p in paragraphs)
        return (
            f"<details><summary>Hint for exercise {self.exercise.id} "
            f"(click to open)</summary>{body}</details>"
        )

    def __repr__(self) -> str:
        return f"Hint for exercise {self.exercise.id}: {self.exercise.hint}"


def _inline_code(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _sort_key(exercise_id: str) -> tuple[int, int]:
    lesson, number = exercise_id.split(".")
    return int(lesson), int(number)


# Checker helpers ---------------------------------------------------------------------------


def expect(condition: bool, message: str) -> None:
    """Raise :class:`ExerciseFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailed(message)


def _fmt(value: torch.Tensor) -> str:
    if value.numel() == 1:
        return f"{value.item():.4g}"
    return f"a tensor of shape {tuple(value.shape)}"


def expect_close(got: Any, want: Any, what: str, *, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Fail unless ``got`` has ``want``'s shape and values (within the tolerances).

    Args:
        got: the learner's value (tensor, array or number).
        want: the correct value.
        what: how the message names the value, e.g. ``"log_det for x of shape (8, 2)"``.
        atol, rtol: as in ``torch.allclose``.

    Raises:
        ExerciseFailed: with the shapes, or the largest difference, in the message.
    """
    try:
        g = torch.as_tensor(got.detach() if isinstance(got, torch.Tensor) else got)
    except Exception:
        message = f"{what} should be a number or a tensor, got {type(got).__name__}"
        raise ExerciseFailed(message) from None
    w = torch.as_tensor(want.detach() if isinstance(want, torch.Tensor) else want)
    g, w = g.to(torch.float64), w.to(torch.float64)
    if g.shape != w.shape:
        raise ExerciseFailed(
            f"{what} has shape {tuple(g.shape)} but should have shape {tuple(w.shape)}"
        )
    if not torch.isfinite(g).all():
        raise ExerciseFailed(f"{what} contains NaN or infinite values")
    if not torch.allclose(g, w, atol=atol, rtol=rtol):
        if g.numel() == 1:
            raise ExerciseFailed(f"{what} = {_fmt(g)} but should be {_fmt(w)}")
        gap = (g - w).abs().max().item()
        raise ExerciseFailed(f"{what} differs from the correct values by up to {gap:.3g}")


# The course's registry and its module-level shortcuts ----------------------------------------

REGISTRY = Registry()


def register(ex: Exercise) -> Exercise:
    """Add ``ex`` to the course's registry (its ``module`` becomes the caller's)."""
    if isinstance(ex, Exercise) and not ex.module:
        ex = replace(ex, module=sys._getframe(1).f_globals.get("__name__", ""))
    return REGISTRY.register(ex)


exercise = REGISTRY.exercise
get = REGISTRY.get
evaluate = REGISTRY.evaluate
check = REGISTRY.check
hint = REGISTRY.hint


def load_lessons() -> list[str]:
    """Import every ``course_utils/exercises/lessonNN.py`` (done once, on import).

    Returns:
        The names of the modules imported.
    """
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if re.fullmatch(r"lesson\d\d", info.name):
            names.append(f"{__name__}.{info.name}")
            importlib.import_module(names[-1])
    return names


load_lessons()
