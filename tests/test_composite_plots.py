"""Lesson 09's figures and measures: noise lengths, one-colour backgrounds, the study's front."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.composite.finetune import TermHistory, evaluate
from course_utils.composite.losses import base_noise, sample_with_grad
from course_utils.composite.measure import single_background
from course_utils.composite.plots import noise_lengths, noise_scale_figure, study_front_figure
from course_utils.core.plots import smoothed
from course_utils.panels.playground import term_curves_figure

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def coloured_glow(make_tiny_glow):
    return make_tiny_glow(shape=(3, 28, 28))


def test_noise_lengths_give_back_the_noise_a_sample_was_drawn_from(coloured_glow) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = sample_with_grad(coloured_glow, 6, 0.7, True, g)
        eps = base_noise(coloured_glow, 6, 0.7, True, torch.Generator().manual_seed(0))
    length = torch.sqrt(sum(e.pow(2).flatten(1).sum(1) for e in eps))
    torch.testing.assert_close(noise_lengths(coloured_glow, x), length, rtol=1e-3, atol=1e-3)
    assert length.mean() == pytest.approx(0.7 * math.sqrt(coloured_glow.num_dims), rel=0.1)


def test_noise_scale_figure_shows_three_histograms_and_two_grids(coloured_glow) -> None:
    u = torch.rand(20, 3, 28, 28, generator=torch.Generator().manual_seed(1)) * 0.9 + 0.05
    fig = noise_scale_figure(coloured_glow, u, temperature=0.7, n=8)
    hist, *grids = fig.axes
    assert len(hist.patches) == 3 * 79  # three histograms of 80 edges
    assert hist.get_xscale() == "log" and len(grids) == 2
    assert [len(ax.images) for ax in grids] == [1, 1]


def test_single_background_finds_a_second_colour_and_ignores_a_stray_pixel() -> None:
    images = torch.full((4, 3, 28, 28), 0.1)
    images[1, :, 0, 0] = 0.9  # one stray pixel of 300 in the frame
    images[2, :, 20:, 20:] = 0.8  # a corner of another colour
    images[3, 0] = torch.linspace(0, 1, 28)  # a background drifting from one colour to another
    assert single_background(images).tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="width"):
        single_background(images, width=14)


def test_evaluate_counts_one_colour_backgrounds(coloured_glow) -> None:
    test = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    result = evaluate(coloured_glow, test, n_samples=8)
    assert 0.0 <= result["single_background"] <= 1.0


def test_smoothed_is_the_trailing_mean() -> None:
    assert smoothed([2.0, 4.0, 6.0, 8.0], window=3) == [2.0, 3.0, 4.0, 6.0]
    assert math.isnan(smoothed([math.nan, 1.0], window=1)[0])
    with pytest.raises(ValueError, match="window"):
        smoothed([1.0], window=0)


def _row(alpha, beta, gap, bpd, digits, classic=None, **point):
    return {
        "key": f"alpha={alpha:g} beta={beta:g}",
        "point": {"alpha": alpha, "beta": beta, **point},
        "classic": classic,
        "channel_gap": gap,
        "bpd": bpd,
        "recognisable": digits,
    }


def test_study_front_joins_each_alpha_and_labels_the_configurations() -> None:
    report = {
        "alphas": [0.0, 100.0],
        "start": {"channel_gap": 0.05, "bpd": 1.0, "recognisable": 0.5},
        "points": [
            _row(0.0, 0.0, 0.05, 1.0, 0.5),
            _row(0.0, 1.0, 0.02, 1.01, 0.45),
            _row(100.0, 0.0, 0.06, 1.02, 0.5, "b"),
            _row(100.0, 1.0, 0.03, 1.03, 0.4, "d"),
            _row(0.0, 0.0, 0.05, 1.0, 0.5, "a", scaled_nll=False),
            _row(100.0, 1.0, 0.04, 1.03, 0.4, "c", scale_noise=False),
        ],
    }
    fig = study_front_figure(report)
    left, right = fig.axes
    # one line per alpha (2 points each), and the starting model's star
    assert [len(line.get_xdata()) for line in left.lines[:2]] == [2, 2]
    labels = {t.get_text() for t in left.texts}
    assert {"(a)", "(b)", "(c)", "(d)"} <= labels
    assert right.get_ylabel().startswith("recognisable")


def test_term_curves_from_a_studys_logs() -> None:
    logs = {
        k: TermHistory(
            total=[1.0] * 30,
            nll=[1.0] * 30,
            recon=[1e-3 + i * 1e-5 for i in range(30)],
            channel=[0.05] * 30,
        )
        for k in "ab"
    }
    fig = term_curves_figure(logs, {"a": "(a)", "b": "(b)"}, 2352, nats=())
    recon = fig.axes[1]
    assert recon.get_yscale() == "log"
    low, high = recon.get_ylim()
    ticks = [t for t in recon.get_yticks() if low <= t <= high]
    assert ticks, "the R panel needs a labelled tick within the curves' range"
