"""Interactive panels: controls plus an ``Output``, around plain functions.

The pattern of every panel in the course: a *plain* function that takes the
control values as keyword arguments and returns a matplotlib figure (tests and
the notebook call it directly), wrapped by :func:`panel`, which draws the
controls and re-runs the function when one of them changes (sliders use
``continuous_update=False``, so a drag triggers one redraw on release) or,
for expensive work, only when a button is clicked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from IPython.display import display
from matplotlib.figure import Figure


def slider(
    value: float,
    min: float,
    max: float,
    step: float,
    description: str,
    readout_format: str = ".2f",
) -> W.FloatSlider:
    """A float slider that reports only on release (``continuous_update=False``)."""
    return W.FloatSlider(
        value=value,
        min=min,
        max=max,
        step=step,
        description=description,
        continuous_update=False,
        readout_format=readout_format,
        style={"description_width": "initial"},
        layout=W.Layout(width="320px"),
    )


def show_figure(output: W.Output, fig: Figure) -> None:
    """Replace what ``output`` shows by ``fig``, and close ``fig`` so it is not drawn twice."""
    output.clear_output(wait=True)
    with output:
        display(fig)
    plt.close(fig)  # shown once, in the Output, not again below the cell


#: What a notebook shows in place of a panel when no kernel runs it (e.g. on GitHub).
NOT_RUNNING_HINT = "[an interactive panel: run the notebook to use its controls]"


class PanelGroup(W.VBox):
    """Panels stacked in one box; without a running kernel it shows a one-line hint."""

    def __repr__(self) -> str:
        return NOT_RUNNING_HINT


class Panel(PanelGroup):
    """Controls above an ``Output`` that shows what ``fn(**values)`` draws.

    Attributes:
        controls: name → widget; the names are ``fn``'s keyword arguments.
        output: the ``Output`` widget holding the latest figure.
        button: the run button, or None when every change redraws.
        runs: how many times ``fn`` has been called (tests read it).
        last_figure: the figure of the latest call.
    """

    def __init__(
        self,
        fn: Callable[..., Figure],
        controls: Mapping[str, W.ValueWidget],
        button: str | None = None,
        title: str | None = None,
    ) -> None:
        self.fn = fn
        self.controls = dict(controls)
        self.output = W.Output()
        self.button = W.Button(description=button, button_style="primary") if button else None
        self.runs = 0
        self.last_figure: Figure | None = None
        row = list(self.controls.values()) + ([self.button] if self.button else [])
        header = [W.HTML(f"<b>{title}</b>")] if title else []
        super().__init__([*header, W.HBox(row, layout=W.Layout(flex_flow="row wrap")), self.output])
        if self.button is not None:
            self.button.on_click(lambda _: self.update())
        else:
            for widget in self.controls.values():
                widget.observe(lambda _: self.update(), names="value")

    def values(self) -> dict[str, Any]:
        """The current control values, keyed by ``fn``'s argument names."""
        return {name: w.value for name, w in self.controls.items()}

    def update(self) -> Figure:
        """Call ``fn`` with the current values and show its figure in ``output``."""
        fig = self.fn(**self.values())
        self.runs += 1
        self.last_figure = fig
        show_figure(self.output, fig)
        return fig


def panel(
    fn: Callable[..., Figure],
    controls: Mapping[str, W.ValueWidget],
    button: str | None = None,
    title: str | None = None,
) -> Panel:
    """Build a :class:`Panel` and draw it once with the initial values."""
    p = Panel(fn, controls, button=button, title=title)
    p.update()
    return p


def warp_figure(
    skew: float = 0.0, tail: float = 1.0, scale: float = 1.0, loc: float = 0.0
) -> Figure:
    """Lesson 01's panel function: a Gaussian warped by a sinh-arcsinh map.

    A plain function (the panel calls it; tests call it directly).
    """
    from course_utils.bijections import SinhArcsinh
    from course_utils.config import pick
    from course_utils.plots import change_of_variables_1d

    f = SinhArcsinh(skew=skew, tail=tail, loc=loc, scale=scale)
    return change_of_variables_1d(f, n_samples=pick(100_000, 20_000))


def warp_panel() -> Panel:
    """Sliders for skew, tail weight, scale and shift around :func:`warp_figure`."""
    return panel(
        warp_figure,
        {
            "skew": slider(0.0, -2.0, 2.0, 0.1, "skew ε"),
            "tail": slider(1.0, 0.4, 2.5, 0.05, "tail δ"),
            "scale": slider(1.0, 0.3, 2.5, 0.05, "scale"),
            "loc": slider(0.0, -2.0, 2.0, 0.1, "shift"),
        },
        title="Warp a Gaussian: x = shift + scale · sinh((asinh(z) + ε) / δ)",
    )


def inpaint_figure(
    model,
    images,
    train_images,
    index: int = 0,
    kind: str = "centre",
    size: int = 12,
    steps: int = 60,
) -> Figure:
    """Lesson 08's panel function: one held-out image, one mask, every method.

    A plain function (the panel calls it; tests call it directly). Draws the
    masked image, the nearest-neighbour fill, the likelihood ascent from the
    mean fill, the ascent from the neighbour's fill, the neighbours weighed by
    the flow (:func:`course_utils.inpaint.flow_kernel_inpaint`) and the original,
    each with its hole PSNR, and the log-likelihood of both ascents step by step.

    Args:
        model: the trained flow.
        images: float held-out images ``(N, C, H, W)`` in ``[0, 1]``.
        train_images: float training images (the baselines' pool).
        index: which held-out image.
        kind: a mask kind of :data:`course_utils.inpaint.MASK_KINDS`.
        size: side of the square masks; for ``"noise"``, the missing
            percentage is ``size / 28``.
        steps: optimisation steps.
    """
    from course_utils import inpaint as ip
    from course_utils.metrics import masked_psnr

    x = images[index : index + 1]
    gen = torch.Generator().manual_seed(index)  # the same mask for the same settings
    mask = ip.make_masks(kind, 1, tuple(x.shape[1:]), size=size, fraction=size / 28, generator=gen)
    nn_fill = ip.nearest_neighbour_fill(x, mask, train_images)
    ascent = ip.pixel_inpaint(model, x, mask, steps, init=ip.mean_fill(x, mask, train_images))
    refined = ip.pixel_inpaint(model, x, mask, steps, init=nn_fill)
    weighed = ip.flow_kernel_inpaint(model, x, mask, train_images).images
    with torch.no_grad():
        truth = model.log_prob(x).item()
    panels = [
        ("masked", ip.hole_view(x, mask)),
        ("nearest neighbour", nn_fill),
        ("likelihood ascent", ascent.images),
        ("neighbour + ascent", refined.images),
        ("neighbours weighed\nby the flow", weighed),
        ("original", x),
    ]
    fig = plt.figure(figsize=(13.5, 2.9))
    grid = fig.add_gridspec(1, len(panels) + 2)
    for i, (name, img) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        shown = img[0].permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray", vmin=0, vmax=1)
        if name not in ("masked", "original"):
            name += f"\n{masked_psnr(img, x, mask).item():.1f} dB"
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[0, len(panels) :])
    ax.plot(ascent.log_prob[:, 0], label="ascent")
    ax.plot(refined.log_prob[:, 0], label="neighbour + ascent")
    ax.axhline(truth, color="k", ls="--", lw=1, label="original")
    ax.set_xlabel("step")
    ax.set_ylabel("log p (nats)")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.suptitle(f"held-out image {index}, mask '{kind}': hole PSNR, higher is better", fontsize=10)
    fig.tight_layout()
    return fig


def inpaint_panel(model, images, train_images, steps: int = 60) -> Panel:
    """Image index, mask kind and size, steps → :func:`inpaint_figure`, behind a button.

    ``steps`` is the steps slider's starting value.
    """
    from functools import partial

    from course_utils.inpaint import MASK_KINDS

    fn = partial(inpaint_figure, model, images, train_images)
    int_style = {"style": {"description_width": "initial"}, "continuous_update": False}
    return panel(
        fn,
        {
            "index": W.IntSlider(0, 0, len(images) - 1, description="image", **int_style),
            "kind": W.Dropdown(options=MASK_KINDS, value="centre", description="mask"),
            "size": W.IntSlider(12, 2, 26, description="size (px)", **int_style),
            "steps": W.IntSlider(steps, 0, 200, 5, description="steps", **int_style),
        },
        button="Inpaint",
        title="Zero-shot inpainting: pick an image and a mask, then press Inpaint",
    )
