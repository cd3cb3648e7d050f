"""Lesson 11's panel: ask a class-conditional Glow for a digit, and read a digit by Bayes' rule.

Plain functions draw the figures (the lesson and the tests call them);
:func:`conditional_panel` puts controls around them with
:class:`course_utils.core.widgets.Panel`.
"""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from course_utils.core.checks import check_int, check_uint8_images
from course_utils.core.plots import PALETTE, image_grid
from course_utils.core.widgets import Panel, PanelGroup, slider
from course_utils.glow.digits import CONFIDENCE, probabilities
from course_utils.glow.measure import bayes_posterior, class_count

__all__ = ["class_samples_figure", "posterior_figure", "conditional_panel"]

Tensor = torch.Tensor


@torch.no_grad()
def class_samples_figure(
    model: nn.Module,
    digit: int = 0,
    temperature: float = 0.7,
    seed: int = 0,
    n: int = 16,
    classifier: nn.Module | None = None,
) -> Figure:
    """``n`` samples of class ``digit`` at ``temperature``; with a classifier, how many it confirms.

    A sample counts as drawn as asked when the classifier gives ``digit`` a
    probability of at least :data:`course_utils.glow.digits.CONFIDENCE`.
    """
    classes = class_count(model, "the panel")
    digit = check_int("digit", digit, minimum=0)
    if digit >= classes:
        raise ValueError(f"digit must be a class below {classes}, got {digit}")
    torch.manual_seed(check_int("seed", seed, minimum=0))
    images = model.sample(check_int("n", n, minimum=1), temperature=temperature, y=digit)
    fig = image_grid(images, nrow=min(n, 8))
    title = f"asked for a {digit} at T = {temperature:.2f}, seed {seed}"
    if classifier is not None:
        hit = probabilities(classifier, images.cpu())[:, digit] >= CONFIDENCE
        title += f": {int(hit.sum())} of {n} drawn as asked"
    fig.axes[0].set_title(title, fontsize=10)
    return fig


@torch.no_grad()
def posterior_figure(
    model: nn.Module,
    image: Tensor,
    label: int | None = None,
    classifier: nn.Module | None = None,
) -> Figure:
    """One 8-bit digit and the class probabilities the flow gives it by Bayes' rule.

    ``p(y | x) ∝ p(x | y)`` with a uniform prior
    (:func:`course_utils.glow.measure.bayes_posterior`); with a classifier, its
    probabilities beside the flow's.
    """
    classes = class_count(model, "the panel")
    image = check_uint8_images("image", image[None] if image.ndim == 3 else image, allow_hw=False)
    if len(image) != 1:
        raise ValueError(f"image must be one image (C, H, W), got {len(image)}")
    flow = bayes_posterior(model, image)[0].exp().numpy()
    fig, (ax_img, ax_bar) = plt.subplots(
        1, 2, figsize=(7.5, 2.6), gridspec_kw={"width_ratios": [1, 3]}
    )
    ax_img.imshow((image[0].float().mean(0) / 255).numpy(), cmap="gray", vmin=0, vmax=1)
    ax_img.set_axis_off()
    ax_img.set_title("test digit" if label is None else f"test digit (a {label})", fontsize=9)
    x = np.arange(classes)
    width = 0.4 if classifier is not None else 0.8
    ax_bar.bar(
        x - (width / 2 if classifier is not None else 0),
        flow,
        width,
        color=PALETTE[0],
        label=f"flow, Bayes' rule: says {int(flow.argmax())}",
    )
    if classifier is not None:
        probs = probabilities(classifier, image.cpu())[0].numpy()
        ax_bar.bar(
            x + width / 2,
            probs,
            width,
            color=PALETTE[1],
            label=f"digit classifier: says {int(probs.argmax())}",
        )
    ax_bar.set_xticks(x)
    ax_bar.set_ylim(0, 1.05)
    ax_bar.set_xlabel("class y")
    ax_bar.set_ylabel("p(y | x)")
    ax_bar.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def conditional_panel(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    classifier: nn.Module | None = None,
) -> PanelGroup:
    """Two panels: samples of a chosen digit (digit, temperature, seed), and one test digit read
    by Bayes' rule (which digit).

    Args:
        model: a trained class-conditional :class:`course_utils.glow.model.Glow` in eval mode.
        images: ``uint8`` test digits ``(n, C, H, W)`` to read.
        labels: their classes ``(n,)``.
        classifier: optional digit classifier, which checks the samples and reads the digits too.
    """
    classes = class_count(model, "the panel")
    images = check_uint8_images("images", images, allow_hw=False)
    labels = torch.as_tensor(labels)
    if labels.shape != (len(images),):
        raise ValueError(
            f"labels must hold one class per image ({len(images)}), got {tuple(labels.shape)}"
        )
    asker = Panel(
        lambda digit, temperature, seed: class_samples_figure(
            model, digit, temperature, seed, classifier=classifier
        ),
        {
            "digit": W.Dropdown(options=list(range(classes)), value=0, description="digit"),
            "temperature": slider(0.7, 0.1, 1.2, 0.05, "temperature T"),
            "seed": W.IntSlider(
                value=0, min=0, max=99, description="seed", continuous_update=False
            ),
        },
        title="Ask for a digit",
    )
    reader = Panel(
        lambda index: posterior_figure(
            model, images[index], int(labels[index]), classifier=classifier
        ),
        {
            "index": W.IntSlider(
                value=0,
                min=0,
                max=len(images) - 1,
                description="test digit",
                continuous_update=False,
            )
        },
        title="Read a digit by Bayes' rule",
    )
    asker.update()
    reader.update()
    return PanelGroup([asker, reader])
