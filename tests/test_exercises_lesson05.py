"""Lesson 05's checkers: a hand computation of û, and correct answers written differently."""

from __future__ import annotations

import math

import torch

from course_utils.exercises import evaluate
from course_utils.exercises.lesson05 import u_hat_reference


def test_u_hat_by_hand() -> None:
    # w = (2, 0), u = (-3, 0): wᵀu = -6, m = -1 + log(1 + e⁻⁶), û = u + (m + 6) w / 4.
    w, u = torch.tensor([2.0, 0.0]), torch.tensor([-3.0, 0.0])
    m = -1 + math.log1p(math.exp(-6))
    want = torch.tensor([-3.0 + (m + 6) * 2 / 4, 0.0])
    torch.testing.assert_close(u_hat_reference(w, u), want)
    assert float(w @ u_hat_reference(w, u)) > -1


def test_u_hat_through_a_projection_is_accepted() -> None:
    def by_projection(w, u):
        unit = w / w.norm()
        m = -1 + torch.nn.functional.softplus(w @ u)
        return u - (u @ unit) * unit + m * unit / w.norm()  # u across w, plus m along w

    assert evaluate("05.3", by_projection).status == "correct"


def test_reverse_kl_with_log_q_from_the_density_direction_is_accepted() -> None:
    def via_log_prob(flow, log_target, n, generator=None):
        x, _ = flow.forward(flow.base.sample(n, generator))
        return (flow.log_prob(x) - log_target(x)).mean()  # log q by the inverse: also right

    assert evaluate("05.1", via_log_prob).status == "correct"


def test_planar_log_det_with_log1p_is_accepted() -> None:
    def with_log1p(z, w, u_hat, b):
        return torch.log1p((1 - torch.tanh(z @ w + b) ** 2) * (w @ u_hat))

    assert evaluate("05.2", with_log1p).status == "correct"
