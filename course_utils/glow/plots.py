"""Lesson 07's Glow figures: the architecture read from a model, and the learned noise.

* :func:`architecture_stages` walks a :class:`~course_utils.glow.model.Glow`'s
  own layers from the data side (the direction of density evaluation) and
  says what each stage does to the tensor's shape: where it squeezes, where
  it splits, and which latent goes to which base distribution;
  :func:`architecture_figure` draws that list.
* :func:`dequantization_noise` collects the noise ``v`` a dequantizer draws
  for chosen pixel values; :func:`noise_histograms` draws it against uniform
  noise.

Lesson 11's figures of a class-conditional Glow: samples by class
(:func:`class_rows_figure`), how often they are the digit asked for
(:func:`drawn_as_asked_bars`), the flow as a classifier against the digit
classifier (:func:`confidence_histograms`, :func:`hardest_digits_figure`), and
one masked digit completed as each class (:func:`class_completions_figure`).

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

from course_utils.core.plots import PALETTE, finish_axes, image_grid
from course_utils.glow.conditional import ClassCompletions
from course_utils.glow.layers import MaskedAffineCoupling
from course_utils.glow.measure import DrawnAsAsked
from course_utils.inpaint.masks import hole_view, to_unit

__all__ = [
    "Stage",
    "architecture_stages",
    "architecture_figure",
    "dequantization_noise",
    "noise_histograms",
    "class_rows_figure",
    "drawn_as_asked_bars",
    "confidence_histograms",
    "hardest_digits_figure",
    "class_completions_figure",
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


# ------------------------------------------------- lesson 11: a class-conditional Glow


def _images_in_unit(name: str, images: object, ndim: int = 4) -> Tensor:
    """Float images in [0, 1] (``uint8`` ones at their bins' centres), or a ValueError."""
    if not isinstance(images, Tensor) or images.ndim != ndim:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        want = "(n, C, H, W)" if ndim == 4 else "(C, H, W)"
        raise ValueError(f"{name} must be a tensor of images {want}, got {shape}")
    if images.dtype == torch.uint8:
        return to_unit(images.cpu()) if ndim == 4 else to_unit(images.cpu()[None])[0]
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1] or uint8, got {images.dtype}")
    return images.detach().cpu().float()


def class_rows_figure(samples: Mapping[float, Tensor], title: str | None = None) -> Figure:
    """Samples by class: ten rows (digits 0-9), one block of columns per temperature.

    Args:
        samples: temperature → images ``(10·n, C, H, W)`` in [0, 1], ordered class
            by class (rows ``k·n … k·n + n − 1`` were drawn for class ``k``); the
            same ``n`` for every temperature.
        title: an optional title above the blocks.

    Returns:
        The figure: one axes per temperature, headed "T = 0.7" etc.; the first
        labels the rows "0" … "9".

    Raises:
        ValueError: no temperatures, images that are not ``(10·n, C, H, W)``, or
            blocks of different sizes.
    """
    if not isinstance(samples, Mapping) or not samples:
        raise ValueError("samples must map each temperature to its images, e.g. {0.7: x}")
    blocks = {}
    for t, images in samples.items():
        x = _images_in_unit(f"samples[{t}]", images)
        if len(x) % 10 or not len(x):
            raise ValueError(
                f"samples[{t}] must hold 10·n images, n per class 0-9 in class order, got {len(x)}"
            )
        blocks[t] = x
    sizes = {len(x) for x in blocks.values()}
    if len(sizes) != 1:
        raise ValueError(f"every temperature needs as many samples, got {sorted(sizes)}")
    n = sizes.pop() // 10
    h = next(iter(blocks.values())).shape[2]
    k = len(blocks)
    fig, axes = plt.subplots(
        1,
        k,
        figsize=(0.45 + k * (n * 0.42 + 0.15), 10 * 0.42 + 0.6 + (0.3 if title else 0)),
        layout="constrained",
        squeeze=False,
    )
    pad = 1
    for j, (ax, (t, x)) in enumerate(zip(axes[0], blocks.items(), strict=True)):
        image_grid(x, nrow=n, ax=ax, pad=pad)
        ax.set_axis_on()
        ax.set_xticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"T = {t:g}", fontsize=11)
        if j == 0:
            ax.set_yticks(
                [pad + r * (h + pad) + h / 2 for r in range(10)], [str(r) for r in range(10)]
            )
            ax.tick_params(axis="y", length=0, labelsize=11)
            ax.set_ylabel("digit asked for")
        else:
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig


def drawn_as_asked_bars(
    results: Mapping[float, DrawnAsAsked], target: float | None = None
) -> Figure:
    """Per digit, the share of samples drawn as asked: one bar colour per temperature.

    Args:
        results: temperature → :class:`~course_utils.glow.measure.DrawnAsAsked`.
        target: an optional share (in [0, 1]) drawn as a dashed line.

    Returns:
        The figure; the legend gives each temperature's overall share.

    Raises:
        ValueError: no results, something that is not a ``DrawnAsAsked``, results
            with different numbers of classes, or a target outside [0, 1].
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must map each temperature to its DrawnAsAsked, e.g. {0.7: d}")
    for t, r in results.items():
        if not isinstance(r, DrawnAsAsked):
            raise ValueError(f"results[{t}] must be a DrawnAsAsked, got {type(r).__name__}")
    classes = {len(r.per_class) for r in results.values()}
    if len(classes) != 1:
        raise ValueError(f"every result must have as many classes, got {sorted(classes)}")
    if target is not None and not 0 <= float(target) <= 1:
        raise ValueError(f"target must be a share in [0, 1] (0.8 for 80 %), got {target}")
    k = classes.pop()
    m = len(results)
    width = 0.8 / m
    fig, ax = plt.subplots(figsize=(max(6.0, 0.65 * k + 1.5), 3.6), layout="constrained")
    for j, (t, r) in enumerate(results.items()):
        ax.bar(
            np.arange(k) + (j - (m - 1) / 2) * width,
            100 * np.asarray(r.per_class),
            width,
            color=PALETTE[j % len(PALETTE)],
            label=f"T = {t:g}: {r.share:.0%} overall",
        )
    if target is not None:
        ax.axhline(100 * float(target), color="0.25", ls="--", lw=1.2, label=f"target {target:.0%}")
    ax.set_xticks(range(k), [str(c) for c in range(k)])
    ax.set(xlabel="digit asked for", ylabel="drawn as asked (%)", ylim=(0, 105))
    finish_axes(ax, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=m + 1)
    return fig


def _check_probs(name: str, probs: object, n: int | None = None) -> Tensor:
    if not isinstance(probs, Tensor) or probs.ndim != 2 or probs.shape[1] < 2:
        shape = tuple(probs.shape) if isinstance(probs, Tensor) else type(probs).__name__
        raise ValueError(f"{name} must be (N, K) class probabilities, got {shape}")
    if n is not None and len(probs) != n:
        raise ValueError(f"{name} must have one row per image ({n}), got {len(probs)}")
    p = probs.detach().cpu().double()
    if not bool(torch.isfinite(p).all()) or float(p.min()) < 0 or float(p.max()) > 1:
        raise ValueError(f"{name} must hold probabilities in [0, 1] (exp of log-probabilities?)")
    if not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-3):
        raise ValueError(f"each row of {name} must sum to 1 (a distribution over the classes)")
    return p


def _check_labels(labels: object, n: int, k: int) -> Tensor:
    if not isinstance(labels, Tensor) or labels.shape != (n,) or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be ({n},) integer classes, one per image, got {shape}")
    labels = labels.cpu().long()
    if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}")
    return labels


def confidence_histograms(
    flow_probs: Tensor,
    classifier_probs: Tensor,
    labels: Tensor,
    names: tuple[str, str] = ("the flow, by Bayes' rule", "the digit classifier"),
    bins: int = 20,
) -> Figure:
    """How sure each model is of the class it predicts, split into right and wrong answers.

    Args:
        flow_probs: ``(N, K)`` the flow's posterior ``p(y | x)`` of each test image.
        classifier_probs: ``(N, K)`` the discriminative classifier's probabilities.
        labels: ``(N,)`` the true classes.
        names: the two models' names, for the titles.
        bins: histogram bins on [0, 1].

    Returns:
        Two histograms side by side (log count axis, so the few wrong answers
        show), each titled with the model's accuracy.

    Raises:
        ValueError: probabilities of another shape, outside [0, 1] or whose rows
            do not sum to 1; labels that are not one class per image.
    """
    p_flow = _check_probs("flow_probs", flow_probs)
    p_clf = _check_probs("classifier_probs", classifier_probs, len(p_flow))
    if p_clf.shape != p_flow.shape:
        raise ValueError(
            f"classifier_probs must have flow_probs' shape {tuple(p_flow.shape)}, "
            f"got {tuple(p_clf.shape)}"
        )
    y = _check_labels(labels, len(p_flow), p_flow.shape[1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained", sharey=True)
    edges = np.linspace(0, 1, bins + 1)
    for ax, p, name in zip(axes, (p_flow, p_clf), names, strict=True):
        confidence, predicted = p.max(1)
        right = predicted == y
        ax.hist(
            [confidence[right].numpy(), confidence[~right].numpy()],
            bins=edges,
            stacked=True,
            color=[PALETTE[2], PALETTE[1]],
            label=[f"right ({int(right.sum()):,})", f"wrong ({int((~right).sum()):,})"],
        )
        ax.set(xlabel="probability of the predicted class", yscale="log", xlim=(0, 1))
        finish_axes(ax, f"{name}: accuracy {float(right.double().mean()):.1%}", loc="upper left")
    axes[0].set_ylabel("test images")
    return fig


def hardest_digits_figure(
    images: Tensor, labels: Tensor, probs: Tensor, n: int = 12, ncols: int = 6
) -> Figure:
    """The ``n`` images whose true class gets the lowest probability, each with what was read.

    Each panel is titled "4 → 9 (0.97)" (the true class, the predicted class and
    its probability) over "p(4) = 0.01" (the true class's probability).

    Args:
        images: ``(N, C, H, W)``, float in [0, 1] or ``uint8``.
        labels: ``(N,)`` the true classes.
        probs: ``(N, K)`` a model's class probabilities of each image.
        n: panels, 1..N.
        ncols: panels per row.

    Raises:
        ValueError: shapes that do not agree, probabilities that are not ones,
            or ``n`` out of range.
    """
    x = _images_in_unit("images", images)
    p = _check_probs("probs", probs, len(x))
    y = _check_labels(labels, len(x), p.shape[1])
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(x):
        raise ValueError(f"n must be an int in 1..{len(x)}, got {n!r}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    p_true = p[torch.arange(len(p)), y]
    order = torch.argsort(p_true, stable=True)[:n]
    cols = min(ncols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.45 * cols, 1.75 * rows), layout="constrained", squeeze=False
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, order.tolist(), strict=False):
        image_grid(x[i : i + 1], nrow=1, ax=ax, pad=0)
        true, pred = int(y[i]), int(p[i].argmax())
        ax.set_title(
            f"{true} → {pred} ({float(p[i, pred]):.2f})\np({true}) = {float(p_true[i]):.2f}",
            fontsize=9,
        )
    return fig


def class_completions_figure(
    image: Tensor,
    mask: Tensor,
    result: ClassCompletions,
    colour: tuple[float, float, float] = (0.85, 0.25, 0.2),
) -> Figure:
    """One masked image completed as each class, and the posterior over the classes.

    Top: the input with its missing pixels painted in ``colour``, then each
    class's completion titled with the class and ``p(y | known pixels)`` in %.
    Bottom: that posterior as bars.

    Args:
        image: the image ``(C, H, W)`` (a grey one also ``(H, W)``), float in [0, 1]
            or ``uint8``.
        mask: ``(H, W)`` or ``(C, H, W)``, ``True`` where missing.
        result: :func:`course_utils.glow.conditional.complete_as_each_class`'s result.
        colour: RGB of the missing pixels.

    Raises:
        ValueError: ``result`` is not a ``ClassCompletions``, or the image or the
            mask does not match its completions.
    """
    if not isinstance(result, ClassCompletions):
        raise ValueError(
            f"result must be the ClassCompletions of complete_as_each_class, got "
            f"{type(result).__name__}"
        )
    shape = tuple(result.completions.shape[1:])
    if isinstance(image, Tensor) and shape[0] == 1 and tuple(image.shape) == shape[1:]:
        image = image[None]  # a grey image given as (H, W)
    x = _images_in_unit("image", image, ndim=3)
    if tuple(x.shape) != shape:
        raise ValueError(f"image must have the completions' shape {shape}, got {tuple(x.shape)}")
    if not isinstance(mask, Tensor) or tuple(mask.shape) not in (shape[1:], (1, *shape[1:]), shape):
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must have shape {shape[1:]} or {shape}, got {got}")
    m = mask.cpu().reshape(1, -1, *shape[1:])
    shown = hole_view(x[None], m, colour)[0]
    k = len(result.classes)
    probs = result.probabilities()
    fig = plt.figure(figsize=(max(6.0, 1.05 * (k + 1)), 3.6), layout="constrained")
    grid = fig.add_gridspec(2, k + 1, height_ratios=[1.0, 1.1])
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(shown.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    ax.set_title("input\n(missing)", fontsize=9, color=colour)
    for j in range(k):
        ax = fig.add_subplot(grid[0, j + 1])
        image_grid(result.completions[j : j + 1], nrow=1, ax=ax, pad=0)
        ax.set_title(f"as {int(result.classes[j])}\n{float(probs[j]):.0%}", fontsize=9)
    ax = fig.add_subplot(grid[1, :])
    labels = [str(int(c)) for c in result.classes]
    ax.bar(labels, 100 * probs.numpy(), color=PALETTE[0])
    ax.set(xlabel="class y", ylabel="p(y | known pixels) (%)", ylim=(0, 105))
    ax.grid(axis="y", alpha=0.3)
    return fig
