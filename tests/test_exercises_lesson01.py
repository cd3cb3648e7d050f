"""Lesson 01's exercises: the lesson's own solutions pass, and the checkers' oracles hold."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from course_utils.exercises import REGISTRY, evaluate
from course_utils.exercises import lesson01 as ex
from course_utils.flows2d.bijections import TanhBump

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01_change_of_variables.ipynb"


def lesson_solutions(path: Path, setup_cells: int = 1) -> dict[str, object]:
    """Run the lesson's first ``setup_cells`` code cells and its exercise cells, silently.

    Returns:
        exercise id → the name the cell binds, after ``check`` (the learner's
        function when it is right).
    """
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict[str, object] = {}
    for cell in cells[:setup_cells]:
        exec("".join(cell["source"]), namespace)
    found = {}
    for cell in cells:
        source = "".join(cell["source"])
        if source.startswith("# EXERCISE"):
            exercise_id = source.split()[2]
            namespace["hint"] = lambda _id: None
            exec(source, namespace)
            name = re.search(r"^(?:def|class) (\w+)", source, re.MULTILINE).group(1)
            found[exercise_id] = namespace[name]
    return found


def test_the_lessons_solutions_pass_their_checkers(capsys) -> None:
    solutions = lesson_solutions(NOTEBOOK)
    assert sorted(solutions) == ["01.1", "01.2", "01.3"]
    for exercise_id, fn in solutions.items():
        assert fn is not REGISTRY.get(exercise_id).reference, f"{exercise_id}: check refused it"
        assert evaluate(exercise_id, fn).status == "correct"
    assert capsys.readouterr().out.count("✓") == 3


def test_exp_map_density_is_the_log_normal_and_integrates_to_one() -> None:
    x = torch.linspace(1e-6, 200, 400_001, dtype=torch.float64)
    p = ex.exp_map_log_prob_reference(x, 0.3, 0.8).exp()
    assert torch.trapezoid(p, x).item() == pytest.approx(1.0, abs=1e-4)
    # by hand at x = e^mu: z = 0, so log p = -log(2 pi)/2 - log sigma - mu
    at = ex.exp_map_log_prob_reference(torch.tensor([math.exp(0.3)]), 0.3, 0.8)
    assert at.item() == pytest.approx(-0.5 * math.log(2 * math.pi) - math.log(0.8) - 0.3)


def test_bisection_reference_is_the_package_inverse() -> None:
    f = TanhBump(a=2.0, b=2.0)
    x = torch.linspace(-5, 5, 41, dtype=torch.float64)
    z = ex.invert_increasing_reference(f.forward, x, x - 2.0, x + 2.0)
    torch.testing.assert_close(z, f.inverse(x), atol=1e-12, rtol=0)


def test_coupled_tanh_determinant_by_hand_at_the_origin() -> None:
    # J(0) = [[1, a], [b, 1]], det = 1 - ab
    got = ex.coupled_tanh_log_det_reference(torch.zeros(1, 2, dtype=torch.float64), 0.8, 0.5)
    assert got.item() == pytest.approx(math.log(1 - 0.4))
