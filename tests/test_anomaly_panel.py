"""Lesson 10's panel: flagged shares, the threshold figure, typicality groups, the controls."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from course_utils.anomaly import typicality_auc
from course_utils.core.widgets import NOT_RUNNING_HINT
from course_utils.panels.anomaly import (
    anomaly_panel,
    flag_rates,
    ranked_images_figure,
    threshold_figure,
    typicality_groups_figure,
)

matplotlib.use("Agg")


@pytest.fixture
def sets():
    g = torch.Generator().manual_seed(0)
    return {
        "in": torch.randn(400, generator=g) + 3.0,
        "far": torch.randn(400, generator=g) + 6.0,
        "too likely": torch.randn(400, generator=g) * 0.3 + 1.0,
    }


def test_ranked_images_show_the_lowest_and_highest_scores_in_order() -> None:
    images = {"a": torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 4, 4)}
    scores = {"a": torch.tensor([5.0, 1.0, 3.0, 0.0, 4.0, 2.0])}
    fig = ranked_images_figure(images, scores, ["a"], n=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["0.00", "1.00", "4.00", "5.00"]  # row 1: lowest first; row 2: highest
    assert fig.axes[0].get_images()[0].get_array()[0, 0] == 3  # image 3 has the lowest score
    assert fig.axes[0].get_ylabel() == "a\nlowest" and fig.axes[2].get_ylabel() == "a\nhighest"
    with pytest.raises(ValueError, match="no images or scores"):
        ranked_images_figure(images, scores, ["b"])
    with pytest.raises(ValueError, match="5 scores for 6 images"):
        ranked_images_figure(images, {"a": scores["a"][:5]}, ["a"])
    matplotlib.pyplot.close("all")


def test_flag_rates_count_by_hand(sets) -> None:
    rates = flag_rates(sets, 3.0)
    for name, v in sets.items():
        assert rates[name] == pytest.approx(sum(float(x) > 3.0 for x in v) / len(v))
    # far above the bulk: nothing flagged; far below: everything
    assert set(flag_rates(sets, 100.0).values()) == {0.0}
    assert set(flag_rates(sets, -100.0).values()) == {1.0}


def test_flag_rates_refuse_bad_input(sets) -> None:
    with pytest.raises(ValueError, match="threshold"):
        flag_rates(sets, float("nan"))
    with pytest.raises(ValueError, match="far"):
        flag_rates({**sets, "far": [1.0, float("nan")]}, 0.0)


def test_threshold_figure_titles_the_rates(sets) -> None:
    fig = threshold_figure(sets, 4.5)
    title = fig.axes[0].get_title()
    r = flag_rates(sets, 4.5)
    assert f"false positives {r['in']:.1%} of in" in title
    assert f"far {r['far']:.0%}" in title and f"too likely {r['too likely']:.0%}" in title
    lines = [ln for ln in fig.axes[0].get_lines() if list(ln.get_xdata()) == [4.5, 4.5]]
    assert lines, "the threshold is drawn"


def test_typicality_groups_figure_matches_typicality_auc(sets) -> None:
    ref = 3.0
    for m in (1, 10):
        fig = typicality_groups_figure(sets["in"], {"too likely": sets["too likely"]}, ref, m)
        auc = typicality_auc(sets["in"], sets["too likely"], ref, m)
        title = fig.axes[0].get_title()
        assert f"M = {m} ({400 // m} groups per set)" in title
        assert f"too likely {auc:.3f}" in title
    with pytest.raises(ValueError, match="group_size"):
        typicality_groups_figure(sets["in"], {"far": sets["far"]}, ref, 0)


def test_panel_redraws_on_each_control(sets) -> None:
    scores = {"bits/dim": sets, "shifted": {k: v + 10 for k, v in sets.items()}}
    group = anomaly_panel(scores, sets["in"], {"too likely": sets["too likely"]}, 3.0)
    threshold_panel, groups = group.children
    assert repr(group) == NOT_RUNNING_HINT
    runs = threshold_panel.runs
    threshold_panel.controls["threshold"].value = 5.0
    assert threshold_panel.runs == runs + 1
    assert "threshold 5.00" in threshold_panel.last_figure.axes[0].get_title()
    # another score: the slider moves to that score's range, at its in-distribution median
    calls: list[dict] = []
    draw = threshold_panel.fn
    threshold_panel.fn = lambda **values: (calls.append(values), draw(**values))[1]
    threshold_panel.controls["score"].value = "shifted"
    # every redraw on the way used the new score's range: none drew the old threshold
    assert calls and all(c["score"] == "shifted" and c["threshold"] > 9 for c in calls), calls
    slider = threshold_panel.controls["threshold"]
    assert slider.min > 9 and slider.value == pytest.approx(
        float(np.median(scores["shifted"]["in"].numpy())), abs=slider.step
    )
    assert "false positives 50" in threshold_panel.last_figure.axes[0].get_title()
    off = threshold_figure(sets, 100.0, xlim=(0.0, 8.0))
    assert off.axes[0].get_xlim() == (0.0, 8.0) and not off.axes[0].texts
    runs = groups.runs
    groups.controls["group_size"].value = 20
    assert groups.runs == runs + 1
    assert "M = 20" in groups.last_figure.axes[0].get_title()
