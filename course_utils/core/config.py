"""Course-wide settings: the fast-mode switch, seeding, and where files live.

Every setting is read from an environment variable so that the same notebook
runs unchanged on a laptop, in a classroom and in the test suite:

=======================  ====================================================
``COURSE_FAST=1``        fast mode: trainings shrink to a few steps (tests, CI);
                         1/true/yes/on or 0/false/no/off, anything else is an error
``COURSE_DATA_DIR``      a local folder holding the IDX ``.gz`` files, read as
                         is (e.g. ``../shared/data``); files missing there are
                         looked for in the cache and downloaded
``COURSE_CACHE_DIR``     where downloads and checkpoints go
                         (default ``~/.cache/nf-course``)
``COURSE_OFFLINE=1``     never touch the network; fail with a clear message
``COURSE_FIGURES_DIR``   where ``save_figure`` writes (default: ``figures/`` of
                         the repository in full mode, ``student/figures/`` for
                         a notebook run from ``student/``, a temporary folder in
                         fast mode: neither overwrites the lesson figures)
=======================  ====================================================
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "T",
    "REPO_ROOT",
    "fast_mode",
    "offline",
    "pick",
    "data_dir",
    "cache_dir",
    "figures_dir",
    "seed_everything",
]

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"", "0", "false", "f", "no", "n", "off"}


def _flag(name: str) -> bool:
    """A yes/no environment variable; a word that is neither is an error, never "off"."""
    value = os.environ.get(name, "")
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(
        f"{name}={value!r} is not a yes/no value: use 1/true/yes/on to turn it on, "
        "0/false/no/off (or leave it unset) to turn it off"
    )


def fast_mode() -> bool:
    """Whether ``COURSE_FAST`` asks for shrunken trainings (read on every call).

    Returns:
        True when ``COURSE_FAST`` is 1/true/yes/on/y/t, False when it is unset,
        empty or 0/false/no/off/n/f (any case).

    Raises:
        ValueError: it holds any other word.
    """
    return _flag("COURSE_FAST")


def offline() -> bool:
    """Whether ``COURSE_OFFLINE`` forbids network access (the same words as :func:`fast_mode`)."""
    return _flag("COURSE_OFFLINE")


def pick(full: T, fast: T) -> T:
    """Choose a setting by mode: ``full`` normally, ``fast`` under ``COURSE_FAST=1``.

    Args:
        full: the value used by a learner's run.
        fast: the value used by tests.

    Returns:
        One of the two.

    >>> pick(1000, 10) in (1000, 10)
    True
    """
    return fast if fast_mode() else full


def data_dir() -> Path | None:
    """The local data folder from ``COURSE_DATA_DIR``, or None when unset."""
    value = os.environ.get("COURSE_DATA_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """The cache folder (``COURSE_CACHE_DIR``, default ``~/.cache/nf-course``)."""
    value = os.environ.get("COURSE_CACHE_DIR", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "nf-course"


def figures_dir() -> Path:
    """Where figures are saved; see the module docstring for the rule."""
    value = os.environ.get("COURSE_FIGURES_DIR", "").strip()
    if value:
        return Path(value).expanduser()
    if fast_mode():
        return Path(tempfile.gettempdir()) / "nf-course-figures"
    student = REPO_ROOT / "student"
    try:  # a kernel runs in its notebook's folder: a student copy's figures stay beside it
        if Path.cwd().resolve().is_relative_to(student.resolve()):
            return student / "figures"
    except OSError:  # the working folder was removed
        pass
    return REPO_ROOT / "figures"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed ``random``, numpy and torch (CPU and CUDA) in one call.

    Args:
        seed: the seed.

    Returns:
        A ``torch.Generator`` seeded with ``seed``, for code that wants its own stream.

    >>> _ = seed_everything(0); a = torch.rand(1); _ = seed_everything(0)
    >>> bool(a == torch.rand(1))
    True
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the legacy global RNG is what old code draws from)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)
