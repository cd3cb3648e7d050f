"""Lesson 02's exercises: the lesson's own solutions pass, and the references are the package's."""

from __future__ import annotations

from pathlib import Path

import torch
from test_exercises_lesson01 import lesson_solutions

from course_utils.exercises import REGISTRY, evaluate
from course_utils.exercises import lesson02 as ex
from course_utils.flows2d import flows

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_coupling_flows_moons.ipynb"


def test_the_lessons_solutions_pass_their_checkers(capsys) -> None:
    solutions = lesson_solutions(NOTEBOOK)
    assert sorted(solutions) == ["02.1", "02.2", "02.3"]
    for exercise_id, fn in solutions.items():
        assert fn is not REGISTRY.get(exercise_id).reference, f"{exercise_id}: check refused it"
        assert evaluate(exercise_id, fn).status == "correct"
    assert capsys.readouterr().out.count("✓") == 3


def test_lu_reference_is_the_package_layers_matrix(rng) -> None:
    layer = flows.InvertibleLinear(3, seed=2)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    w = ex.lu_weight_reference(layer.p, layer.lower, layer.upper, layer.sign, layer.log_s)
    torch.testing.assert_close(w, layer.weight())


def test_the_learners_coupling_can_replace_the_packages(capsys) -> None:
    # The lesson loads its MyCoupling's weights into flows.AffineCoupling: same keys, same map.
    my_coupling = lesson_solutions(NOTEBOOK)["02.2"]
    a = my_coupling([0.0, 1.0], hidden=8)
    b = flows.AffineCoupling([0.0, 1.0], hidden=8)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.4 * torch.randn_like(p))
    b.load_state_dict(a.state_dict())
    z = torch.randn(16, 2)
    torch.testing.assert_close(a.forward(z)[0], b.forward(z)[0])
