"""Lesson 08's panel: its plain function and its widgets, headless."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils.core.widgets import NOT_RUNNING_HINT
from course_utils.panels.inpaint import (
    ascent_trace_figure,
    chain_figure,
    inpaint_figure,
    inpaint_panel,
    panel_mask,
)

pytestmark = pytest.mark.usefixtures("rng")


FAST = {"starts": 2, "ascent_steps": 3}


def test_the_figure_shows_every_method_with_its_hole_psnr(tiny_glow, inpaint_problem) -> None:
    model, images, train = tiny_glow, inpaint_problem.images, inpaint_problem.pool
    fig = inpaint_figure(model, images, train, index=1, kind="noise", size=14, steps=4, **FAST)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "masked" and titles[6] == "original"
    assert titles[1].startswith("neighbour average") and titles[2].startswith("Gaussian")
    assert "mean of 2 fits" in titles[5]
    assert all("dB" in t for t in titles[1:6] + titles[7:9])  # every fill and both fits
    trace = fig.axes[-1]
    assert len(trace.lines) == 1 + 1  # the ascent, the original's level
    without = inpaint_figure(model, images, None, index=0, steps=2, **FAST)
    assert "neighbour" not in " ".join(ax.get_title() for ax in without.axes)
    with pytest.raises(ValueError, match="index must be below 4"):
        inpaint_figure(model, images, train, index=4)
    plt.close("all")


def test_the_ascent_trace_figure_draws_the_mean_the_chosen_curves_and_both_levels() -> None:
    trace = torch.arange(12.0).reshape(4, 3)  # 3 steps, 3 images
    fig = ascent_trace_figure(trace, originals=2.0, black=-1.0, show=2, title="t")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 + 1 + 2 and ax.get_title() == "t"
    assert list(ax.lines[2].get_ydata()) == [1.0, 4.0, 7.0, 10.0]  # the mean over images
    assert [line.get_ydata()[0] for line in ax.lines[3:]] == [2.0, -1.0]
    assert "mean of 3" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="steps \\+ 1, images"):
        ascent_trace_figure(torch.zeros(5), 0.0, 0.0)
    plt.close("all")


def test_the_same_settings_give_the_same_mask() -> None:
    a, b = panel_mask("squares", 8, 3, (1, 28, 28)), panel_mask("squares", 8, 3, (1, 28, 28))
    assert torch.equal(a, b) and a.shape == (1, 1, 28, 28)
    assert not torch.equal(a, panel_mask("squares", 8, 4, (1, 28, 28)))
    noise = panel_mask("noise", 14, 0, (1, 28, 28))
    assert abs(noise.float().mean().item() - 0.5) < 0.1  # size 14: half the pixels missing


def test_the_panel_recomputes_on_the_button_only(tiny_glow, inpaint_problem) -> None:
    images, train = inpaint_problem.images, inpaint_problem.pool
    p = inpaint_panel(tiny_glow, images, train, steps=4, **FAST)
    assert p.runs == 1 and p.button is not None
    assert all(not w.continuous_update for n, w in p.controls.items() if n != "kind")
    first = p.last_figure
    p.controls["kind"].value = "top"
    p.controls["steps"].value = 2
    assert p.runs == 1  # moving a control does not recompute
    p.button.click()
    assert p.runs == 2 and p.last_figure is not first
    assert "'top'" in p.last_figure.texts[0].get_text()  # the suptitle names the new mask
    assert repr(p) == NOT_RUNNING_HINT
    plt.close("all")


def test_the_chain_figure_draws_every_chain_its_original_and_the_acceptance() -> None:
    log_p = torch.arange(8.0).reshape(4, 2)  # 3 steps, 2 chains
    fig = chain_figure(log_p, torch.tensor([0.2, 0.5, 0.9]), 1, torch.tensor([1.0, 2.0]))
    left, right = fig.axes
    assert len(left.lines) == 2 + 2  # a curve and a dashed original per chain
    assert list(left.lines[2].get_ydata()) == [1.0, 3.0, 5.0, 7.0]
    assert list(right.lines[0].get_ydata()) == [0.2, 0.5, 0.9]
    with pytest.raises(ValueError, match="acceptance"):
        chain_figure(log_p, torch.zeros(4), 1, torch.zeros(2))
    plt.close("all")
