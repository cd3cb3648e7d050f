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

__all__ = [
    "slider",
    "show_figure",
    "NOT_RUNNING_HINT",
    "PanelGroup",
    "Panel",
    "panel",
]


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
