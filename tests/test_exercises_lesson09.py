"""Lesson 09's exercise references are the course's own functions, written out."""

from __future__ import annotations

import torch

from course_utils.composite.losses import base_noise, channel_mean_gap
from course_utils.exercises import lesson09


def test_colour_gap_is_the_course_term() -> None:
    gen = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(6, 3, 8, 8, generator=gen), torch.rand(4, 3, 4, 4, generator=gen)
    torch.testing.assert_close(lesson09.colour_gap_reference(x, x_hat), channel_mean_gap(x, x_hat))


def test_colour_gap_gradient_is_the_course_terms_gradient() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, 6, 6, generator=gen)
    x_hat = torch.rand(7, 3, 6, 6, generator=gen).requires_grad_(True)
    channel_mean_gap(x, x_hat).backward()
    torch.testing.assert_close(
        lesson09.colour_gap_gradient_reference(x, x_hat.detach()), x_hat.grad
    )


def test_noise_of_length_is_configuration_c(make_tiny_glow) -> None:
    model = make_tiny_glow(shape=(3, 28, 28))
    ours = base_noise(model, 5, 0.7, scale_noise=False, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)  # the same draws as base_noise, level by level
    eps = [torch.randn((5, *q.shape), generator=gen) for q in model.flow.q0]
    for a, b in zip(lesson09.noise_of_length_reference(eps, 0.7), ours, strict=True):
        torch.testing.assert_close(a, b)
