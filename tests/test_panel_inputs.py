"""Every panel function refuses a NaN or infinite control value instead of drawing it.

A panel's plain function takes its controls' values as keyword arguments (the
notebook and the tests call it directly). Each float argument of every exported
function of ``course_utils.panels`` that can be called with its defaults alone is
given NaN and ±inf here: the function must raise a ``ValueError`` that names the
argument, not draw an empty or meaningless figure.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil

import matplotlib.pyplot as plt
import pytest

import course_utils.panels


def _float_arguments() -> list[tuple[str, str]]:
    """(module.function, argument) for every float argument of a defaults-only panel function."""
    out = []
    for info in pkgutil.iter_modules(course_utils.panels.__path__):
        module = importlib.import_module(f"course_utils.panels.{info.name}")
        for name in module.__all__:
            fn = getattr(module, name)
            if not inspect.isfunction(fn):
                continue
            params = inspect.signature(fn).parameters.values()
            if any(p.default is inspect.Parameter.empty for p in params):
                continue  # needs a model or data: its checks are tested with those
            out += [(f"{info.name}.{name}", p.name) for p in params if "float" in str(p.annotation)]
    return out


FLOAT_ARGUMENTS = _float_arguments()


def test_the_panels_have_float_controls_to_check() -> None:
    assert {"warp.warp_figure", "inference.planar_fold_figure"} <= {f for f, _ in FLOAT_ARGUMENTS}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("function", "argument"), FLOAT_ARGUMENTS)
def test_a_non_finite_control_value_is_refused_by_name(
    function: str, argument: str, value: float
) -> None:
    module, name = function.split(".")
    fn = getattr(importlib.import_module(f"course_utils.panels.{module}"), name)
    try:
        with pytest.raises(ValueError, match=argument):
            fn(**{argument: value})
    finally:
        plt.close("all")
