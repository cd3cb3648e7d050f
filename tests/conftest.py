"""Shared fixtures: the offline data folder, a private cache, a seeded RNG, a tiny Glow
and one inpainting problem.

The environment is set per test (``monkeypatch``), not for the whole process,
so that the notebook kernels that nbval starts later in the same ``make test``
run see the environment ``make`` gave them, not the one of these unit tests.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from course_utils.core.config import seed_everything
from course_utils.glow.model import Glow
from course_utils.inpaint.masks import make_masks

# Figures are drawn off-screen in this process (the env var below does the same
# for subprocesses that the tests start).
matplotlib.use("Agg")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()
# Read once, before any test's monkeypatch can unset it.
_DATA_DIR = os.environ.get("COURSE_DATA_DIR", "").strip()
DATA_DIR = Path(_DATA_DIR).expanduser().resolve() if _DATA_DIR else SHARED_DATA


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder per test session, so tests never touch ``~/.cache``."""
    return tmp_path_factory.mktemp("course-cache")


@pytest.fixture(autouse=True)
def _course_env(monkeypatch: pytest.MonkeyPatch, session_cache_dir: Path) -> None:
    """The environment every test starts from (undone after each test)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(session_cache_dir))
    if not os.environ.get("COURSE_DATA_DIR", "").strip() and DATA_DIR.is_dir():
        monkeypatch.setenv("COURSE_DATA_DIR", str(DATA_DIR))


@pytest.fixture
def rng() -> Iterator[torch.Generator]:
    """Seed ``random``, numpy and torch with 0 for one test, then restore their states.

    Yields a ``torch.Generator`` seeded with 0 for code that wants its own stream.
    """
    # seed_everything seeds numpy's legacy global RNG, so that is the state to keep.
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        yield seed_everything(0)
    random.setstate(py_state)
    np.random.set_state(np_state)  # noqa: NPY002


@pytest.fixture
def shared_data() -> Path:
    """The offline data folder (``COURSE_DATA_DIR`` or ``../shared/data``); skip if absent."""
    if not (DATA_DIR / "mnist").is_dir() and not (DATA_DIR / "fashion-mnist").is_dir():
        pytest.skip(f"no offline data at {DATA_DIR} (set COURSE_DATA_DIR)")
    return DATA_DIR


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run one test on one CPU thread (tiny 2D networks run fastest so), then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ a tiny Glow

#: The tiny Glow's layers: the course recipe's kind (gated couplings, logit with
#: α = 1e-5) at the smallest size, about 7,500 parameters.
TINY_GLOW = {
    "levels": 2,
    "blocks": 1,
    "hidden": 8,
    "net": "gated",
    "net_layers": 1,
    "logit_alpha": 1e-5,
}


@pytest.fixture(scope="session")
def make_tiny_glow() -> Callable[..., Glow]:
    """Factory of tiny Glows: ``make_tiny_glow(seed=0, **config)``, config over :data:`TINY_GLOW`.

    Each model is built with ``torch.manual_seed(seed)`` (without touching the
    caller's RNG), its ActNorm layers initialised on 16 uniform-noise images,
    and put in eval mode. A model is built once per session and handed out as a
    copy, so a test may train, freeze or perturb what it gets.
    """
    built: dict[tuple, Glow] = {}

    def make(seed: int = 0, **config: object) -> Glow:
        config = {**TINY_GLOW, **config}
        key = (seed, tuple(sorted(config.items())))
        if key not in built:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = Glow(**config)
                model.initialize(torch.rand(16, *model.config.shape))
            built[key] = model.eval()
        return copy.deepcopy(built[key])

    return make


@pytest.fixture(scope="session")
def make_tiny_cond_glow(make_tiny_glow: Callable[..., Glow]) -> Callable[[int], Glow]:
    """Factory of tiny class-conditional Glows whose classes differ: ``make_tiny_cond_glow(k)``.

    The tiny Glow with ``num_classes=k``, every class mean and log-scale drawn
    away from zero (seed 0), so that the classes give different densities.
    """

    def make(num_classes: int = 10) -> Glow:
        model = make_tiny_glow(num_classes=num_classes)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for q in model.flow.q0:
                q.class_loc.copy_(0.5 * torch.randn(q.class_loc.shape, generator=gen))
                q.class_log_scale.copy_(0.2 * torch.randn(q.class_log_scale.shape, generator=gen))
        return model

    return make


@pytest.fixture
def tiny_glow(make_tiny_glow: Callable[..., Glow]) -> Glow:
    """The tiny Glow (seed 0, :data:`TINY_GLOW`), initialised, in eval mode; the test's own copy."""
    return make_tiny_glow()


# ------------------------------------------------------- one inpainting problem


@dataclass(frozen=True)
class InpaintProblem:
    """Digit-like images with a hole, and a pool of training images to borrow from.

    Attributes:
        images: ``(4, 1, 28, 28)``: a bright vertical bar (one column further
            right in each image) on black, at 8-bit bin centres, in ``(0, 1)``.
        mask: ``(4, 1, 28, 28)`` bool, True where a pixel is missing: the 8×8
            square in the centre.
        pool: ``(20, 1, 28, 28)`` uniform noise in ``[0, 1)``, a training pool.
    """

    images: torch.Tensor
    mask: torch.Tensor
    pool: torch.Tensor


def _digit_bars(n: int = 4) -> torch.Tensor:
    """``n`` digit-like images: a bar of 250.5/256 on a background of 0.5/256."""
    x = torch.full((n, 1, 28, 28), 0.5 / 256)
    for i in range(n):
        x[i, 0, 6:22, 10 + i : 14 + i] = 250.5 / 256
    return x


@pytest.fixture
def inpaint_problem() -> InpaintProblem:
    """The inpainting problem of lesson 08's tests (fresh tensors for each test)."""
    pool = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return InpaintProblem(_digit_bars(4), make_masks("centre", 4, size=8), pool)
