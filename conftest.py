"""Hooks for the whole ``make test`` run: unit tests, doctests and notebooks alike.

Kept at the repository root so that they apply however pytest is started
(``pytest notebooks student -n 2`` as much as ``make test``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent


def _notebook_seconds() -> dict[tuple[str, str], float]:
    """``(folder, lesson) -> seconds`` of each lesson's fast-mode run, as last measured."""
    path = REPO_ROOT / "benchmarks" / "results" / "lesson_times.json"
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return {}
    folder = {"lesson": "notebooks", "student": "student"}
    return {
        (folder.get(r.get("copy"), ""), r["lesson"]): float(r["seconds"])
        for r in runs
        if r.get("mode") == "fast" and not r.get("label") and r.get("seconds")
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first, so that the test processes finish together.

    ``make test`` hands whole files to two processes (``--dist loadfile``), in
    this order: a long file started last would run alone at the end. The browser
    tests go first (test_browser.py drives lessons in JupyterLab; test_site.py builds
    the website and opens every page, so it takes the other process), then the notebooks by their
    measured fast-mode time (``benchmarks/results/lesson_times.json``), then the
    rest as collected. Within a file the order is kept (a notebook's cells run in
    order).
    """
    seconds = _notebook_seconds()

    def weight(item: pytest.Item) -> float:
        path = Path(str(item.fspath))
        if path.name in ("test_browser.py", "test_site.py"):
            return math.inf
        return seconds.get((path.parent.name, path.stem), 0.0)

    items.sort(key=weight, reverse=True)  # stable: ties keep their order


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
