"""Lesson 01's bijections, figures and panel (headless, no browser).

The bijections' inverses and log-derivatives are checked in ``test_invertible_layers.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_utils.core import plots
from course_utils.core.widgets import Panel, slider
from course_utils.flows2d.bijections import (
    Linear2D,
    SinhArcsinh,
    TanhBump,
    pushforward_log_prob,
)
from course_utils.flows2d.plots import change_of_area_2d
from course_utils.panels.warp import warp_figure, warp_panel


def test_sinh_arcsinh_reduces_to_affine_and_matches_normal() -> None:
    f = SinhArcsinh(loc=1.0, scale=2.0)
    x = torch.linspace(-5, 7, 50, dtype=torch.float64)
    ours = pushforward_log_prob(x, f.inverse, f.log_abs_det)
    ref = torch.distributions.Normal(1.0, 2.0).log_prob(x)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("params", [{"skew": 0.9}, {"tail": 0.5}, {"tail": 2.0, "scale": 0.3}])
def test_pushforward_density_integrates_to_one(params: dict) -> None:
    f = SinhArcsinh(**params)
    x = torch.linspace(-300, 300, 600_001, dtype=torch.float64)
    mass = torch.trapezoid(torch.exp(pushforward_log_prob(x, f.inverse, f.log_abs_det)), x)
    assert abs(mass.item() - 1) < 1e-4


def test_bad_bijection_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="tail and scale must be positive"):
        SinhArcsinh(tail=0.0)
    with pytest.raises(ValueError, match="singular"):
        Linear2D([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        Linear2D([[1.0, 0.0, 0.0]])


def test_linear_2d_matches_multivariate_normal(rng: torch.Generator) -> None:
    a = Linear2D([[2.0, 0.5], [-0.3, 0.7]])
    x = torch.randn(100, 2, generator=rng) * 2
    mvn = torch.distributions.MultivariateNormal(torch.zeros(2), a.matrix @ a.matrix.T)
    torch.testing.assert_close(pushforward_log_prob(x, a.inverse, a.log_abs_det), mvn.log_prob(x))


def test_warp_figure_histogram_follows_formula() -> None:
    fig = warp_figure(skew=0.8, tail=0.7)
    hist_ax = fig.axes[2]
    # The filled histogram (a patch) and the formula line are both drawn.
    assert len(hist_ax.lines) == 1 and len(hist_ax.patches) >= 1
    xs, density = hist_ax.lines[0].get_data()
    assert np.all(np.asarray(density) >= 0)
    # The curve's mass inside the window equals P(f^-1(-6) < Z < f^-1(6)), by the CDF.
    f = SinhArcsinh(skew=0.8, tail=0.7)
    normal = torch.distributions.Normal(0.0, 1.0)
    inside = normal.cdf(f.inverse(torch.tensor(6.0))) - normal.cdf(f.inverse(torch.tensor(-6.0)))
    assert np.trapezoid(density, xs) == pytest.approx(inside.item(), abs=2e-3)


def test_warp_panel_redraws_on_slider_change() -> None:
    p = warp_panel()
    assert isinstance(p, Panel) and p.runs == 1
    first = p.last_figure
    assert all(not w.continuous_update for w in p.controls.values())
    p.controls["skew"].value = 1.5
    assert p.runs == 2 and p.last_figure is not first
    # The plotted map follows the new skew: x = f(0) = sinh(1.5) at z = 0.
    zs, xs = p.last_figure.axes[1].lines[0].get_data()
    assert np.interp(0.0, zs, xs) == pytest.approx(math.sinh(1.5), abs=0.05)


def test_panel_with_button_runs_only_on_click() -> None:
    calls: list[float] = []

    def fn(a: float):
        calls.append(a)
        return plots.loss_curves({"a": [a, a]})

    p = Panel(fn, {"a": slider(1.0, 0.0, 2.0, 0.1, "a")}, button="Run")
    p.controls["a"].value = 1.5
    assert calls == []
    p.button.click()
    assert calls == [1.5] and p.runs == 1


def test_save_figure_writes_into_figures_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_FIGURES_DIR", str(tmp_path))
    fig = change_of_area_2d({"id": Linear2D([[1.0, 0.0], [0.0, 1.0]])}, n=20)
    path = plots.save_figure(fig, "test_fig")
    assert path == tmp_path / "test_fig.png" and path.stat().st_size > 1000


def test_change_of_area_figure_has_ticks_and_a_parallelogram_of_area_det() -> None:
    maps = {"squash": Linear2D([[0.8, 0.6], [0.3, 0.85]]), "stretch": Linear2D([[2.0, 0], [0, 1]])}
    fig = change_of_area_2d(maps, n=20)
    for ax, f in zip(fig.axes[: len(maps)], maps.values(), strict=True):
        assert list(ax.get_xticks()) == list(range(-3, 4)) == list(ax.get_yticks())
        outline = ax.patches[0].get_xy()  # the image of the unit square, drawn first
        x, y = outline[:-1, 0], outline[:-1, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        assert area == pytest.approx(abs(float(torch.linalg.det(f.matrix))), rel=1e-6)
    assert fig.axes[0].get_ylabel() and fig.axes[0].get_xlabel()


def test_fast_mode_figures_never_go_to_the_repository(monkeypatch) -> None:
    from course_utils.core import config

    monkeypatch.delenv("COURSE_FIGURES_DIR", raising=False)
    monkeypatch.setenv("COURSE_FAST", "1")
    assert config.figures_dir() != config.REPO_ROOT / "figures"
    monkeypatch.setenv("COURSE_FAST", "0")
    assert config.figures_dir() == config.REPO_ROOT / "figures"


def test_image_grid_checks_shapes_and_tiles() -> None:
    fig = plots.image_grid(torch.rand(10, 1, 28, 28), nrow=5)
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (2 * 30 + 2, 5 * 30 + 2)
    with pytest.raises(ValueError, match=r"\(n, 1\|3, H, W\)"):
        plots.image_grid(torch.rand(4, 2, 28, 28))


@pytest.mark.parametrize(("a", "b"), [(2.0, 2.0), (0.5, 1.0), (-0.4, 2.0)])
def test_tanh_bump_density_integrates_to_one(a: float, b: float) -> None:
    f = TanhBump(a=a, b=b)
    xs = torch.linspace(-20, 20, 20_001, dtype=torch.float64)  # Gaussian tails, shifted by |a|
    mass = torch.trapezoid(torch.exp(pushforward_log_prob(xs, f.inverse, f.log_abs_det)), xs)
    assert abs(mass.item() - 1) < 1e-4


def _modes(log_p: torch.Tensor) -> int:
    rise = log_p[1:] - log_p[:-1]
    return int(((rise[:-1] > 1e-13) & (rise[1:] < -1e-13)).sum())


def test_tanh_bump_has_two_modes_exactly_when_its_criterion_says() -> None:
    # Counted on the density of x itself (a grid in x, the inverse by bisection).
    xs = torch.linspace(-8, 8, 8_001, dtype=torch.float64)
    for a, b in [(2.0, 2.0), (0.3, 3.0), (2.0, 0.6), (0.5, 1.0), (3.0, 0.5), (1.0, 1.2)]:
        f = TanhBump(a=a, b=b)
        modes = _modes(pushforward_log_prob(xs, f.inverse, f.log_abs_det))
        assert modes == (2 if f.two_modes() else 1), (a, b, modes)
    with pytest.raises(ValueError, match="b must be positive"):
        TanhBump(a=1.0, b=0.0)
    with pytest.raises(ValueError, match="a must be above -1/b"):
        TanhBump(a=-1.0, b=2.0)


def test_sinh_arcsinh_is_unimodal_where_its_map_is_convex_then_concave() -> None:
    xs = torch.linspace(-40, 40, 40_001, dtype=torch.float64)
    for skew in (-1.5, 0.0, 0.7):
        for tail in (1.5, 2.5, 4.0):  # tail > 1: steep in the middle, flatter outside
            f = SinhArcsinh(skew=skew, tail=tail)
            assert _modes(pushforward_log_prob(xs, f.inverse, f.log_abs_det)) == 1
