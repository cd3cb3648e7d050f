"""The Glow figures: lesson 07's stages and noise, lesson 11's class-conditional figures."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.patches import FancyBboxPatch

from course_utils.glow.conditional import ClassCompletions
from course_utils.glow.layers import VariationalDequantizer
from course_utils.glow.measure import DrawnAsAsked
from course_utils.glow.model import Glow
from course_utils.glow.plots import (
    architecture_figure,
    architecture_stages,
    class_completions_figure,
    class_rows_figure,
    confidence_histograms,
    dequantization_noise,
    drawn_as_asked_bars,
    hardest_digits_figure,
    noise_histograms,
)
from course_utils.glow.recipes import COURSE, SINGLE_SCALE

pytestmark = pytest.mark.usefixtures("rng")


@pytest.mark.parametrize("recipe", [COURSE, SINGLE_SCALE], ids=["multi-scale", "single-scale"])
def test_the_stages_follow_the_models_own_shapes(recipe) -> None:
    model = Glow(recipe.model)
    stages = architecture_stages(model)
    latents = {s.latent[0]: s.latent[1] for s in stages if s.latent is not None}
    # every latent the stages send to a base is the base's own shape
    assert [latents[i] for i in range(len(latents))] == model.latent_shapes()
    # nothing is lost: what continues plus what was split off is the whole image
    left = model.num_dims
    for stage in stages:
        if stage.kind == "split":
            left -= math.prod(stage.latent[1])
        assert math.prod(stage.shape) == left
    assert sum(math.prod(s) for s in latents.values()) == model.num_dims
    kinds = [s.kind for s in stages]
    assert kinds.count("squeeze") == recipe.model.levels
    assert kinds.count("split") == recipe.model.levels - 1
    blocks = [s.count for s in stages if s.kind == "glow"]
    assert blocks == list(recipe.model.per_level("blocks"))
    assert sum(s.count for s in stages if s.kind == "checkerboard") == recipe.model.full_res
    # and the encoder agrees: encode gives one latent per level, of the shapes drawn
    with torch.no_grad():
        z = model.encode(torch.rand(2, *model.config.shape))
    assert [tuple(t.shape[1:]) for t in z] == [latents[i] for i in range(len(z))]


def test_the_figure_draws_one_box_per_stage() -> None:
    model = Glow(COURSE.model)
    fig = architecture_figure(model, title="t")
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(architecture_stages(model))
    plt.close(fig)
    with pytest.raises(TypeError, match="model must be a Glow"):
        architecture_stages(torch.nn.Linear(2, 2))


def test_the_noise_is_gathered_by_pixel_value() -> None:
    k = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    k[0] = 0
    values = {"black": [0], "grey": range(64, 192)}
    noise = dequantization_noise(None, k, values, torch.Generator().manual_seed(0))
    assert len(noise["black"]) == int((k == 0).sum())
    assert len(noise["grey"]) == int(((k >= 64) & (k < 192)).sum())
    assert all(bool((v >= 0).all() and (v < 1).all()) for v in noise.values())
    # a dequantizer at its identity start draws uniform noise too: same bins, values in [0, 1)
    learned = dequantization_noise(VariationalDequantizer((1, 28, 28), 2, 8), k, values)
    assert {n: len(v) for n, v in learned.items()} == {n: len(v) for n, v in noise.items()}
    fig = noise_histograms(noise, title="t")
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="images must be uint8"):
        dequantization_noise(None, k.float(), values)


# --------------------------------------------- lesson 11: a class-conditional Glow


def _probs(n: int, k: int = 10, seed: int = 0) -> torch.Tensor:
    return (torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 3).softmax(1)


def test_class_rows_have_ten_labelled_rows_and_a_block_per_temperature() -> None:
    samples = {0.7: torch.rand(30, 1, 28, 28), 1.0: torch.rand(30, 1, 28, 28)}
    fig = class_rows_figure(samples, title="by class")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["T = 0.7", "T = 1"]
    first = fig.axes[0]
    assert [t.get_text() for t in first.get_yticklabels()] == [str(k) for k in range(10)]
    ticks = first.get_yticks()
    assert list(ticks) == sorted(ticks) and len(fig.axes[1].get_yticks()) == 0
    # the canvas holds 10 rows of 3 digits (28 px each, 1 px apart)
    assert first.images[0].get_array().shape[:2] == (10 * 29 + 1, 3 * 29 + 1)
    plt.close("all")
    with pytest.raises(ValueError, match="10·n"):
        class_rows_figure({0.7: torch.rand(25, 1, 28, 28)})
    with pytest.raises(ValueError, match="as many samples"):
        class_rows_figure({0.7: torch.rand(30, 1, 28, 28), 1.0: torch.rand(20, 1, 28, 28)})
    with pytest.raises(ValueError, match="temperature"):
        class_rows_figure({})


def test_drawn_as_asked_bars_one_bar_per_class_and_temperature() -> None:
    per = tuple(k / 10 for k in range(10))
    results = {
        0.7: DrawnAsAsked(share=0.45, per_class=per, samples_per_class=5, temperature=0.7),
        1.0: DrawnAsAsked(share=0.3, per_class=per[::-1], samples_per_class=5, temperature=1.0),
    }
    fig = drawn_as_asked_bars(results, target=0.8)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 20
    assert [round(b.get_height(), 6) for b in bars[:10]] == [round(100 * v, 6) for v in per]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(legend) == {"T = 0.7: 45% overall", "T = 1: 30% overall", "target 80%"}
    assert ax.get_ylabel() == "drawn as asked (%)"
    plt.close("all")
    with pytest.raises(ValueError, match="DrawnAsAsked"):
        drawn_as_asked_bars({0.7: 0.45})
    with pytest.raises(ValueError, match="target"):
        drawn_as_asked_bars(results, target=80)
    with pytest.raises(ValueError, match="temperature"):
        drawn_as_asked_bars({})


def test_confidence_histograms_split_right_and_wrong_with_each_accuracy() -> None:
    flow, clf = _probs(50, seed=1), _probs(50, seed=2)
    labels = flow.argmax(1).clone()
    labels[:5] = (labels[:5] + 1) % 10  # the flow is wrong on 5 of 50
    fig = confidence_histograms(flow, clf, labels)
    left, right = fig.axes
    acc_clf = float((clf.argmax(1) == labels).float().mean())
    assert left.get_title().endswith("accuracy 90.0%")
    assert right.get_title().endswith(f"accuracy {acc_clf:.1%}")
    assert left.get_yscale() == "log"
    counts = [t.get_text() for t in left.get_legend().get_texts()]
    assert counts == ["right (45)", "wrong (5)"]
    plt.close("all")
    with pytest.raises(ValueError, match="classifier_probs"):
        confidence_histograms(flow, clf[:, :5], labels)
    with pytest.raises(ValueError, match="sum to 1"):
        confidence_histograms(flow * 2 / 2 + 0.01, clf, labels)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        confidence_histograms(flow.log(), clf, labels)
    with pytest.raises(ValueError, match="labels"):
        confidence_histograms(flow, clf, labels.float())


def test_hardest_digits_are_those_with_the_lowest_true_class_probability() -> None:
    probs = _probs(20)
    labels = torch.arange(20) % 10
    images = (torch.rand(20, 1, 28, 28) * 255).to(torch.uint8)
    fig = hardest_digits_figure(images, labels, probs, n=4, ncols=2)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 4
    p_true = probs[torch.arange(20), labels]
    i = int(p_true.argmin())
    pred = int(probs[i].argmax())
    want = (
        f"{int(labels[i])} → {pred} ({probs[i, pred]:.2f})\np({int(labels[i])}) = {p_true[i]:.2f}"
    )
    assert titled[0].get_title() == want
    plt.close("all")
    with pytest.raises(ValueError, match="n must be"):
        hardest_digits_figure(images, labels, probs, n=21)
    with pytest.raises(ValueError, match="one row per image"):
        hardest_digits_figure(images, labels, probs[:5])
    with pytest.raises(ValueError, match="images"):
        hardest_digits_figure(images[0], labels, probs)


def test_class_completions_show_the_hole_every_class_and_the_posterior() -> None:
    k = 10
    completions = torch.rand(k, 1, 28, 28)
    log_probs = torch.linspace(-5, 5, k)
    result = ClassCompletions(completions, log_probs, log_probs.log_softmax(0), torch.arange(k))
    image = torch.rand(1, 28, 28)
    mask = torch.zeros(28, 28, dtype=torch.bool)
    mask[10:] = True
    fig = class_completions_figure(image, mask, result)
    assert len(fig.axes) == k + 2
    assert "missing" in fig.axes[0].get_title()
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (28, 28, 3)
    # the hole is painted in the colour, the known pixels are the image's grey
    np.testing.assert_allclose(shown[20, 5], (0.85, 0.25, 0.2), rtol=1e-6)
    assert shown[2, 5, 0] == shown[2, 5, 1] == pytest.approx(float(image[0, 2, 5]))
    probs = result.probabilities()
    assert fig.axes[k].get_title() == f"as {k - 1}\n{float(probs[-1]):.0%}"
    grey = class_completions_figure(image[0], mask, result)  # a grey image as (H, W)
    np.testing.assert_array_equal(grey.axes[0].images[0].get_array(), shown)
    bars = fig.axes[-1].patches
    assert len(bars) == k
    assert bars[-1].get_height() == pytest.approx(100 * float(probs[-1]))
    plt.close("all")
    with pytest.raises(ValueError, match="ClassCompletions"):
        class_completions_figure(image, mask, completions)
    with pytest.raises(ValueError, match="mask"):
        class_completions_figure(image, mask[:10], result)
    with pytest.raises(ValueError, match="image"):
        class_completions_figure(torch.rand(1, 14, 14), mask, result)
