"""Shared fixtures: the offline data folder, a private cache, a seeded RNG.

The environment is set per test (``monkeypatch``), not for the whole process,
so that the notebook kernels that nbval starts later in the same ``make test``
run see the environment ``make`` gave them, not the one of these unit tests.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from course_utils.core.config import seed_everything

# Figures are drawn off-screen in this process (the env var below does the same
# for subprocesses that the tests start).
matplotlib.use("Agg")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()
# Read once, before any test's monkeypatch can unset it.
_DATA_DIR = os.environ.get("COURSE_DATA_DIR", "").strip()
DATA_DIR = Path(_DATA_DIR).expanduser().resolve() if _DATA_DIR else SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    """Each test process (pytest-xdist worker) gets its own cache below ``COURSE_CACHE_DIR``.

    The notebook kernels inherit it: a lesson and its student copy, run at the same
    time by two workers, would otherwise train into one checkpoint, and the second
    is refused while the first holds its lock.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base = os.environ.get("COURSE_CACHE_DIR", "").strip()
    if worker and base:
        os.environ["COURSE_CACHE_DIR"] = str(Path(base) / worker)


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
