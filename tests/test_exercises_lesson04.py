"""Lesson 04's checkers judge the property asked for, not one way of writing it."""

from __future__ import annotations

import torch

from course_utils.exercises import evaluate
from course_utils.exercises.lesson04 import made_masks_reference, maf_sampling_reference


def test_masks_with_another_valid_choice_of_hidden_degrees_pass() -> None:
    # The MADE paper draws hidden degrees at random; any choice that gives every degree
    # 1..D-1 a unit is autoregressive and wastes no connection.
    def shuffled_hidden_degrees(dim, hidden, order):
        degrees, _ = made_masks_reference(dim, hidden, order)
        gen = torch.Generator().manual_seed(dim)
        new, masks, previous = [degrees[0]], [], degrees[0]
        for width in hidden:
            deg = (torch.arange(width) % (dim - 1) + 1)[torch.randperm(width, generator=gen)]
            masks.append((deg[:, None] >= previous[None, :]).float())
            new.append(deg)
            previous = deg
        masks.append((degrees[0][:, None] > previous[None, :]).float())
        return new, masks

    assert evaluate("04.1", shuffled_hidden_degrees).status == "correct"


def test_masks_that_are_autoregressive_but_waste_connections_fail() -> None:
    def all_hidden_degree_one(dim, hidden, order):
        degrees, _ = made_masks_reference(dim, hidden, order)
        masks, previous = [], degrees[0]
        for width in hidden:
            deg = torch.ones(width, dtype=torch.long)
            masks.append((deg[:, None] >= previous[None, :]).float())
            previous = deg
        masks.append((degrees[0][:, None] > previous[None, :]).float())
        return degrees, masks

    result = evaluate("04.1", all_hidden_degree_one)
    assert result.status == "wrong" and "cut a connection" in result.message


def test_more_sampling_passes_than_needed_are_still_right() -> None:
    def extra_passes(made, s_scale, z):
        x = torch.zeros_like(z)
        for _ in range(z.shape[1] + 2):  # passes after the D-th change nothing
            raw_s, t = made(x).unbind(1)
            s = s_scale * torch.tanh(raw_s)
            x = z * torch.exp(s) + t
        return x, s.sum(1)

    assert evaluate("04.2", extra_passes).status == "correct"
    assert evaluate("04.2", maf_sampling_reference).status == "correct"
