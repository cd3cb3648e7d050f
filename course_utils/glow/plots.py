"""Lesson 07's Glow figures: the architecture read from a model, and the learned noise.

* :func:`architecture_stages` walks a :class:`~course_utils.glow.model.Glow`'s
  own layers from the data side (the direction of density evaluation) and
  says what each stage does to the tensor's shape: where it squeezes, where
  it splits, and which latent goes to which base distribution;
  :func:`architecture_figure` draws that list.
* :func:`dequantization_noise` collects the noise ``v`` a dequantizer draws
  for chosen pixel values; :func:`noise_histograms` draws it against uniform
  noise.

The plotting boilerplate lives here so the lesson's cells keep to the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import normflows as nf
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from course_utils.core.plots import PALETTE, finish_axes
from course_utils.glow.layers import MaskedAffineCoupling

__all__ = [
    "Stage",
    "architecture_stages",
    "architecture_figure",
    "dequantization_noise",
    "noise_histograms",
]

Tensor = torch.Tensor


@dataclass(frozen=True)
class Stage:
    """One stage of a Glow, read from the data side.

    Attributes:
        kind: ``"input"``, ``"logit"``, ``"checkerboard"`` (full-resolution
            couplings), ``"squeeze"``, ``"glow"`` (Glow blocks), ``"split"`` or
            ``"latent"`` (what is left goes to the coarsest base).
        shape: ``(C, H, W)`` that continues after the stage.
        count: how many layers or blocks the stage holds (1 for a squeeze).
        latent: for ``"split"`` and ``"latent"``: the index ``i`` of the latent
            ``z_i`` that goes to a base distribution, and its shape.
    """

    kind: str
    shape: tuple[int, int, int]
    count: int = 1
    latent: tuple[int, tuple[int, int, int]] | None = None


def _kind(layer: torch.nn.Module) -> str:
    if isinstance(layer, nf.flows.Squeeze):
        return "squeeze"
    if isinstance(layer, MaskedAffineCoupling) and layer.mask.shape[-1] > 1:
        return "checkerboard"
    if isinstance(layer, nf.flows.ActNorm | nf.flows.GlowBlock):
        return "glow"  # a Glow block, data side first: ActNorm, 1×1 convolution, coupling
    return "inside"  # the rest of a Glow block


def architecture_stages(model: torch.nn.Module) -> list[Stage]:
    """The stages of a Glow from its own layers, data side first, with the shape after each.

    Args:
        model: a :class:`~course_utils.glow.model.Glow` (its ``flow`` is a
            normflows ``MultiscaleFlow``, listed from the base towards the data).

    Returns:
        The stages in the order an image meets them on its way to the latents.

    Raises:
        TypeError: ``model`` has no multi-scale flow.
    """
    flow = getattr(model, "flow", None)
    if not isinstance(flow, nf.MultiscaleFlow):
        raise TypeError(f"model must be a Glow with a MultiscaleFlow, got {type(model).__name__}")
    c, h, w = model.config.shape
    stages = [Stage("input", (c, h, w))]
    if flow.transform is not None:
        stages.append(Stage("logit", (c, h, w)))
    for i in range(len(flow.q0) - 1, -1, -1):
        for layer in reversed(flow.flows[i]):  # data side first
            kind = _kind(layer)
            if kind == "squeeze":
                c, h, w = 4 * c, h // 2, w // 2
            if kind == "inside":
                continue
            if stages[-1].kind == kind and kind != "squeeze":
                stages[-1] = Stage(kind, (c, h, w), stages[-1].count + 1)
            else:
                stages.append(Stage(kind, (c, h, w)))
        if i > 0:  # normflows' Merge, seen from the data: half of the channels leave
            c //= 2
            stages.append(Stage("split", (c, h, w), latent=(i, (c, h, w))))
        else:
            stages.append(Stage("latent", (c, h, w), latent=(0, (c, h, w))))
    return stages


_LABELS = {
    "input": "image x",
    "logit": "logit",
    "checkerboard": "checkerboard\ncouplings",
    "squeeze": "squeeze",
    "glow": "Glow blocks",
    "split": "split",
    "latent": "latent",
}
_COLOURS = {
    "input": "0.9",
    "logit": "0.9",
    "checkerboard": PALETTE[5],
    "squeeze": PALETTE[4],
    "glow": PALETTE[0],
    "split": PALETTE[1],
    "latent": PALETTE[1],
}


def _shape(shape: tuple[int, int, int]) -> str:
    return "({}, {}, {})".format(*shape)


def architecture_figure(model: torch.nn.Module, title: str | None = None) -> Figure:
    """A Glow's stages drawn left to right (data → latents), with the tensor's shape after each.

    Every box is one stage of :func:`architecture_stages`; a split sends a
    latent down to its own base distribution, and the last stage sends what is
    left to the coarsest base.
    """
    stages = architecture_stages(model)
    n = len(stages)
    fig, ax = plt.subplots(figsize=(1.45 * n + 0.4, 3.3), layout="constrained")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-1.95, 1.0)
    ax.axis("off")
    for k, stage in enumerate(stages):
        label = _LABELS[stage.kind]
        if stage.count > 1:
            label = f"{stage.count} × {label}" if stage.kind == "glow" else f"{stage.count} {label}"
        if stage.latent is not None:
            label = "split off" if stage.kind == "split" else "to the base"
        dark = stage.kind in ("glow", "split", "latent")
        ax.add_patch(
            FancyBboxPatch(
                (k - 0.42, 0.05),
                0.84,
                0.62,
                boxstyle="round,pad=0.02",
                fc=_COLOURS[stage.kind],
                ec="0.3",
                alpha=0.9 if dark else 0.75,
            )
        )
        ax.text(
            k, 0.36, label, ha="center", va="center", fontsize=8.5, color="white" if dark else "k"
        )
        ax.text(k, -0.12, _shape(stage.shape), ha="center", va="top", fontsize=8.5)
        if k:
            ax.add_patch(
                FancyArrowPatch(
                    (k - 1 + 0.43, 0.36), (k - 0.43, 0.36), arrowstyle="-|>", mutation_scale=12
                )
            )
        if stage.latent is not None:
            i, shape = stage.latent
            ax.add_patch(
                FancyArrowPatch((k, -0.4), (k, -1.05), arrowstyle="-|>", mutation_scale=12)
            )
            ax.text(
                k,
                -1.3,
                f"z{i} {_shape(shape)}\n→ base N(μ, σ)",
                ha="center",
                va="center",
                fontsize=8.5,
                bbox={"boxstyle": "round", "fc": "white", "ec": PALETTE[1]},
            )
    ax.text(
        -0.55,
        0.9,
        "data → latents (density evaluation, inverse); sampling runs right to left",
        fontsize=8.5,
        color="0.35",
    )
    if title:
        ax.set_title(title)
    return fig


@torch.no_grad()
def dequantization_noise(
    dequantizer: torch.nn.Module,
    images: Tensor,
    values: Mapping[str, Sequence[int]],
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The noise ``v = 256·u − k`` a dequantizer draws, gathered by pixel value.

    Args:
        dequantizer: a :class:`~course_utils.glow.layers.VariationalDequantizer`
            (``images -> (u, log q)``), or None for uniform noise.
        images: ``uint8`` images ``(batch, C, H, W)``.
        values: label → the pixel values ``k`` whose noise to gather, e.g.
            ``{"black (0)": [0], "grey (64-191)": range(64, 192)}``.
        generator: seeds the noise.

    Returns:
        label → the noise values ``v`` in ``[0, 1)`` of those pixels (1-D).
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if dequantizer is None:
        u = (images.float() + torch.rand(images.shape, generator=generator)) / 256
    else:
        u, _ = dequantizer(images, generator)
    v = (u * 256 - images.float()).flatten()
    k = images.flatten().long()
    out = {}
    for label, chosen in values.items():
        picked = torch.isin(k, torch.as_tensor(list(chosen), dtype=torch.long))
        out[label] = v[picked]
    return out


def noise_histograms(
    noise: Mapping[str, Tensor], bins: int = 40, title: str | None = None
) -> Figure:
    """One histogram (a density on ``[0, 1)``) per pixel value, with uniform noise's flat line."""
    n = len(noise)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), layout="constrained", squeeze=False)
    for k, (ax, (label, v)) in enumerate(zip(axes[0], noise.items(), strict=True)):
        ax.hist(
            np.asarray(v), bins=bins, range=(0, 1), density=True, color=PALETTE[k % len(PALETTE)]
        )
        ax.axhline(1.0, color="0.2", ls="--", lw=1.5, label="uniform noise")
        ax.set(xlabel="noise v in the pixel's bin", xlim=(0, 1))
        finish_axes(ax, f"{label}: {len(v):,} pixels", loc="upper center")
    axes[0, 0].set_ylabel("density")
    if title:
        fig.suptitle(title)
    return fig
