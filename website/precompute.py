"""Precomputed panel figures: a few slider positions drawn at build time, for the site.

A reader of the site has no kernel, so a panel's sliders cannot redraw its figure.
For the panels listed in :data:`PANELS`, the build draws the panel's own plain
function (the one the lesson's panel calls) on a small grid of slider positions,
with the committed code and the shipped models, and the page swaps the PNGs when
a reader moves a slider (``static/nf-site.js``). Nothing is trained and no data
set is read.

The figures are cached under ``.cache/site/precomputed/<key>/``; the key is a
digest of the package's sources, the shipped models' manifests, this file and
the matplotlib/torch versions, so a change of any of them draws them again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Control:
    """One precomputed slider: the panel function's argument, its label and its positions."""

    name: str
    label: str
    values: tuple[Any, ...]
    default: Any


@dataclass(frozen=True)
class PrecomputedPanel:
    """A lesson's panel drawn on the grid of every combination of its controls' positions.

    Attributes:
        lesson: the lesson's two-digit number.
        call: text in the source of the panel's cell, which places the box after it.
        title: what the box says it shows.
        controls: the sliders, each with its positions.
        fixed: what the other controls of the panel are held at, said on the page.
        draw: ``draw(context, **values) -> Figure``; ``context`` is what ``setup`` returned.
        setup: loads what every figure needs (e.g. a shipped model), once.
    """

    lesson: str
    call: str
    title: str
    controls: tuple[Control, ...]
    fixed: str
    draw: Callable[..., Any]
    setup: Callable[[], Any] = lambda: None


def _warp(_context, skew: float, tail: float):
    from course_utils.panels.warp import warp_figure

    return warp_figure(skew=skew, tail=tail, scale=1.0, loc=0.0)


def _glow_setup():
    from course_utils import pretrained

    return pretrained.load("glow-mnist"), pretrained.load("digit-classifier")


def _glow_samples(context, temperature: float, seed: int):
    from course_utils.panels.glow import samples_figure

    model, classifier = context
    return samples_figure(model, temperature=temperature, seed=seed, classifier=classifier)


PANELS: tuple[PrecomputedPanel, ...] = (
    PrecomputedPanel(
        lesson="01",
        call="warp_panel(",
        title="Warp a Gaussian",
        controls=(
            Control("skew", "skew ε", (-1.0, -0.5, 0.0, 0.5, 1.0), 0.0),
            Control("tail", "tail δ", (0.5, 1.0, 1.5, 2.0, 2.5), 1.0),
        ),
        fixed="scale 1 and shift 0",
        draw=_warp,
    ),
    PrecomputedPanel(
        lesson="07",
        call="glow_panel(",
        title="Samples of the pretrained glow-mnist",
        controls=(
            Control("temperature", "temperature T", (0.1, 0.3, 0.5, 0.7, 0.9, 1.1), 0.7),
            Control("seed", "seed", (0, 1, 2), 0),
        ),
        fixed="this lesson's own Glow is trained in the lesson, so here the pretrained one draws",
        draw=_glow_samples,
        setup=_glow_setup,
    ),
)


def cache_key() -> str:
    """A digest of everything the figures depend on."""
    import matplotlib
    import torch

    h = hashlib.sha256()
    files = sorted((ROOT / "course_utils").rglob("*.py")) + sorted(
        (ROOT / "pretrained").glob("*.json")
    )
    for path in [*files, Path(__file__)]:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    h.update(f"matplotlib {matplotlib.__version__} torch {torch.__version__}".encode())
    return h.hexdigest()[:16]


def file_key(indices: tuple[int, ...]) -> str:
    """The file name of the figure at these control positions, e.g. ``3_2.png``."""
    return "_".join(str(i) for i in indices) + ".png"


def render(panel: PrecomputedPanel, folder: Path) -> None:
    """Draw every combination of ``panel``'s control positions into ``folder``."""
    import matplotlib.pyplot as plt
    import torch

    torch.set_num_threads(1)  # the build shares its machine (make test runs it beside a lesson)
    folder.mkdir(parents=True, exist_ok=True)
    context = panel.setup()
    for indices in itertools.product(*(range(len(c.values)) for c in panel.controls)):
        values = {c.name: c.values[i] for c, i in zip(panel.controls, indices, strict=True)}
        fig = panel.draw(context, **values)
        # As the notebook's inline backend saves a figure (100 dpi, tight box).
        fig.savefig(folder / file_key(indices), dpi=100, bbox_inches="tight")
        plt.close(fig)


def figures(panel: PrecomputedPanel, cache: Path) -> Path:
    """The folder of ``panel``'s figures, drawn now unless the cache has them."""
    key = cache_key()
    folder = cache / key / panel.lesson
    done = folder / "done.json"
    for old in cache.glob("*"):  # figures of earlier sources are never used again
        if old.is_dir() and old.name != key:
            shutil.rmtree(old)
    if not done.is_file():
        if folder.exists():
            shutil.rmtree(folder)
        # Figures as in a full run, whatever mode the caller is in.
        fast = os.environ.pop("COURSE_FAST", None)
        try:
            render(panel, folder)
        finally:
            if fast is not None:
                os.environ["COURSE_FAST"] = fast
        done.write_text(json.dumps({"controls": [c.name for c in panel.controls]}))
    return folder


def spec(panel: PrecomputedPanel, base_url: str) -> dict[str, Any]:
    """What the page's script needs: the controls, their positions and where the PNGs are."""
    return {
        "title": panel.title,
        "fixed": panel.fixed,
        "base": base_url,
        "controls": [
            {
                "name": c.name,
                "label": c.label,
                "values": list(c.values),
                "default": c.values.index(c.default),
            }
            for c in panel.controls
        ],
    }
