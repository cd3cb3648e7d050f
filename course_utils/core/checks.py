"""Argument checks shared by every module: one rule and one message per kind of number.

A careless value (``batch_size=0``, ``minutes=float("nan")``, ``k=2.5``) should
stop a call at its boundary with a message that names the argument, the value
received and what is expected, not fail deep inside torch or, worse, run and
give a wrong answer. Each check returns the value as a plain Python number, so
a numpy scalar never travels further (a checkpoint could not store it).

>>> check_int("batch_size", 64, minimum=1)
64
>>> check_float("lr", 1e-3, positive=True)
0.001
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "check_int",
    "check_float",
]


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """``value`` as an ``int``, or a ``ValueError`` that names ``name``.

    Args:
        name: the argument's name, as the caller knows it.
        value: any integer type (numpy integers included); ``bool`` and floats
            such as ``3.0`` are refused, since they are usually a mistake.
        minimum: the smallest value allowed, if any.

    Returns:
        The value as a Python ``int``.

    >>> check_int("k", 0, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: k must be an integer >= 1, got 0 (int)
    """
    need = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {need}, got {_describe(value)}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be {need}, got {_describe(value)}")
    return out


def check_float(
    name: str, value: object, *, minimum: float | None = None, positive: bool = False
) -> float:
    """``value`` as a finite ``float``, or a ``ValueError`` that names ``name``.

    Args:
        name: the argument's name, as the caller knows it.
        value: any real number (numpy scalars included); NaN and ±inf are refused.
        minimum: the smallest value allowed (inclusive), if any.
        positive: require ``value > 0``.

    Returns:
        The value as a Python ``float``.

    >>> check_float("minutes", float("nan"), positive=True)
    Traceback (most recent call last):
    ...
    ValueError: minutes must be a finite number > 0, got nan (float)
    """
    need = "a finite number" + (
        " > 0" if positive else (f" >= {minimum:g}" if minimum is not None else "")
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {need}, got {_describe(value)}")
    out = float(value)
    if not math.isfinite(out) or (positive and out <= 0) or (minimum is not None and out < minimum):
        raise ValueError(f"{name} must be {need}, got {_describe(value)}")
    return out
