"""Argument checks shared by every module: one rule and one message per kind of number.

A careless value (``batch_size=0``, ``minutes=float("nan")``, ``k=2.5``, images
in 0..255 where ``[0, 1]`` is meant) should stop a call at its boundary with a
message that names the argument, the value received and what is expected, not
fail deep inside torch or, worse, run and give a wrong answer. Each number
check returns the value as a plain Python number, so a numpy scalar never
travels further (a checkpoint could not store it).

>>> check_int("batch_size", 64, minimum=1)
64
>>> check_float("lr", 1e-3, positive=True)
0.001
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

__all__ = [
    "check_int",
    "check_float",
    "check_unit_images",
    "check_uint8_images",
    "check_mask",
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


# ----------------------------------------------------------------------- images


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _layout(
    name: str, x: torch.Tensor, shape: Sequence[int] | None, allow_hw: bool
) -> torch.Tensor:
    """``x`` as ``(batch, C, H, W)`` of the expected ``(C, H, W)``, or a ValueError."""
    want = f"(batch, {', '.join(map(str, shape))})" if shape else "(batch, C, H, W)"
    if allow_hw:
        want += f" or (batch, {', '.join(map(str, shape[1:]))})" if shape else " or (batch, H, W)"
    got = tuple(x.shape)
    # One image in (H, W, C) or a batch in (batch, H, W, C): a layout mistake torch would
    # read as a batch of H rows or as W-channel images, with no error (or a wrong answer).
    channels_last = (
        x.ndim in (3, 4)
        and got[-1] in (1, 3)
        and min(got[-3:-1]) > 3
        and (x.ndim == 3 or got[1] not in (1, 3))
        and (not shape or got[-3:] != tuple(shape))
    )
    if channels_last:
        fix = "x.permute(2, 0, 1)[None]" if x.ndim == 3 else "x.permute(0, 3, 1, 2)"
        raise ValueError(
            f"{name} must have shape {want}, got {got}, which looks like channels last "
            f"(H, W, C); put the channels first, e.g. {fix}"
        )
    if allow_hw and x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or (shape and tuple(x.shape[1:]) != tuple(shape)):
        raise ValueError(f"{name} must have shape {want}, got {got}")
    if len(x) == 0:
        raise ValueError(f"{name} is an empty batch {got}: give at least one image")
    return x


def _range_hint(low: float, high: float) -> str:
    if high > 1 and high <= 255 and low >= 0:
        return " (8-bit values 0..255? divide by 255, or dequantize the uint8 images)"
    if low < 0 and low >= -1 and high <= 1:
        return " (values in [-1, 1]? map them with (x + 1) / 2)"
    return ""


def check_unit_images(
    name: str,
    x: object,
    *,
    shape: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
    allow_hw: bool = False,
    allow_nonfinite: bool = False,
    uint8_hint: str = "map 8-bit images to [0, 1] first",
) -> torch.Tensor:
    """``x`` as a float batch of images in ``[0, 1]``, or a ``ValueError`` that names ``name``.

    The one check of every entry point that takes images in the course's unit
    (pixels in ``[0, 1]``): a flow's density, the inpainting methods and their
    starts, the hole metrics, the digit classifier. Values in 0..255 or in
    [−1, 1] would otherwise give a silently wrong answer (a flow's density of
    nonsense, an inflated recognisable share, a PSNR of −43 dB).

    Args:
        name: the argument's name, as the caller knows it.
        x: the images, ``(batch, C, H, W)``.
        shape: the expected ``(C, H, W)``, if any.
        dtype: the float dtype the caller computes in (a model's); another one
            is refused with the conversion to make.
        allow_hw: accept ``(batch, H, W)`` too (returned with a channel axis).
        allow_nonfinite: accept NaN/inf (e.g. samples a model failed to draw);
            the range is then checked on the finite values.
        uint8_hint: what to do with ``uint8`` images, in the caller's terms.

    Returns:
        ``x`` itself, or a view with a channel axis (``allow_hw``).

    >>> check_unit_images("x", torch.full((1, 1, 2, 2), 255.0))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: x must lie in [0, 1], got values in [255, 255] (8-bit values 0..255? ...)
    """
    if not isinstance(x, torch.Tensor):
        hint = "; convert it with torch.from_numpy" if type(x).__module__ == "numpy" else ""
        raise ValueError(f"{name} must be a tensor of images, got {type(x).__name__}{hint}")
    x = _layout(name, x, shape, allow_hw)
    if x.dtype == torch.uint8:
        raise ValueError(f"{name} must be float in [0, 1], got uint8 (0..255); {uint8_hint}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1], got {_dtype_name(x.dtype)}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(
            f"{name} is {_dtype_name(x.dtype)} but the model is {_dtype_name(dtype)}; "
            f"convert with {name}.to(torch.{_dtype_name(dtype)})"
        )
    values = x.detach()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        if not allow_nonfinite:
            bad = int((~finite).flatten(1).any(1).sum())
            raise ValueError(f"{name} contains NaN or inf values (in {bad} of {len(x)} images)")
        values = values[finite]
    if values.numel():
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"{name} must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]"
                + _range_hint(low, high)
            )
    return x


def check_uint8_images(
    name: str, x: object, *, shape: Sequence[int] | None = None, allow_hw: bool = True
) -> torch.Tensor:
    """``x`` as a ``uint8`` batch ``(batch, C, H, W)`` of 8-bit images, or a ``ValueError``.

    A numpy array is accepted (and returned as a tensor); ``(batch, H, W)``
    gets a channel axis unless ``allow_hw`` is False; an image in ``(H, W, C)``
    layout is refused, not read as a batch of ``H`` rows.

    >>> check_uint8_images("images", torch.zeros(28, 28, 1, dtype=torch.uint8))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: images must have shape ..., got (28, 28, 1), which looks like channels last ...
    """
    if type(x).__module__ == "numpy" and hasattr(x, "dtype"):
        if str(x.dtype) != "uint8":
            raise ValueError(f"{name} must be uint8 images (0..255), got {x.dtype} (numpy)")
        x = torch.from_numpy(x.copy())
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a uint8 tensor (0..255), got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 images (0..255), got {_dtype_name(x.dtype)}")
    return _layout(name, x, shape, allow_hw)


def check_mask(
    mask: torch.Tensor, shape: Sequence[int], name: str = "mask", one: str = "missing"
) -> torch.Tensor:
    """``mask`` as a bool tensor of the images' ``shape`` ``(batch, C, H, W)``, or a ValueError.

    Accepted: bool, or a tensor of 0s and 1s (1 = missing), of ``shape`` or
    with one channel (``(batch, 1, H, W)``, or ``(batch, H, W)``), broadcast over
    the channels. A soft mask (0.5), NaN, or another shape is refused: a pixel
    is missing or it is not.

    Args:
        mask: the mask.
        shape: the images' shape ``(batch, C, H, W)``.
        name: the argument's name, as the caller knows it.
        one: what a 1 means, for the message (``"missing"``, ``"scored"``).

    >>> check_mask(torch.tensor([[[[0.0, 1.0]]]]), (1, 1, 1, 2)).tolist()
    [[[[False, True]]]]
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(mask).__name__}")
    b, c, h, w = shape
    if mask.ndim == 3:
        mask = mask[:, None]
    if mask.ndim != 4 or mask.shape[0] != b or tuple(mask.shape[2:]) != (h, w):
        raise ValueError(
            f"{name} must have the images' shape {tuple(shape)} "
            f"(or (batch, 1, H, W)), got {tuple(mask.shape)}"
        )
    if mask.shape[1] not in (1, c):
        raise ValueError(f"{name} must have 1 or {c} channels, got {mask.shape[1]}")
    if mask.dtype != torch.bool:
        if mask.is_floating_point() and not torch.isfinite(mask).all():
            raise ValueError(f"{name} contains NaN or inf; it must be boolean or 0/1")
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError(
                f"{name} must be boolean or hold only 0 and 1 (1 = {one}), got values "
                f"{torch.unique(mask)[:5].tolist()}"
            )
        mask = mask == 1
    return mask.expand(b, c, h, w)
