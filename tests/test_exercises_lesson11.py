"""Lesson 11's exercise references are the course's own functions, written out.

(That every checker accepts its reference and rejects every planted wrong answer is
proven for all lessons by ``tests/test_exercises.py``; here the same, by name, plus
the references against the package.)
"""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.exercises import REGISTRY, lesson11
from course_utils.flows2d.conditional import ConditionalAffineCoupling
from course_utils.glow.train import hybrid_loss


@pytest.mark.parametrize("exercise_id", ["11.1", "11.2", "11.3", "11.4"])
def test_the_checker_accepts_the_reference_and_rejects_every_planted_answer(exercise_id) -> None:
    e = REGISTRY.get(exercise_id)
    assert REGISTRY.evaluate(exercise_id, e.reference).status == "correct"
    assert len(e.wrong) >= 3
    for wrong in e.wrong:
        result = REGISTRY.evaluate(exercise_id, wrong)
        assert result.status == "wrong", f"{exercise_id}: {wrong.__name__} passes"


def test_coupling_reference_is_the_layers_inverse(rng) -> None:
    layer = ConditionalAffineCoupling([1.0, 0.0], context_dim=2, hidden=8)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(generator=rng)
        x, c = torch.randn(9, 2, generator=rng), torch.randn(9, 2, generator=rng)
        z, log_det = lesson11.conditional_inverse_reference(layer, x, c)
        want_z, want_log_det = layer.inverse(x, c)
    torch.testing.assert_close(z, want_z)
    torch.testing.assert_close(log_det, want_log_det)


def test_posterior_reference_is_bayes_rule_by_hand() -> None:
    # two classes, likelihoods 1:3 and a prior 3:1: the posterior is 1/2 each
    log_lik = torch.tensor([[-700.0, -700.0 + math.log(3.0)]], dtype=torch.float64)
    prior = torch.tensor([0.75, 0.25], dtype=torch.float64).log()
    got = lesson11.class_posterior_reference(log_lik, prior).exp()
    torch.testing.assert_close(got, torch.tensor([[0.5, 0.5]], dtype=torch.float64))


def test_drawn_as_asked_reference_by_hand() -> None:
    probs = torch.tensor(
        [[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.0, 1.0]], dtype=torch.float64
    )
    asked = torch.tensor([0, 0, 0, 1, 1])
    share, per_class = lesson11.drawn_as_asked_reference(probs, asked)
    assert share == pytest.approx(3 / 5)
    torch.testing.assert_close(per_class, torch.tensor([2 / 3, 1 / 2], dtype=torch.float64))


@pytest.mark.parametrize("weight", [0.0, 2.5])
def test_hybrid_reference_is_the_package_loss(rng, weight) -> None:
    log_p = torch.randn(6, 4, generator=rng) * 10 - 500
    y = torch.randint(0, 4, (6,), generator=rng)
    torch.testing.assert_close(
        lesson11.hybrid_loss_reference(log_p, y, weight), hybrid_loss(log_p, y, weight)
    )
