"""Lesson 08's exercises agree with the course code the lesson continues with."""

from __future__ import annotations

import pytest
import torch

from course_utils import inpaint as ip
from course_utils.core.metrics import masked_psnr
from course_utils.exercises import lesson08

pytestmark = pytest.mark.usefixtures("rng")


def test_the_acceptance_exercise_is_the_samplers_own_ratio() -> None:
    y, prop, g, g2 = (torch.randn(4, 1, 5, 5) for _ in range(4))
    lp, lp2 = torch.randn(4), torch.randn(4)
    want = ip.mala_log_acceptance(y, prop, lp, lp2, g, g2, 0.3)
    got = lesson08.mala_log_acceptance_reference(y, prop, lp, lp2, g, g2, 0.3)
    torch.testing.assert_close(got, want)


def test_the_psnr_exercise_is_the_metric_above_its_floor() -> None:
    x, pred = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    mask = ip.make_masks("noise", 3, fraction=0.4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        lesson08.hole_psnr_reference(pred, x, mask), masked_psnr(pred, x, mask)
    )


def test_the_ascent_step_raises_a_glows_log_p_on_the_hole_only(tiny_glow, inpaint_problem) -> None:
    coords = ip.coordinates(tiny_glow.requires_grad_(False))
    x, mask = inpaint_problem.images, inpaint_problem.mask
    y = coords.to_model(x)
    stepped = lesson08.ascent_step_reference(coords.pixel_log_prob, y, mask, 1e-3)
    assert torch.equal(stepped[~mask], y[~mask])
    with torch.no_grad():
        assert (coords.pixel_log_prob(stepped) > coords.pixel_log_prob(y)).all()
