"""Lesson 04's panel and figures, headless: the plain functions and the widgets driven by code."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils.core.widgets import NOT_RUNNING_HINT
from course_utils.flows2d.autoregressive import input_degrees, made_masks, time_directions
from course_utils.panels.autoregressive import (
    made_figure,
    made_jacobian_figure,
    made_panel,
    pass_times_figure,
    resolve_order,
    unreachable_inputs,
)


def connectivity(fig) -> np.ndarray:
    """The image of the last panel: 1 where some path joins input j to output i."""
    return np.asarray(fig.axes[3].images[0].get_array())


def test_connectivity_is_triangular_in_the_order_drawn() -> None:
    natural = connectivity(made_figure(4, "natural", hidden=6))
    np.testing.assert_array_equal(natural, np.tril(np.ones((4, 4)), -1))
    reversed_ = connectivity(made_figure(4, "reversed", hidden=6))
    np.testing.assert_array_equal(reversed_, np.triu(np.ones((4, 4)), 1))
    order = resolve_order(5, "random", seed=3)
    shuffled = connectivity(made_figure(5, "random", hidden=8, seed=3))
    np.testing.assert_array_equal(shuffled[order][:, order], np.tril(np.ones((5, 5)), -1))
    plt.close("all")


def test_narrow_hidden_layers_lose_inputs_and_say_so() -> None:
    # Width 2 for D = 5: hidden degrees 1, 2 only, so inputs of degree 3 and 4 reach nothing.
    deg = input_degrees(5)
    assert unreachable_inputs(deg, made_masks(deg, [2, 2])) == [2, 3]
    assert unreachable_inputs(deg, made_masks(deg, [4, 4])) == []  # D - 1 units: none lost
    fig = made_figure(5, "natural", hidden=2)
    assert "x3, x4 reach no output" in fig._suptitle.get_text()
    assert connectivity(fig)[:, 2:4].sum() == 0
    assert "reach no output" not in made_figure(5, "natural", hidden=4)._suptitle.get_text()
    plt.close("all")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="order must be one of"):
        resolve_order(3, "sideways")
    with pytest.raises(ValueError, match="order must be a permutation"):
        resolve_order(3, [0, 0, 1])
    with pytest.raises(ValueError, match="dim must be at most 12"):
        made_figure(13)
    with pytest.raises(ValueError, match="hidden must be an integer >= 1"):
        made_figure(4, hidden=0)


def test_panel_redraws_masks_of_the_new_dimension_and_order() -> None:
    p = made_panel()
    assert p.runs == 1 and connectivity(p.last_figure).shape == (5, 5)
    assert all(getattr(w, "continuous_update", False) is False for w in p.controls.values())
    p.controls["dim"].value = 7
    assert p.runs == 2 and connectivity(p.last_figure).shape == (7, 7)
    p.controls["order"].value = "reversed"
    np.testing.assert_array_equal(connectivity(p.last_figure), np.triu(np.ones((7, 7)), 1))
    p.controls["hidden"].value = 3
    assert "reach no output" in p.last_figure._suptitle.get_text()
    assert p.runs == 4
    assert p._repr_mimebundle_()["text/plain"] == NOT_RUNNING_HINT  # no kernel: a hint
    plt.close("all")


def test_jacobian_and_timing_figures_draw_what_they_are_given() -> None:
    jac = torch.tril(torch.rand(3, 3) + 0.1, -1)
    fig = made_jacobian_figure(jac, [0, 1, 2])
    assert len(fig.axes) == 3  # two heat maps and the colour bar
    assert sum(t.get_text() == "0" for t in fig.axes[0].texts) == 6  # the exact zeros
    rows = time_directions([2, 3], hidden=8, batch=16, repeats=1)
    fig = pass_times_figure(rows)
    maf = fig.axes[0]
    assert [line.get_label() for line in maf.lines][2] == "D × one pass (prediction)"
    density = [r["density_s"] * 1e3 for r in rows if r["model"] == "MAF"]
    np.testing.assert_allclose(maf.lines[0].get_ydata(), density)
    np.testing.assert_allclose(maf.lines[2].get_ydata(), [2 * density[0], 3 * density[1]])
    plt.close("all")
