"""Lesson 08's exercises agree with the course code the lesson continues with."""

from __future__ import annotations

import pytest
import torch

from course_utils import inpaint as ip
from course_utils.core.metrics import masked_psnr
from course_utils.exercises import get, lesson08

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


def test_the_ascent_step_raises_a_glows_log_p_on_the_hole_only() -> None:
    from course_utils.glow.model import Glow

    torch.manual_seed(0)
    model = Glow(levels=2, blocks=1, hidden=8, net="gated", net_layers=1, logit_alpha=1e-5)
    model.initialize(torch.rand(8, 1, 28, 28))
    model.eval().requires_grad_(False)
    coords = ip.coordinates(model)
    x = torch.rand(2, 1, 28, 28) * 0.8 + 0.1
    mask = ip.make_masks("centre", 2, size=8)
    y = coords.to_model(x)
    stepped = lesson08.ascent_step_reference(coords.pixel_log_prob, y, mask, 1e-3)
    assert torch.equal(stepped[~mask], y[~mask])
    with torch.no_grad():
        assert (coords.pixel_log_prob(stepped) > coords.pixel_log_prob(y)).all()


def test_each_exercise_has_its_lessons_title() -> None:
    assert [get(f"08.{k}").title for k in (1, 2, 3)] == [
        "one ascent step on the hole",
        "the hole's PSNR",
        "MALA's acceptance ratio",
    ]
