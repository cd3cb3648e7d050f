"""Lesson 05's panels and figures, headless: the plain functions and the widgets driven by code."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils.core.widgets import NOT_RUNNING_HINT
from course_utils.flows2d import flows, inference, targets
from course_utils.panels import inference as ipn

pytestmark = pytest.mark.usefixtures("rng", "one_thread")


def line_positions(ax) -> np.ndarray:
    """Mean x₁ of each drawn line of constant wᵀz, in the order they were drawn (by wᵀz)."""
    return np.array([line.get_xdata().mean() for line in ax.lines])


def test_raw_u_folds_and_u_hat_does_not() -> None:
    fig = ipn.planar_fold_figure(w1=1.0, w2=0.0, u1=-3.0, u2=0.0, b=0.0)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "(folds)" in labels[0] and "(folds)" not in labels[1]
    assert "-3.00" in labels[0] and "-0.95" in labels[1]  # wᵀû = softplus(−3) − 1
    raw, constrained = line_positions(fig.axes[1]), line_positions(fig.axes[2])
    assert not np.all(np.diff(raw) > 0)  # lines out of order: folded
    assert np.all(np.diff(constrained) > 0)  # in order: invertible
    # A u that does not fold stays in order under both.
    fig = ipn.planar_fold_figure(u1=0.5)
    assert np.all(np.diff(line_positions(fig.axes[1])) > 0)
    with pytest.raises(ValueError, match="w = .* must not be zero"):
        ipn.planar_fold_figure(w1=0.0, w2=0.0)
    plt.close("all")


def test_planar_panel_redraws_on_release() -> None:
    p = ipn.planar_panel()
    assert p.runs == 1 and p.button is None
    assert all(not w.continuous_update for w in p.controls.values())
    p.controls["u1"].value = 2.0
    assert p.runs == 2
    assert "(folds)" not in p.last_figure.axes[0].get_legend().get_texts()[0].get_text()
    assert p._repr_mimebundle_()["text/plain"] == NOT_RUNNING_HINT
    plt.close("all")


def test_fit_energy_measures_the_kl_it_reaches() -> None:
    fit = ipn.fit_energy("U1", n_layers=2, anneal=0.5, steps=30, n_eval=500)
    assert fit.anneal_steps == 15 and len(fit.history.step_loss) == 30
    assert abs(fit.reference.log_z - 1.8775) < 1e-3  # the lesson's grid value of U1
    assert fit.kl == pytest.approx(fit.reference.log_z - fit.estimate.elbo)
    assert fit.kl > 0  # a lower bound: the ELBO never beats log Z (here by far)
    with pytest.raises(ValueError, match="name must be one of"):
        ipn.fit_energy("U5")
    with pytest.raises(ValueError, match="anneal must be a share"):
        ipn.fit_energy("U1", anneal=1.0)
    with pytest.raises(ValueError, match="lr"):
        ipn.fit_energy("U1", lr=0.0)


def test_energy_panel_trains_only_when_train_is_pressed() -> None:
    p = ipn.energy_panel(steps=20)
    assert p.runs == 1 and p.button.description == "Train"
    p.controls["name"].value = "U2"
    p.controls["n_layers"].value = 2
    p.controls["lr"].value = 1e-2
    assert p.runs == 1  # no training on a control change
    p.button.click()
    assert p.runs == 2
    title = p.last_figure._suptitle.get_text()
    assert title.startswith("U2: KL(q‖p)") and "20 steps at learning rate 0.01" in title
    assert "K = 2" in p.last_figure.axes[1].get_title()
    plt.close("all")


def test_mode_masses_of_a_flow_sitting_on_one_mode() -> None:
    # q = the right component exactly: no mass on the left, KL(q‖p) = log 2, KL(p‖q) huge.
    p = targets.two_modes(6.0)
    on_right = flows.Flow(
        flows.StandardNormal(2),
        [inference.LocScale(2, loc=torch.tensor([2.0, 0.0]), scale=torch.tensor([0.5, 0.5]))],
    )
    row = ipn.mode_masses({"one mode": on_right}, p, n=4000)["one mode"]
    assert row["left"] == 0.0
    assert row["kl_qp"] == pytest.approx(math.log(2), abs=1e-4)
    assert row["kl_pq"] > 10


def test_mode_panel_fits_both_ways_on_click() -> None:
    p = ipn.mode_panel(steps=20)
    assert p.runs == 1 and p.button.description == "Fit"
    p.controls["separation"].value = 3.0
    assert p.runs == 1
    p.button.click()
    assert p.runs == 2
    fig = p.last_figure
    assert fig._suptitle.get_text().startswith("modes 3 apart")
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == [
        "RealNVP fitted by reverse KL",
        "RealNVP fitted by forward KL",
    ]
    plt.close("all")


def test_lesson_figures_draw_from_fitted_flows() -> None:
    flow = inference.planar_flow(1)
    fig = ipn.potentials_fit_figure({"U1": flow}, {"U1": 1.8775}, {"U1": 0.5}, n=30)
    assert fig.axes[1].get_title() == "flow density $q$, KL(q‖p) = 0.50"
    assert fig.axes[0].get_xticklabels()  # coordinates shown
    x, y = targets.logistic_data(10)
    post = targets.LogisticPosterior(x, y)
    fig = ipn.posterior_figure(post, {"a": flow, "b": flow}, torch.randn(5, 2), x, y, n=40)
    assert len(fig.axes[1].lines) == 6  # five draws and the true curve
    plt.close("all")


def test_figures_and_fits_leave_the_lessons_random_stream_alone() -> None:
    torch.manual_seed(7)
    before = torch.rand(3)
    torch.manual_seed(7)
    ipn.planar_fold_figure()
    ipn.fit_energy("U1", n_layers=1, steps=5, n_eval=100)
    ipn.mode_seeking_panel_figure(4.0, steps=3)
    torch.testing.assert_close(torch.rand(3), before)
    plt.close("all")
