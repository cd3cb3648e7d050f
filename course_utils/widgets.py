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


class Panel(W.VBox):
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
        self.output.clear_output(wait=True)
        with self.output:
            display(fig)
        plt.close(fig)  # shown once, in the Output, not again below the cell
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
