"""The moons figures of lessons 02-03 and 11: what they draw, with coordinates and shared scales."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils.core.train import History
from course_utils.flows2d import models2d
from course_utils.flows2d.conditional import conditional_realnvp
from course_utils.flows2d.plots import (
    base_and_flow_densities,
    conditional_densities_figure,
    density_sample_grid,
    nll_curves,
)
from course_utils.flows2d.targets import noisy_moons


def _gaussian(mean: float):
    def log_prob(x):
        return torch.distributions.Normal(mean, 0.5).log_prob(x).sum(1)

    return log_prob


def test_nll_curves_pair_train_and_held_out_and_start_below_the_floor() -> None:
    runs = {
        "a": History(epoch_loss=[1.5, 1.2], eval=[1.4, 1.1]),
        "b": History(epoch_loss=[1.6, 1.3], eval=[1.5, 1.2]),
    }
    fig = nll_curves(runs, floor=1.0)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels[:4] == ["a: train", "a: held-out", "b: train", "b: held-out"]
    assert (
        ax.lines[0].get_color() == ax.lines[1].get_color() and ax.lines[1].get_linestyle() == "--"
    )
    assert ax.get_ylim()[0] < 1.0 < ax.get_ylim()[1]
    plt.close(fig)
    fig = nll_curves(runs, train=False, styles={"b": "--"})
    assert [line.get_label() for line in fig.axes[0].lines] == ["a", "b"]
    assert fig.axes[0].lines[1].get_linestyle() == "--"
    plt.close(fig)


def test_density_sample_grid_has_one_column_per_model_on_one_scale() -> None:
    data = torch.randn(100, 2)
    fig = density_sample_grid(
        {"left, one": _gaussian(0.0), "right": _gaussian(1.0)},
        {"left, one": torch.randn(30, 2), "right": torch.randn(20, 2) + 1},
        data,
        n=40,
    )
    axes = fig.axes[:4]  # then the colour bar
    assert axes[0].get_title().startswith("left, one") and "30 samples" in axes[2].get_title()
    assert "left, one: 30 samples" == axes[2].get_title()
    levels = [ax.collections[-1].levels for ax in axes[:2]]
    assert list(levels[0]) == list(levels[1])  # one colour scale
    assert all(len(ax.get_xticklabels()) > 0 for ax in axes)
    plt.close(fig)


def test_base_and_flow_densities_draw_latent_above_data(rng) -> None:
    models = {
        "Gaussian base": models2d.realnvp_nf(2, 1, 8),
        "mixture base": models2d.realnvp_nf(2, 1, 8, base=models2d.gaussian_mixture(2, 2)),
    }
    fig = base_and_flow_densities(models, n=40)
    top, bottom = fig.axes[0], fig.axes[2]
    assert top.get_xlabel() == "$z_1$" and bottom.get_xlabel() == "$x_1$"
    assert "latent space" in top.get_title() and "data space" in bottom.get_title()
    plt.close(fig)


# ----------------------------------------------- lesson 11: a conditional flow's contexts


def test_conditional_densities_draw_one_column_per_context() -> None:
    torch.manual_seed(0)
    flow = conditional_realnvp(context_dim=1, n_couplings=2, hidden=8)
    contexts = [0.05, 0.2]
    data = {c: noisy_moons(50, noise=c)[0] for c in contexts[:1]}
    fig = conditional_densities_figure(flow, contexts, data=data, n_samples=30, n=20)
    axes = fig.axes
    assert len(axes) == 4
    assert axes[0].get_title().startswith("σ = 0.05") and "density" in axes[0].get_title()
    assert axes[1].get_title().startswith("σ = 0.2")
    # bottom row: data (grey) and samples for the first context, samples only for the second
    assert [len(ax.collections) for ax in axes[2:]] == [2, 1]
    assert len(axes[3].collections[0].get_offsets()) == 30
    assert flow.training  # left as it was
    fig = conditional_densities_figure(flow, [0.1], labels=["thin"], n_samples=5, n=10)
    assert fig.axes[0].get_title().startswith("thin")
    plt.close("all")


def test_conditional_densities_refuse_bad_input() -> None:
    flow = conditional_realnvp(context_dim=1, n_couplings=1, hidden=4)
    with pytest.raises(ValueError, match="one-number context"):
        conditional_densities_figure(conditional_realnvp(context_dim=2, n_couplings=1), [0.1])
    with pytest.raises(ValueError, match="at least one"):
        conditional_densities_figure(flow, [])
    with pytest.raises(ValueError, match="labels"):
        conditional_densities_figure(flow, [0.1, 0.2], labels=["a"])
    with pytest.raises(ValueError, match=r"data\[0.1\]"):
        conditional_densities_figure(flow, [0.1], data={0.1: torch.zeros(5, 3)})
    with pytest.raises(ValueError, match="n_samples"):
        conditional_densities_figure(flow, [0.1], n_samples=0)
