"""Lesson 08's exercises agree with the course code the lesson continues with."""

from __future__ import annotations

import pytest
import torch

from course_utils import inpaint as ip
from course_utils.exercises import lesson08

pytestmark = pytest.mark.usefixtures("rng")


def test_the_acceptance_exercise_is_the_samplers_own_ratio() -> None:
    y, prop, g, g2 = (torch.randn(4, 1, 5, 5) for _ in range(4))
    lp, lp2 = torch.randn(4), torch.randn(4)
    want = ip.mala_log_acceptance(y, prop, lp, lp2, g, g2, 0.3)
    got = lesson08.mala_log_acceptance_reference(y, prop, lp, lp2, g, g2, 0.3)
    torch.testing.assert_close(got, want)


def test_the_objective_exercise_is_what_latent_map_minimises(tiny_glow, inpaint_problem) -> None:
    x, mask = inpaint_problem.images, inpaint_problem.mask
    res = ip.latent_inpaint(tiny_glow, x, mask, steps=3, sigma=0.1)
    with torch.no_grad():
        decoded = tiny_glow.decode(res.extra["z"])
    got = lesson08.latent_map_objective_reference(decoded, x, mask, res.extra["z"], 0.1)
    torch.testing.assert_close(got, res.extra["objective"])
    torch.testing.assert_close(got, ip.latent_objective(decoded, x, mask, res.extra["z"], 0.1))


def test_the_ascent_step_raises_a_glows_log_p_on_the_hole_only(tiny_glow, inpaint_problem) -> None:
    coords = ip.coordinates(tiny_glow.requires_grad_(False))
    x, mask = inpaint_problem.images, inpaint_problem.mask
    y = coords.to_model(x)
    stepped = lesson08.ascent_step_reference(coords.pixel_log_prob, y, mask, 1e-3)
    assert torch.equal(stepped[~mask], y[~mask])
    with torch.no_grad():
        assert (coords.pixel_log_prob(stepped) > coords.pixel_log_prob(y)).all()
