"""Lesson 02's panel: its plain functions and its widgets, headless."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils.core.data import moons
from course_utils.core.train import History
from course_utils.core.widgets import NOT_RUNNING_HINT
from course_utils.flows2d import flows
from course_utils.panels.coupling import (
    FlowsPanel,
    MoonsRun,
    first_layers,
    flows_panel,
    moons_flow_figure,
    train_moons_flow,
)


@pytest.fixture(scope="module")
def data():
    return moons(n_train=1024, n_test=256, noise=0.1)


def test_first_layers_compose_to_the_whole_flow(rng) -> None:
    model = flows.realnvp(2, 3, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(20, 2)
    with torch.no_grad():
        torch.testing.assert_close(
            first_layers(model, len(model.layers)).log_prob(x), model.log_prob(x)
        )
        # no layer: the base density itself
        torch.testing.assert_close(first_layers(model, 0).log_prob(x), model.base.log_prob(x))
        # k layers: the base pushed through layers 0..k-1, by hand
        z = torch.randn(20, 2)
        h = z
        for layer in model.layers[:2]:
            h, _ = layer(h)
        torch.testing.assert_close(first_layers(model, 2).forward(z)[0], h)
    with pytest.raises(ValueError, match="k must be at most the 5 layers"):
        first_layers(model, 6)


def test_training_learns_the_moons_and_leaves_the_random_state_alone(data, one_thread) -> None:
    train_x, test_x = data
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    run = train_moons_flow(train_x, test_x, n_couplings=2, hidden=16, epochs=3, seed=1)
    assert torch.equal(torch.rand(1), before)  # the caller's random numbers are untouched
    h = run.history
    assert len(h.eval) == 3 and h.steps == 3 * 2
    assert h.eval[-1] < h.eval[0]  # it learns
    # The recorded held-out NLL is the model's, measured independently here.
    with torch.no_grad():
        assert -run.model.log_prob(test_x).mean().item() == pytest.approx(h.eval[-1], abs=1e-5)
    assert (run.n_couplings, run.hidden, run.mixing, run.seed) == (2, 16, "linear", 1)
    assert run.n_layers == 3
    # Same seed, same run.
    again = train_moons_flow(train_x, test_x, n_couplings=2, hidden=16, epochs=3, seed=1)
    assert again.history.eval == h.eval


def test_bad_settings_are_refused_by_name(data) -> None:
    train_x, test_x = data
    with pytest.raises(ValueError, match="n_couplings must be at most 12"):
        train_moons_flow(train_x, test_x, n_couplings=13)
    with pytest.raises(ValueError, match="hidden must be an integer >= 1"):
        train_moons_flow(train_x, test_x, hidden=0)
    with pytest.raises(ValueError, match="mixing must be 'linear' or 'permutation'"):
        train_moons_flow(train_x, test_x, mixing="swap", epochs=1)
    with pytest.raises(ValueError, match=r"test_x must have shape \(n, 2\)"):
        train_moons_flow(train_x, test_x[:, :1])


def test_figure_shows_curves_density_and_samples_of_the_first_k_layers(data) -> None:
    _, test_x = data
    model = flows.realnvp(2, 2, 8)
    history = History(epoch_loss=[1.6, 1.4], eval=[1.5, 1.3])
    run = MoonsRun(model, history, 2, 8, "linear")
    fig = moons_flow_figure(run, k=0, test_x=test_x, floor=1.0)
    curves, density, samples = fig.axes[:3]
    assert [list(line.get_ydata()) for line in curves.lines[:2]] == [[1.6, 1.4], [1.5, 1.3]]
    assert "before any layer" in density.get_title()
    assert density.get_xlabel() == "$z_1$" and len(density.get_xticklabels()) > 0
    assert len(samples.collections) == 1  # no held-out data under the base's samples
    plt.close(fig)
    fig = moons_flow_figure(run, k=3, test_x=test_x)
    assert "whole flow" in fig.axes[1].get_title() and fig.axes[1].get_xlabel() == "$x_1$"
    assert len(fig.axes[2].collections) == 2  # held-out data and samples
    plt.close(fig)


def test_panel_trains_on_click_and_the_layer_slider_only_redraws(data, one_thread) -> None:
    train_x, test_x = data
    start = MoonsRun(flows.realnvp(2, 2, 8), History(epoch_loss=[1.5], eval=[1.4]), 2, 8, "linear")
    p = flows_panel(train_x, test_x, start=start, epochs=2)
    assert isinstance(p, FlowsPanel) and p.draws == 1 and p.run is start
    assert p.layers.max == p.layers.value == 3
    assert not p.layers.continuous_update
    assert not any(getattr(w, "continuous_update", False) for w in p.controls.values())
    p.layers.value = 1
    assert p.draws == 2 and p.run is start  # a redraw, no training
    assert "first 1 of 3 layers (1 coupling, 0 mixing)" in p.last_figure.axes[1].get_title()
    p.controls["n_couplings"].value = 3
    p.controls["hidden"].value = 16
    p.controls["mixing"].value = "permutation"
    assert p.draws == 2  # settings wait for Train
    p.train_button.click()
    run = p.run
    assert run is not start and (run.n_couplings, run.hidden, run.mixing) == (3, 16, "permutation")
    assert isinstance(run.model.layers[1], flows.Permutation)
    assert p.layers.max == p.layers.value == 5 and p.draws == 3
    assert p.progress.value == 2 and "held-out NLL" in p.status.value
    assert p._repr_mimebundle_()["text/plain"] == NOT_RUNNING_HINT  # no kernel: a hint
    plt.close("all")


def test_panel_without_a_start_trains_once(data, one_thread) -> None:
    train_x, test_x = data
    p = FlowsPanel(train_x, test_x, epochs=1)
    assert p.run is not None and p.draws == 1 and len(p.run.history.eval) == 1
    plt.close("all")
