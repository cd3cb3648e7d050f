"""Lesson 06's checkers judge accuracy and unbiasedness, not one way of writing the code."""

from __future__ import annotations

import torch

from course_utils.exercises import evaluate


def test_another_fourth_order_runge_kutta_step_passes() -> None:
    def three_eighths_rule(f, t, y, h):  # Kutta's 3/8 rule: also fourth order
        k1 = f(t, y)
        k2 = f(t + h / 3, y + h * k1 / 3)
        k3 = f(t + 2 * h / 3, y + h * (k2 - k1 / 3))
        k4 = f(t + h, y + h * (k1 - k2 + k3))
        return y + h * (k1 + 3 * k2 + 3 * k3 + k4) / 8

    assert evaluate("06.1", three_eighths_rule).status == "correct"


def test_a_second_slope_taken_from_the_wrong_state_fails_on_the_linear_ode() -> None:
    def k3_from_k1(f, t, y, h):  # right for dy/dt = g(t), wrong as soon as f depends on y
        k1 = f(t, y)
        k2 = f(t + h / 2, y + (h / 2) * k1)
        k3 = f(t + h / 2, y + (h / 2) * k1)
        k4 = f(t + h, y + h * k3)
        return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)

    result = evaluate("06.1", k3_from_k1)
    assert result.status == "wrong" and "halving h" in result.message


def test_divergence_from_the_full_jacobian_is_accepted() -> None:
    def by_full_jacobian(f_z, z):
        rows = [
            torch.autograd.grad(f_z[:, i].sum(), z, retain_graph=True)[0] for i in range(z.shape[1])
        ]
        return torch.stack(rows, 1).diagonal(dim1=1, dim2=2).sum(1)

    assert evaluate("06.2", by_full_jacobian).status == "correct"


def test_an_estimate_exact_only_for_a_diagonal_jacobian_fails() -> None:
    def diagonal_only(f_z, z, eps):  # εᵢ² Jᵢᵢ summed: the trace for Rademacher probes, not εᵀJε
        div = torch.zeros(len(z), dtype=z.dtype)
        for i in range(z.shape[1]):
            g = torch.autograd.grad(f_z[:, i].sum(), z, retain_graph=True)[0]
            div = div + g[:, i] * eps[:, i] ** 2
        return div

    assert evaluate("06.3", diagonal_only).status == "wrong"
