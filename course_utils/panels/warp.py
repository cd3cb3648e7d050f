"""Lesson 01's panel: a Gaussian warped by a sinh-arcsinh map, with its density by the formula.

:func:`warp_figure` is the plain function (the lesson and the tests call it);
:func:`warp_panel` puts sliders around it with :func:`course_utils.core.widgets.panel`.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from course_utils.core.config import pick
from course_utils.core.widgets import Panel, panel, slider
from course_utils.flows2d.bijections import SinhArcsinh
from course_utils.flows2d.plots import change_of_variables_1d

__all__ = [
    "warp_figure",
    "warp_panel",
]


def warp_figure(
    skew: float = 0.0, tail: float = 1.0, scale: float = 1.0, loc: float = 0.0
) -> Figure:
    """Lesson 01's panel function: a Gaussian warped by a sinh-arcsinh map.

    A plain function (the panel calls it; tests call it directly).
    """
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
