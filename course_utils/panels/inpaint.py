"""Lesson 08's panel: one held-out digit, one mask, and what the flow makes of the hole.

:func:`inpaint_figure` draws the figure (the lesson and the tests call it);
:func:`inpaint_panel` puts controls and a button around it with
:class:`course_utils.core.widgets.Panel`.
"""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from course_utils.core.checks import check_int
from course_utils.core.metrics import masked_psnr
from course_utils.core.widgets import Panel, panel
from course_utils.inpaint.flow import TARGET_ACCEPTANCE, multistart_inpaint, pixel_inpaint
from course_utils.inpaint.masks import (
    MASK_KINDS,
    GaussianFit,
    gaussian_fill,
    gaussian_fit,
    hole_view,
    kernel_fill,
    make_masks,
)

__all__ = [
    "panel_mask",
    "ascent_trace_figure",
    "chain_figure",
    "inpaint_figure",
    "inpaint_panel",
]

Tensor = torch.Tensor


def panel_mask(kind: str, size: int, index: int, shape: tuple[int, int, int]) -> Tensor:
    """The mask the panel uses: ``(1, C, H, W)``, the same for the same settings.

    For ``"noise"`` the missing share is ``size / 28``; for the squares, ``size``
    is their side.
    """
    gen = torch.Generator().manual_seed(index)
    return make_masks(kind, 1, shape, size=size, count=2, fraction=size / 28, generator=gen)


def ascent_trace_figure(
    trace: Tensor, originals: float, black: float, show: int = 8, title: str = ""
) -> Figure:
    """Likelihood ascent's ``log p`` step by step, against the originals' and the black fill's.

    Args:
        trace: ``(steps + 1, images)`` log p of every image at every step.
        originals: the mean ``log p`` of the original images (a dashed line).
        black: the mean ``log p`` with the hole filled black, where the ascent starts.
        show: how many images' own curves are drawn thin, besides the mean.
        title: the axes' title.
    """
    if trace.ndim != 2 or len(trace) < 1:
        raise ValueError(f"trace must be (steps + 1, images), got shape {tuple(trace.shape)}")
    show = check_int("show", show, minimum=0)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(trace[:, :show], color="C0", lw=0.6, alpha=0.5)
    label = f"likelihood ascent (mean of {trace.shape[1]})"
    ax.plot(trace.mean(1), color="C0", lw=2.5, label=label)
    ax.axhline(originals, color="k", ls="--", lw=1, label="original digits")
    ax.axhline(black, color="C3", ls=":", lw=1.5, label="hole filled black (the start)")
    ax.set(xlabel="step", ylabel="log p (nats per image)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9, loc="center right")
    fig.tight_layout()
    return fig


def inpaint_figure(
    model: nn.Module,
    images: Tensor,
    train_images: Tensor | None = None,
    index: int = 0,
    kind: str = "centre",
    size: int = 12,
    steps: int = 40,
    starts: int = 3,
    seed: int = 0,
    ascent_steps: int = 400,
    lr: float = 0.075,
    fit: GaussianFit | None = None,
) -> Figure:
    """One image, one mask: the flow's answers beside the baselines, with hole PSNRs.

    Top row: the masked image, the neighbour average and the Gaussian
    conditional mean (with ``train_images``), likelihood ascent, latent MAP, the
    mean of ``starts`` latent MAP fits, and the original. Bottom row: the fits
    (the completions the flow draws, from ``z = 0`` and random starts), and the
    ascent's ``log p`` step by step against the original's.

    Args:
        model: the trained flow.
        images: float held-out images ``(N, C, H, W)`` in ``[0, 1]``.
        train_images: the baselines' pool (``None``: leave them out).
        index: which image.
        kind: a mask kind of :data:`course_utils.inpaint.masks.MASK_KINDS`.
        size: the squares' side; for ``"noise"``, the missing share is ``size / 28``.
        steps: Adam steps of each latent MAP fit.
        starts: latent MAP fits (the first from ``z = 0``).
        seed: seeds the random starts.
        ascent_steps: the most steps of the ascent (it stops when converged).
        lr: the fits' learning rate.
        fit: the Gaussian conditional's fit of ``train_images`` (:func:`gaussian_fit`),
            made here when None.
    """
    n = len(images)
    if not 0 <= check_int("index", index, minimum=0) < n:
        raise ValueError(f"index must be below {n}, got {index}")
    steps = check_int("steps", steps, minimum=1)
    x = images[index : index + 1]
    mask = panel_mask(kind, size, index, tuple(x.shape[1:]))
    ascent = pixel_inpaint(model, x, mask, steps=ascent_steps)
    multi = multistart_inpaint(
        model,
        x,
        mask,
        starts=starts,
        steps=steps,
        lr=lr,
        generator=torch.Generator().manual_seed(seed),
    )
    fits = multi.extra["fits"][0]
    with torch.no_grad():
        truth = model.log_prob(x).item()
    top = [("masked", hole_view(x, mask))]
    if train_images is not None:
        top.append(("neighbour average\n(no flow)", kernel_fill(x, mask, train_images)))
        gauss = gaussian_fill(x, mask, train_images, fit=fit)
        top.append(("Gaussian cond.\n(no flow)", gauss))
    top += [
        ("likelihood ascent", ascent.images),
        ("latent MAP", fits[:1]),
        (f"mean of {starts} fits", multi.images),
        ("original", x),
    ]
    cols = max(len(top), len(fits) + 2)
    fig = plt.figure(figsize=(1.55 * cols, 4.4))
    grid = fig.add_gridspec(2, cols)

    def show(ax, img, title):
        shown = img.permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()

    for i, (name, img) in enumerate(top):
        if name not in ("masked", "original"):
            name += f"\n{masked_psnr(img, x, mask).item():.1f} dB"
        show(fig.add_subplot(grid[0, i]), img[0], name)
    for i, img in enumerate(fits):
        psnr = masked_psnr(img[None], x, mask).item()
        show(fig.add_subplot(grid[1, i]), img, f"fit {i + 1}\n{psnr:.1f} dB")
    ax = fig.add_subplot(grid[1, len(fits) :])
    ax.plot(ascent.log_prob[:, 0], color="C0", label="likelihood ascent")
    ax.axhline(truth, color="k", ls="--", lw=1, label="original")
    ax.set_xlabel("step of the ascent", fontsize=8)
    ax.set_ylabel("log p (nats)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    fig.suptitle(
        f"image {index}, mask '{kind}' (size {size}): hole PSNR, higher is better", fontsize=10
    )
    fig.tight_layout()
    return fig


def chain_figure(log_prob: Tensor, acceptance: Tensor, warmup: int, original: Tensor) -> Figure:
    """A sampler's trace: every chain's ``log p`` and the mean acceptance, step by step.

    Args:
        log_prob: ``(steps + 1, chains)`` pixel ``log p`` of every chain.
        acceptance: ``(steps,)`` the mean acceptance probability of each step.
        warmup: the steps of step-size adaptation (a shaded band).
        original: ``(chains,)`` ``log p`` of each chain's original image (dashed).
    """
    if log_prob.ndim != 2 or acceptance.shape != (len(log_prob) - 1,):
        raise ValueError(
            f"log_prob must be (steps + 1, chains) and acceptance (steps,), got "
            f"{tuple(log_prob.shape)} and {tuple(acceptance.shape)}"
        )
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for c in range(log_prob.shape[1]):
        (line,) = left.plot(log_prob[:, c], lw=1)
        left.axhline(float(original[c]), color=line.get_color(), ls="--", lw=0.8)
    left.set(xlabel="step", ylabel="log p (nats)", title="each chain (dashed: its original)")
    right.plot(range(1, len(acceptance) + 1), acceptance, color="C2")
    right.axhline(TARGET_ACCEPTANCE, color="k", ls=":", lw=1, label="target 0.574")
    right.set(xlabel="step", ylabel="acceptance", ylim=(0, 1.02), title="mean acceptance")
    right.legend(frameon=False, fontsize=8)
    for ax in (left, right):
        ax.axvspan(0, warmup, color="0.9", zorder=0)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def inpaint_panel(
    model: nn.Module,
    images: Tensor,
    train_images: Tensor | None = None,
    steps: int = 40,
    **settings,
) -> Panel:
    """Image, mask kind and size, latent MAP steps and seed → :func:`inpaint_figure`, on a button.

    ``steps`` is the steps slider's starting value; ``settings`` (``starts``,
    ``ascent_steps``, ``lr``) go to :func:`inpaint_figure` unchanged. The Gaussian
    conditional is fitted to ``train_images`` once, here.
    """
    if train_images is not None and "fit" not in settings:
        settings["fit"] = gaussian_fit(train_images)
    ints = {"style": {"description_width": "initial"}, "continuous_update": False}
    return panel(
        lambda **kw: inpaint_figure(model, images, train_images, **kw, **settings),
        {
            "index": W.IntSlider(0, 0, len(images) - 1, description="image", **ints),
            "kind": W.Dropdown(options=MASK_KINDS, value="centre", description="mask"),
            "size": W.IntSlider(12, 2, 26, description="size (px)", **ints),
            "steps": W.IntSlider(steps, 1, 200, 1, description="latent MAP steps", **ints),
            "seed": W.IntSlider(0, 0, 99, description="seed", **ints),
        },
        button="Inpaint",
        title="Inpainting by the flow: pick an image and a mask, then press Inpaint",
    )
