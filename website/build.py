"""Build the course's static website from the committed notebooks, offline (``make site``).

Nothing is executed: each lesson page shows the outputs of the committed full run,
and each panel the widget state saved with it (controls and last figure). The
build stages its sources in ``build/site/src`` and writes the site to
``build/site/html`` (open ``index.html``, or serve the folder):

- ``index``: the README (what the course is, the lessons and their times, the two
  commands), its links pointed at the site's pages;
- one page per lesson (``notebooks/NN_*.ipynb``; the student copies are not
  published), with a note below each panel on running it in JupyterLab and, for
  the panels in ``precompute.PANELS``, a box of precomputed slider positions;
- ``teaching``: the teacher guide; ``pretrained``: the shipped models.

Sphinx with myst-nb and sphinx-book-theme (pip, the ``site`` extra) does the rest:
navigation, a table of contents per page, search. MathJax and the widget
renderer are served from the site itself (``website/vendor``), so neither the
build nor a reader's browser fetches anything from elsewhere.

Usage: ``python website/build.py [--out build/site] [--cache .cache/site]``.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import precompute

from course_utils.core.widgets import NOT_RUNNING_HINT

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def lessons() -> list[Path]:
    """The lessons, in order (``notebooks/NN_*.ipynb``)."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _target(link: str, lesson_names: set[str]) -> str | None:
    """Where a README/guide link points on the site, or None for a file the site lacks."""
    if re.match(r"^[a-z]+:", link) or link.startswith("#"):
        return link
    path, _, anchor = link.partition("#")
    name = Path(path).name
    if name in lesson_names:
        return name + (f"#{anchor}" if anchor else "")
    if path in ("docs/teaching.md", "teaching.md"):
        return "teaching.md" + (f"#{anchor}" if anchor else "")
    return None


def rewrite_links(text: str, lesson_names: set[str]) -> str:
    """Point Markdown links at the site's pages; a link to a file the site lacks becomes text."""

    def sub(m: re.Match) -> str:
        label, link = m.group(1), m.group(2)
        target = _target(link, lesson_names)
        return f"[{label}]({target})" if target else label

    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", sub, text)


def sections(markdown: str) -> list[tuple[str, str]]:
    """``(heading, text)`` for each ``## `` section (the part before the first has heading '')."""
    parts = re.split(r"(?m)^(?=## )", markdown)
    return [(p.splitlines()[0] if p.startswith("## ") else "", p) for p in parts]


def landing_page(lesson_names: set[str], names: list[str]) -> str:
    """The README, its links rewritten, the pretrained models moved to their own page."""
    readme = (ROOT / "README.md").read_text()
    kept = []
    for heading, text in sections(readme):
        if heading.strip() == "## Pretrained models":
            text = (
                "## Pretrained models\n\nThe shipped models, what each was trained on and how, "
                "and their test figures: [Pretrained models](pretrained.md).\n\n"
            )
        kept.append(text)
    body = rewrite_links("".join(kept), lesson_names)
    intro = (
        "\n*This site shows every lesson as committed, with the outputs of its full run. "
        "To run the lessons and move their sliders, clone the course and run `make lab`.*\n\n"
    )
    title, _, rest = body.partition("\n")
    toctree = (
        "\n```{toctree}\n:hidden:\n:caption: Lessons\n:maxdepth: 1\n\n"
        + "\n".join(names)
        + "\n```\n\n```{toctree}\n:hidden:\n:caption: For teachers\n:maxdepth: 1\n\n"
        "teaching\npretrained\n```\n"
    )
    return title + "\n" + intro + rest + toctree


def pretrained_page(lesson_names: set[str]) -> str:
    """The README's section on the shipped models, then one table from their manifests."""
    readme = (ROOT / "README.md").read_text()
    section = next((t for h, t in sections(readme) if h.strip() == "## Pretrained models"), "")
    section = rewrite_links(
        section.replace("## Pretrained models", "# Pretrained models", 1), lesson_names
    )
    rows = [
        "| model | kind | data | recipe | training | test figures | size | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted((ROOT / "pretrained").glob("*.json")):
        info = json.loads(path.read_text())
        figures = ", ".join(
            f"{k.replace('_', ' ')} {info[k]}"
            for k in ("test_accuracy", "test_bits_per_dim", "recognisable_share")
            if k in info
        )
        training = ", ".join(
            str(x)
            for x in (
                f"{info['steps']:,} steps" if "steps" in info else "",
                f"{info['training_minutes']} min" if "training_minutes" in info else "",
                info.get("hardware", ""),
            )
            if x
        )
        size = f"{info['bytes'] / 1e6:.2f} MB" if isinstance(info.get("bytes"), int) else ""
        cells = [
            f"`{path.stem}`",
            info.get("kind", ""),
            info.get("dataset", ""),
            info.get("recipe", ""),
            training,
            figures,
            size,
            f"`{info['command']}`" if info.get("command") else "",
        ]
        rows.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return (
        section.rstrip()
        + "\n\n## From the manifests\n\nEach row is read from `pretrained/NAME.json`.\n\n"
        + "\n".join(rows)
        + "\n"
    )


def _is_panel(output: dict) -> bool:
    """A panel's widget output: its text form is the course's hint (a progress bar's is not)."""
    data = output.get("data", {})
    return WIDGET_VIEW in data and NOT_RUNNING_HINT in "".join(data.get("text/plain", ""))


def _panel_cells(nb: dict) -> list[int]:
    """Indices of the code cells whose output is a panel."""
    return [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and any(_is_panel(o) for o in cell.get("outputs", []))
    ]


def _markdown(source: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": source}


def stage_lesson(path: Path, out: Path, boxes: dict[str, list[tuple[str, dict]]]) -> int:
    """Copy a lesson to ``out`` with a note below each panel (and precomputed boxes).

    Returns the number of panels found.
    """
    nb = json.loads(path.read_text())
    lesson = path.name[:2]
    panels = _panel_cells(nb)
    note = (
        '<div class="nf-panel-note">⚙ This panel shows its controls and its last figure as '
        "saved; its sliders run in JupyterLab: clone the course, run <code>make lab</code> "
        f"and open <code>notebooks/{path.name}</code>.</div>"
    )
    pending = list(boxes.get(lesson, []))
    for i in reversed(panels):
        source = "".join(nb["cells"][i]["source"])
        extra = []
        for call, spec in pending:
            if call in source:
                extra.append(
                    '<div class="nf-precomputed" data-spec="'
                    + html.escape(json.dumps(spec), quote=True)
                    + '"></div>'
                )
        pending = [(c, s) for c, s in pending if c not in source]
        nb["cells"].insert(i + 1, _markdown("\n\n".join([note, *extra]), f"nf-panel-note-{i}"))
    if pending:
        raise SystemExit(
            f"{path.name}: no panel cell calls {[c for c, _ in pending]} "
            "(update website/precompute.py PANELS)"
        )
    (out / path.name).write_text(json.dumps(nb))
    return len(panels)


def stage(src: Path, cache: Path) -> None:
    """Write the Sphinx sources of the site to ``src``."""
    if src.exists():
        shutil.rmtree(src)
    (src / "_static").mkdir(parents=True)
    paths = lessons()
    lesson_names = {p.name for p in paths}
    boxes: dict[str, list[tuple[str, dict]]] = {}
    for panel in precompute.PANELS:
        t0 = time.perf_counter()
        folder = precompute.figures(panel, cache / "precomputed")
        target = src / "_static" / "precomputed" / panel.lesson
        shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.json"))
        # Lesson pages sit at the top of the site, beside _static.
        spec = precompute.spec(panel, f"_static/precomputed/{panel.lesson}/")
        boxes.setdefault(panel.lesson, []).append((panel.call, spec))
        print(f"precomputed {panel.lesson} ({time.perf_counter() - t0:.1f} s)", flush=True)
    for path in paths:
        stage_lesson(path, src, boxes)
    (src / "index.md").write_text(landing_page(lesson_names, [p.stem for p in paths]))
    teaching = (ROOT / "docs" / "teaching.md").read_text()
    (src / "teaching.md").write_text(rewrite_links(teaching, lesson_names))
    (src / "pretrained.md").write_text(pretrained_page(lesson_names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "site")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    src, html_dir = args.out / "src", args.out / "html"
    stage(src, args.cache)
    if html_dir.exists():
        shutil.rmtree(html_dir)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(HERE)]
    # The staged _static (the precomputed figures) beside the vendored files: Sphinx reads
    # html_static_path relative to the settings' folder, not to the staged sources.
    static = [HERE / "vendor", HERE / "static", src / "_static"]
    cmd += ["-D", "html_static_path=" + ",".join(str(p) for p in static)]
    cmd += ["-d", str(args.out / "doctrees"), str(src), str(html_dir)]
    subprocess.run(cmd, check=True)
    print(f"site: {html_dir / 'index.html'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
