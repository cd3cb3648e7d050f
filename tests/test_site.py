"""The course's website in a real browser: every page, offline, in headless Chromium.

Builds the site (``website/build.py``, as ``make site`` does, into ``build/site``)
unless ``COURSE_SITE_DIR`` names a built one, serves it on 127.0.0.1 and opens
every page with Playwright in Debian's Chromium. A page fails on a broken image
(``naturalWidth`` 0), maths MathJax did not render (or rendered as an error), a
console error, a failed request, any request that leaves 127.0.0.1, or, on a
lesson with panels, a panel whose saved widgets did not render (controls and
figure). On the precomputed panels (lessons 01 and 07) a slider is moved and the
figure must change. The search page must find a lesson, and each lesson page must
have its table of contents and links to its neighbours.

Screenshots go to ``COURSE_SITE_ARTIFACTS`` (default ``.cache/test/site-screenshots``).
Without Chromium, Playwright or the ``site`` extra (Sphinx) the test is skipped,
unless ``COURSE_REQUIRE_BROWSER=1`` (CI), where it fails instead.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from labserver import headless_chromium, unavailable

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAGES = ["index", *LESSONS, "teaching", "pretrained"]
PRECOMPUTED = ("01", "07")  # lessons whose panels move without a kernel
# Generous: make test runs this beside a notebook on two cores.
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site() -> Path:
    """The built site's folder (built now unless ``COURSE_SITE_DIR`` is given)."""
    given = os.environ.get("COURSE_SITE_DIR", "").strip()
    if given:
        folder = Path(given)
        assert (folder / "index.html").is_file(), f"COURSE_SITE_DIR={given} has no index.html"
        return folder
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError:
        unavailable("the site extra is not installed: pip install -e '.[site]'")
    out = ROOT / "build" / "site"
    env = {k: v for k, v in os.environ.items() if k != "COURSE_FAST"}
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "website" / "build.py"), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"the site did not build:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return out / "html"


@pytest.fixture(scope="module")
def server(site: Path):
    """The site on 127.0.0.1, served by Python's http.server."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    value = os.environ.get("COURSE_SITE_ARTIFACTS", "").strip()
    folder = Path(value) if value else ROOT / ".cache" / "test" / "site-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nsite screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as b:
        yield b


class Watch:
    """What a page did wrong: console errors, failed requests, requests off 127.0.0.1."""

    def __init__(self, page, base: str) -> None:
        self.problems: list[str] = []
        host = urlparse(base).netloc

        def route(r) -> None:
            url = urlparse(r.request.url)
            if url.scheme in ("http", "https") and url.netloc != host:
                self.problems.append(f"request leaves 127.0.0.1: {r.request.url}")
                r.abort()
            else:
                r.continue_()

        page.route("**/*", route)
        # Routes see HTTP(S) only: a WebSocket anywhere is a request no static page makes.
        page.on("websocket", lambda ws: self.problems.append(f"websocket: {ws.url}"))
        page.on(
            "console",
            lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"),
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: self.problems.append(f"request failed: {r.url} ({r.failure})"),
        )
        page.on(
            "response",
            lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"),
        )


# Every <img> loaded with a size; maths typeset, none left as TeX, no TeX error.
CHECK_PAGE = """() => {
  const broken = [...document.images]
    .filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => (i.getAttribute('src') || '').slice(0, 80));
  const maths = [...document.querySelectorAll('.math')];
  const untypeset = maths.filter(m => !m.querySelector('mjx-container')).length;
  const errors = document.querySelectorAll('mjx-merror, [data-mjx-error]').length;
  const texts = [...document.querySelectorAll('article p, article li, article td')]
    .filter(e => !e.closest('pre, code, .math, mjx-container'))
    .map(e => e.innerText);
  const raw = texts.filter(t => /\\$[^$]*\\\\[a-zA-Z]+[^$]*\\$|\\\\\\(|\\\\\\[/.test(t));
  return {broken, maths: maths.length, untypeset, errors, raw: raw.slice(0, 3)};
}"""


def _settle(page) -> None:
    """Wait for MathJax to finish and every image to load or fail."""
    page.wait_for_load_state("load")
    page.wait_for_function(
        "() => !document.querySelector('.math') ||"
        " (window.MathJax && MathJax.startup && MathJax.startup.promise)",
        timeout=TIMEOUT_MS,
    )
    page.evaluate(
        "async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise; }"
    )
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=TIMEOUT_MS)


def _check_panels(page, name: str) -> int:
    """Each panel's saved widgets render: controls and an image in its Output."""
    notes = page.locator(".nf-panel-note").count()
    if not notes:
        return 0
    page.wait_for_function(
        f"() => document.querySelectorAll('.cell_output .jupyter-widgets.widget-vbox,"
        f" .cell_output .widget-vbox').length >= {notes}",
        timeout=TIMEOUT_MS,
    )
    found = page.evaluate(
        """() => [...document.querySelectorAll('.nf-panel-note')].map(note => {
             const cell = note.previousElementSibling;
             return {
               controls: cell ? cell.querySelectorAll(
                 '.widget-slider, .widget-dropdown, .widget-button, .widget-toggle-buttons,'
                 + ' .widget-checkbox, .widget-text, .widget-radio, button, select, input'
               ).length : 0,
               figures: cell ? [...cell.querySelectorAll('.widget-output img')]
                 .filter(i => i.naturalWidth > 0).length : 0,
             };
           })"""
    )
    for k, panel in enumerate(found):
        assert panel["controls"] > 0, f"{name}: panel {k + 1} shows no controls"
        assert panel["figures"] > 0, f"{name}: panel {k + 1} shows no figure"
    return notes


def _move_precomputed(page, name: str, artifacts: Path) -> None:
    """Move a precomputed slider: the figure must change to another loaded image."""
    box = page.locator(".nf-precomputed").first
    box.scroll_into_view_if_needed()
    img = box.locator("img.nf-precomputed-figure")
    page.wait_for_function(
        "i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=TIMEOUT_MS
    )
    before_src, before = img.get_attribute("src"), img.screenshot()
    box.screenshot(path=str(artifacts / f"{name}-precomputed-before.png"))
    slider = box.locator("input[type=range]").first
    slider.focus()
    page.keyboard.press("End")  # a reader's move, by keyboard
    page.wait_for_function(
        "([i, s]) => i.getAttribute('src') !== s && i.complete && i.naturalWidth > 0",
        arg=[img.element_handle(), before_src],
        timeout=TIMEOUT_MS,
    )
    after = img.screenshot()
    box.screenshot(path=str(artifacts / f"{name}-precomputed-after.png"))
    assert after != before, f"{name}: the precomputed figure did not change"


@pytest.mark.parametrize("name", PAGES)
def test_page(browser, server: str, artifacts: Path, name: str) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page, server)
    try:
        page.goto(f"{server}/{name}.html")
        _settle(page)
        page.screenshot(path=str(artifacts / f"{name}.png"))
        panels = _check_panels(page, name)
        if panels:
            page.evaluate(
                "() => document.querySelector('.nf-panel-note').previousElementSibling"
                ".scrollIntoView({block: 'start'})"
            )
            page.wait_for_timeout(300)
            page.screenshot(path=str(artifacts / f"{name}-panel.png"))
        result = page.evaluate(CHECK_PAGE)
        assert not result["broken"], f"{name}: broken images {result['broken']}"
        assert result["untypeset"] == 0, f"{name}: {result['untypeset']} maths not typeset"
        assert result["errors"] == 0, f"{name}: {result['errors']} maths with TeX errors"
        assert not result["raw"], f"{name}: TeX left as text: {result['raw']}"
        if name in LESSONS:
            assert panels > 0, f"{name}: no panel (every lesson has one)"
            assert page.locator(".bd-toc-nav a, #pst-page-toc-nav a").count() > 0, (
                f"{name}: no table of contents"
            )
            i = LESSONS.index(name)
            links = [a.get_attribute("href") for a in page.locator(".prev-next-area a").all()]
            if i + 1 < len(LESSONS):
                assert f"{LESSONS[i + 1]}.html" in links, f"{name}: no link to the next lesson"
            if name[:2] in PRECOMPUTED:
                _move_precomputed(page, name, artifacts)
        assert not watch.problems, f"{name}:\n" + "\n".join(watch.problems[:20])
    except Exception:
        page.screenshot(path=str(artifacts / f"FAILED_{name}.png"))
        raise
    finally:
        page.close()


def test_search(browser, server: str, artifacts: Path) -> None:
    """The search page finds the Glow lesson (Sphinx's index, in the page's JavaScript)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page, server)
    try:
        page.goto(f"{server}/search.html?q=Glow")
        results = page.locator("#search-results ul.search li a, ul.search li a")
        results.first.wait_for(timeout=TIMEOUT_MS)
        hrefs = [a.get_attribute("href") or "" for a in results.all()]
        page.screenshot(path=str(artifacts / "search.png"))
        assert any("07_glow_mnist" in h for h in hrefs), hrefs
        assert not watch.problems, "\n".join(watch.problems[:20])
    finally:
        page.close()
