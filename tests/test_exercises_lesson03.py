"""Lesson 03's exercises: the lesson's own solutions pass, and the checkers' oracles hold."""

from __future__ import annotations

from pathlib import Path

import torch
from test_exercises_lesson01 import lesson_solutions

from course_utils.exercises import REGISTRY, evaluate
from course_utils.panels.spline import random_knots

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_normflows_library.ipynb"


def test_the_lessons_solutions_pass_their_checkers(capsys) -> None:
    solutions = lesson_solutions(NOTEBOOK)
    assert sorted(solutions) == ["03.1", "03.2"]
    for exercise_id, fn in solutions.items():
        assert fn is not REGISTRY.get(exercise_id).reference, f"{exercise_id}: check refused it"
        assert evaluate(exercise_id, fn).status == "correct"
    assert capsys.readouterr().out.count("✓") == 2


def test_one_bin_with_unit_slopes_is_the_straight_line_by_hand() -> None:
    # K = 1, slopes 1 at both ends of [-B, B]: s = 1 and the formula reduces to g(z) = z.
    spline = REGISTRY.get("03.1").reference
    log_slope = REGISTRY.get("03.2").reference
    xs = ys = torch.tensor([-2.0, 2.0], dtype=torch.float64)
    ds = torch.ones(2, dtype=torch.float64)
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)
    torch.testing.assert_close(spline(z, xs, ys, ds), z)
    torch.testing.assert_close(log_slope(z, xs, ys, ds), torch.zeros_like(z))


def test_a_single_bin_by_hand_at_its_middle() -> None:
    # xs = [0, 1], ys = [0, 2], d = (1, 1): s = 2, xi = 1/2, g = 2 (2/4 + 1/4) / (2 + (2 - 4)/4) = 1
    spline = REGISTRY.get("03.1").reference
    log_slope = REGISTRY.get("03.2").reference
    xs, ys = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 2.0])
    ds = torch.ones(2)
    half = torch.tensor([0.5])
    torch.testing.assert_close(spline(half, xs, ys, ds), torch.tensor([1.0]))
    # g' = s² (d ξ² + 2 s ξ(1 - ξ) + d (1 - ξ)²) / 1.5² = 4 (0.25 + 1 + 0.25) / 2.25
    torch.testing.assert_close(log_slope(half, xs, ys, ds).exp(), torch.tensor([6 / 2.25]))


def test_checker_knots_differ_between_cases() -> None:
    a, b = random_knots(8, 3.0, 1, spread=1.0), random_knots(8, 3.0, 4, spread=1.0)
    assert not torch.allclose(a.xs, b.xs)
