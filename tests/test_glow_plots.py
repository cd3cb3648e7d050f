"""Lesson 07's Glow figures: the stages read from the model, and the noise by pixel value."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import FancyBboxPatch

from course_utils.glow.layers import VariationalDequantizer
from course_utils.glow.model import Glow
from course_utils.glow.plots import (
    architecture_figure,
    architecture_stages,
    dequantization_noise,
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
