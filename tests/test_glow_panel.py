"""Lesson 07's panel: its plain functions and its widgets, headless."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils import pretrained
from course_utils.core.data import load_mnist
from course_utils.core.widgets import NOT_RUNNING_HINT
from course_utils.glow.model import dequantize
from course_utils.panels.glow import glow_panel, interpolate, interpolation_figure, samples_figure


@pytest.fixture(scope="module")
def model_and_digits(make_tiny_glow):
    """The tiny Glow and six test digits, dequantized."""
    images, _ = load_mnist("mnist", "test")
    return make_tiny_glow(), dequantize(images[:6, None], torch.Generator().manual_seed(0))


def test_interpolation_ends_are_the_digits(model_and_digits, shared_data) -> None:
    model, u = model_and_digits
    frames = interpolate(model, u[0], u[1], steps=5)
    assert frames.shape == (5, 1, 28, 28)
    torch.testing.assert_close(frames[0], u[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(frames[-1], u[1], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        interpolate(model, u[0], u[1], steps=1)
    with pytest.raises(ValueError, match="second must be an index below 6"):
        interpolation_figure(model, u, 0, 6)


def test_samples_depend_on_the_seed_and_say_what_the_classifier_sees(
    model_and_digits, shared_data
) -> None:
    model, _ = model_and_digits
    classifier = pretrained.load("digit-classifier")
    a = samples_figure(model, 0.7, seed=1, n=8, classifier=classifier)
    assert "recognisable" in a.axes[0].get_title() and "seed 1" in a.axes[0].get_title()
    plt.close(a)


def test_panel_redraws_when_a_control_moves(model_and_digits, shared_data) -> None:
    model, u = model_and_digits
    box = glow_panel(model, u)
    sampler, walker = box.children
    assert sampler.runs == walker.runs == 1
    sampler.controls["seed"].value = 3
    sampler.controls["temperature"].value = 1.0
    walker.controls["second"].value = 4
    assert sampler.runs == 3 and walker.runs == 2
    assert "seed 3" in sampler.last_figure.axes[0].get_title()
    assert all(not w.continuous_update for w in sampler.controls.values())
    assert box._repr_mimebundle_()["text/plain"] == NOT_RUNNING_HINT  # no kernel: a hint
    plt.close("all")


def test_panel_with_two_models_has_a_menu_that_switches_the_model(
    model_and_digits, make_tiny_glow, shared_data
) -> None:
    model, u = model_and_digits
    box = glow_panel({"first": model, "second": make_tiny_glow(seed=1)}, u)
    sampler, walker = box.children
    assert list(sampler.controls)[0] == "name" and list(walker.controls)[0] == "name"

    def pixels(panel):
        return panel.last_figure.axes[0].images[0].get_array().copy()

    before = pixels(sampler), pixels(walker)
    sampler.controls["name"].value = "second"
    walker.controls["name"].value = "second"
    assert sampler.runs == walker.runs == 2
    # same seed and digits, another model: other images
    assert not (pixels(sampler) == before[0]).all()
    assert not (pixels(walker) == before[1]).all()
    with pytest.raises(ValueError, match="empty"):
        glow_panel({}, u)
    plt.close("all")
