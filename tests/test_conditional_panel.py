"""Lesson 11's panel: its plain functions and its widgets, headless."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils import pretrained
from course_utils.core.data import load_mnist
from course_utils.core.widgets import NOT_RUNNING_HINT
from course_utils.glow.measure import bayes_posterior
from course_utils.panels.conditional import (
    class_samples_figure,
    conditional_panel,
    posterior_figure,
)


@pytest.fixture(scope="module")
def cond_and_digits(make_tiny_cond_glow):
    """A tiny class-conditional Glow whose classes differ, and eight test digits."""
    images, labels = load_mnist("mnist", "test")
    return make_tiny_cond_glow(10), images[:8, None], labels[:8]


def test_class_samples_are_of_the_asked_class_and_counted_by_the_classifier(
    cond_and_digits, shared_data
) -> None:
    model, _, _ = cond_and_digits
    fig = class_samples_figure(
        model, 3, 0.7, seed=2, n=8, classifier=pretrained.load("digit-classifier")
    )
    title = fig.axes[0].get_title()
    assert "asked for a 3" in title and "of 8 drawn as asked" in title
    shown = fig.axes[0].images[0].get_array()
    other = class_samples_figure(model, 5, 0.7, seed=2, n=8).axes[0].images[0].get_array()
    assert not (shown == other).all()  # same seed, another class: other samples
    with pytest.raises(ValueError, match="digit must be a class below 10"):
        class_samples_figure(model, 10)
    plt.close("all")


def test_posterior_figure_shows_the_bayes_posterior(cond_and_digits, shared_data) -> None:
    model, images, labels = cond_and_digits
    fig = posterior_figure(model, images[0], int(labels[0]))
    heights = torch.tensor([bar.get_height() for bar in fig.axes[1].patches], dtype=torch.float32)
    torch.testing.assert_close(
        heights, bayes_posterior(model, images[:1])[0].exp(), atol=1e-5, rtol=0
    )
    assert abs(float(heights.sum()) - 1) < 1e-4
    with pytest.raises(ValueError, match="uint8"):
        posterior_figure(model, images[0].float())
    plt.close("all")


def test_panel_redraws_when_a_control_moves(cond_and_digits, make_tiny_glow, shared_data) -> None:
    model, images, labels = cond_and_digits
    box = conditional_panel(model, images, labels)
    asker, reader = box.children
    assert asker.runs == reader.runs == 1
    asker.controls["digit"].value = 7
    asker.controls["seed"].value = 4
    reader.controls["index"].value = 5
    assert asker.runs == 3 and reader.runs == 2
    assert "asked for a 7" in asker.last_figure.axes[0].get_title()
    assert f"a {int(labels[5])}" in reader.last_figure.axes[0].get_title()
    assert box._repr_mimebundle_()["text/plain"] == NOT_RUNNING_HINT  # no kernel: a hint
    with pytest.raises(ValueError, match="class-conditional"):
        conditional_panel(make_tiny_glow(), images, labels)
    with pytest.raises(ValueError, match="one class per image"):
        conditional_panel(model, images, labels[:3])
    plt.close("all")
