"""Lesson 07's panel: a trained Glow's samples at any temperature and seed, and interpolations.

Plain functions draw the figures (the lesson and the tests call them);
:func:`glow_panel` puts controls around them with :class:`course_utils.core.widgets.Panel`.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as W
import torch
from matplotlib.figure import Figure
from torch import nn

from course_utils.core.checks import check_int
from course_utils.core.plots import image_grid, image_rows
from course_utils.core.widgets import Panel, PanelGroup, slider
from course_utils.glow.digits import recognisable

__all__ = [
    "interpolate",
    "samples_figure",
    "interpolation_figure",
    "glow_panel",
]

Tensor = torch.Tensor


@torch.no_grad()
def interpolate(model, a: Tensor, b: Tensor, steps: int = 10) -> Tensor:
    """Decode ``steps`` points on the straight line between the latents of images ``a`` and ``b``.

    Args:
        model: a :class:`course_utils.glow.model.Glow`.
        a, b: dequantized images ``(C, H, W)``.
        steps: frames, the two ends included (they reproduce ``a`` and ``b``).

    Returns:
        ``(steps, C, H, W)`` images in [0, 1].
    """
    steps = check_int("steps", steps, minimum=2)
    za, zb = model.encode(a[None]), model.encode(b[None])
    frames = []
    for w in torch.linspace(0, 1, steps):
        z = [(1 - w) * p + w * q for p, q in zip(za, zb, strict=True)]
        frames.append(model.decode(z).clamp(0, 1))
    return torch.cat(frames)


def samples_figure(
    model,
    temperature: float = 0.7,
    seed: int = 0,
    n: int = 36,
    classifier: nn.Module | None = None,
) -> Figure:
    """``n`` samples at ``temperature`` drawn with ``seed``; with a classifier, its verdict."""

    torch.manual_seed(check_int("seed", seed, minimum=0))
    images = model.sample(check_int("n", n, minimum=1), temperature=temperature)
    fig = image_grid(images, nrow=min(n, 12))
    title = f"T = {temperature:.2f}, seed {seed}"
    if classifier is not None:
        r = recognisable(classifier, images)
        title += f": {r.share:.0%} recognisable, {r.digits_drawn}/10 digits"
    fig.axes[0].set_title(title, fontsize=10)
    return fig


def interpolation_figure(model, images: Tensor, first: int = 0, second: int = 1) -> Figure:
    """The interpolation between ``images[first]`` and ``images[second]`` (dequantized)."""
    n = len(images)
    for name, i in (("first", first), ("second", second)):
        if not 0 <= check_int(name, i, minimum=0) < n:
            raise ValueError(f"{name} must be an index below {n}, got {i}")
    frames = interpolate(model, images[first], images[second])
    return image_rows({f"test digit {first} → {second}": frames})


def glow_panel(
    model: nn.Module | Mapping[str, nn.Module],
    images: Tensor,
    classifier: nn.Module | None = None,
) -> PanelGroup:
    """Two panels: samples (temperature, seed) and an interpolation (which two digits).

    Args:
        model: a trained :class:`course_utils.glow.model.Glow` in eval mode, or
            several by name (e.g. the lesson's and a pretrained one): both
            panels then get a menu to pick one.
        images: dequantized test digits to interpolate between, ``(n, C, H, W)``.
        classifier: optional digit classifier that scores each set of samples.
    """
    models = dict(model) if isinstance(model, Mapping) else {"model": model}
    if not models:
        raise ValueError("model is an empty mapping; give at least one Glow")

    def menu() -> dict[str, W.Dropdown]:
        if len(models) == 1:
            return {}
        return {
            "name": W.Dropdown(options=list(models), value=next(iter(models)), description="model")
        }

    def pick(name: str | None) -> nn.Module:
        return models[name] if name is not None else next(iter(models.values()))

    sampler = Panel(
        lambda temperature, seed, name=None: samples_figure(
            pick(name), temperature, seed, classifier=classifier
        ),
        {
            **menu(),
            "temperature": slider(0.7, 0.1, 1.2, 0.05, "temperature T"),
            "seed": W.IntSlider(
                value=0, min=0, max=99, description="seed", continuous_update=False
            ),
        },
        title="Samples",
    )
    picks = {
        name: W.Dropdown(options=list(range(len(images))), value=value, description=name)
        for name, value in (("first", 0), ("second", 1))
    }
    walker = Panel(
        lambda first, second, name=None: interpolation_figure(pick(name), images, first, second),
        {**menu(), **picks},
        title="Interpolation between two test digits",
    )
    sampler.update()
    walker.update()
    return PanelGroup([sampler, walker])
