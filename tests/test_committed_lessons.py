"""The committed lessons are what a reader sees on the web: every figure drawn, no error, light.

A lesson's committed run is read as stored (no kernel): a run kept with a
non-drawing matplotlib backend leaves every figure out while the prose around
it describes the picture, and nothing else would notice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

LESSONS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: A cell draws a figure for the reader when it shows one (``plt.show()``, or a
#: display updated with a figure), or saves one under ``figures/`` and leaves it open
#: (every figure a reader should look at is saved, by the course's convention, and an
#: open figure is drawn at the end of the cell); a cell that saves a figure and
#: closes it has shown it elsewhere.
SHOWS = re.compile(r"plt\.show\(\)|display\(fig|\.update\(fig")
SAVES, CLOSES = re.compile(r"save_figure\("), re.compile(r"plt\.close\(")


def draws(source: str) -> bool:
    return bool(SHOWS.search(source) or (SAVES.search(source) and not CLOSES.search(source)))


#: The most a committed lesson may weigh: figures at a sensible resolution.
MAX_BYTES = 3_000_000


def code_cells(path: Path) -> list[tuple[int, dict]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]


def test_the_lessons_are_found() -> None:
    assert len(LESSONS) >= 10


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_cell_that_draws_has_its_figure_in_the_committed_run(path: Path) -> None:
    drawing = [(i, c) for i, c in code_cells(path) if draws("".join(c["source"]))]
    assert drawing, f"{path.name}: no cell draws a figure"
    missing = [
        i
        for i, c in drawing
        if not any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
    ]
    assert not missing, (
        f"{path.name}: cells {missing} draw a figure but the committed run has no image "
        "(run with benchmarks/lesson_times.py --mode full --keep, which draws inline)"
    )


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_committed_run_is_complete_and_light(path: Path) -> None:
    cells = code_cells(path)
    assert all(c.get("execution_count") for _, c in cells), f"{path.name}: a cell never ran"
    errors = [i for i, c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{path.name}: cells {errors} end in an error in the committed run"
    assert path.stat().st_size <= MAX_BYTES, f"{path.name}: {path.stat().st_size:,} bytes"
