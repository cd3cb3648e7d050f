"""Lesson 07's exercises agree with the course code the lesson continues with."""

from __future__ import annotations

import pytest
import torch

from course_utils.exercises import lesson07
from course_utils.glow.model import Glow

pytestmark = pytest.mark.usefixtures("rng")


def test_the_actnorm_exercise_is_what_glow_initialize_does() -> None:
    model = Glow(levels=1, blocks=2, hidden=8, logit_alpha=1e-5, net="gated")
    x = torch.rand(32, 1, 28, 28)
    model.initialize(x)
    # the first ActNorm an image meets sits after the logit and the squeeze
    h, _ = model.flow.transform.inverse(x)
    layers = list(model.flow.flows[0])
    h, _ = layers[-1].inverse(h)  # the squeeze
    first = layers[-2]
    t, s = lesson07.actnorm_start_reference(h)
    torch.testing.assert_close(t, first.t.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(s, first.s.detach(), atol=1e-5, rtol=1e-4)


def test_the_block_exercise_gives_the_models_own_log_density(make_tiny_glow) -> None:
    # a one-level Glow without a logit is its layers and one base: log p = log-dets + log q0(z)
    model = make_tiny_glow(levels=1, logit_alpha=None, full_res=0)
    x = torch.rand(3, *model.config.shape)
    with torch.no_grad():
        z, log_det = lesson07.encode_block_reference(list(model.flow.flows[0]), x)
        torch.testing.assert_close(log_det + model.flow.q0[0].log_prob(z), model.log_prob(x))
        torch.testing.assert_close(z, model.encode(x)[0])
