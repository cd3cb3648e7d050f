"""Lesson 06's panels and figures, headless: the plain functions and the widgets driven by code."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils.core.widgets import NOT_RUNNING_HINT
from course_utils.flows2d import continuous
from course_utils.panels import continuous as cp

pytestmark = pytest.mark.usefixtures("rng", "one_thread")


@pytest.fixture(scope="module")
def cnf():
    """A random (untrained) smooth field: the flow moves points, so solvers disagree."""
    torch.manual_seed(0)
    field = continuous.TimeMLP(2, hidden=16, zero_init=False)
    with torch.no_grad():
        field.net[-1].weight.mul_(3.0)  # a strong field: coarse Euler steps go visibly wrong
    return continuous.CNF(field, steps=8)


def test_density_grid_of_the_identity_flow_is_the_gaussian() -> None:
    identity = continuous.moons_cnf(hidden=8, steps=4)  # zero last layer: the flow is the identity
    g = cp.density_grid(identity, 1.0, n=41)
    want = np.exp(-(g.xx**2 + g.yy**2) / 2) / (2 * math.pi)
    np.testing.assert_allclose(g.density, want, rtol=1e-5, atol=1e-8)
    # The window [-3, 3.5] x [-3, 3] holds this share of N(0, I); the Riemann sum finds it.
    phi = torch.distributions.Normal(0.0, 1.0).cdf
    share = float(
        (phi(torch.tensor(3.5)) - phi(torch.tensor(-3.0))) * (2 * phi(torch.tensor(3.0)) - 1)
    )
    assert g.mass == pytest.approx(share, abs=2e-3)
    with pytest.raises(ValueError, match="method must be one of"):
        cp.density_grid(identity, 1.0, method="midpoint")


def test_mass_is_kept_by_an_accurate_solver_and_not_by_coarse_euler(cnf) -> None:
    accurate = cp.density_grid(cnf, 1.0, steps=32, method="rk4", n=60)
    coarse = cp.density_grid(cnf, 1.0, steps=1, method="euler", n=60)
    assert accurate.mass == pytest.approx(1.0, abs=0.02)
    assert abs(coarse.mass - 1.0) > 3 * abs(accurate.mass - 1.0)


def test_movie_positions_and_cached_densities(cnf) -> None:
    data = torch.randn(50, 2)
    movie = cp.FlowMovie.record(cnf, data, n_particles=20, frames=10)
    assert movie.path.shape == (11, 20, 2) and movie.frames == 10
    np.testing.assert_allclose(movie.positions(0.0), movie.z.numpy())
    with torch.no_grad():
        end, _ = continuous.CNF(cnf.field, steps=10).forward(movie.z)
    np.testing.assert_allclose(movie.positions(1.0), end.numpy(), atol=1e-5)
    first = movie.density(0.5, steps=8, n=20)
    assert movie.density(0.5, steps=8, n=20) is first  # computed once
    assert movie.density(0.0, steps=8, n=20).mass == pytest.approx(0.995, abs=0.01)
    with pytest.raises(ValueError, match=r"t must be in \[0, 1.0\]"):
        movie.positions(1.5)


def test_movie_panel_scrubs_time_and_changes_the_solver(cnf) -> None:
    movie = cp.FlowMovie.record(cnf, torch.randn(30, 2), n_particles=20, frames=20)
    p = cp.movie_panel(movie, steps=(4, 8), n=20)
    assert p.runs == 1 and p.button is None
    assert all(getattr(w, "continuous_update", False) is False for w in [p.controls["t"]])
    p.controls["t"].value = 0.75
    assert p.runs == 2
    ax_particles, ax_density = p.last_figure.axes[:2]
    assert ax_particles.get_title() == "particles, t = 0.75"
    np.testing.assert_allclose(ax_particles.collections[-1].get_offsets(), movie.positions(0.75))
    p.controls["steps"].value = 4
    assert p.runs == 3 and "(4 RK4 steps" in p.last_figure.axes[1].get_title()
    assert (0.75, 4, 20) in movie.densities
    assert p._repr_mimebundle_()["text/plain"] == NOT_RUNNING_HINT
    plt.close("all")


def test_solver_panel_reports_the_mass_of_each_setting(cnf) -> None:
    study = cp.SolverStudy(cnf, torch.randn(100, 2), n=40)
    p = cp.solver_panel(study)
    assert p.runs == 1
    assert p.last_figure._suptitle.get_text().startswith("EULER, 8 steps: total mass")
    p.controls["method"].value = "rk4"
    p.controls["steps"].value = 32
    assert p.runs == 3
    title = p.last_figure._suptitle.get_text()
    g, nll = study.run("rk4", 32)
    assert f"total mass {g.mass:.3f}" in title and f"held-out NLL {nll:.3f}" in title
    # RK4 with 32 steps is the reference itself: the difference panel is zero everywhere.
    np.testing.assert_array_equal(g.density - study.reference.density, 0)
    plt.close("all")


def test_lesson_figures(cnf) -> None:
    movie = cp.FlowMovie.record(cnf, torch.randn(30, 2), n_particles=20, frames=8)
    fig = cp.steps_comparison_figure(movie, times=(0.5, 1.0), steps=(4, 8), n=15)
    assert [ax.get_title() for ax in fig.axes[:4]] == [  # rows: steps, columns: times
        "t = 0.5, 4 RK4 steps",
        "t = 1, 4 RK4 steps",
        "t = 0.5, 8 RK4 steps",
        "t = 1, 8 RK4 steps",
    ]
    assert fig.axes[4].get_title().startswith("|difference|: largest")  # the third row
    assert fig.axes[0].get_xticklabels()  # coordinates shown
    fig = cp.trajectories_figure(movie, times=(0.0, 1.0), steps=4, n=15)
    assert len(fig.axes) == 4
    fig = cp.paths_figure(movie, n_paths=5)
    assert len(fig.axes[0].lines) == 5
    fig = cp.solver_order_figure(
        {"Euler": [0.1, 0.05], "RK4": [1e-3, 6e-5]}, [2, 4], {"euler": 1, "rk4": 4}
    )
    np.testing.assert_array_equal(fig.axes[0].lines[1].get_xdata(), [8, 16])  # RK4: 4 evals a step
    single = {"rademacher": torch.randn(64, 3), "gaussian": torch.randn(64, 3)}
    theory = {"rademacher": torch.ones(3), "gaussian": torch.ones(3)}
    fig = cp.hutchinson_figure(single, theory, torch.zeros(3), dim=3)
    measured = fig.axes[1].lines[0].get_ydata()
    assert len(measured) == 3  # k = 1, 2, 4 (each with at least 16 averages)
    np.testing.assert_allclose(measured[0], single["rademacher"].pow(2).mean().sqrt(), rtol=1e-6)
    plt.close("all")
