"""The course's widgets in a real browser: JupyterLab driven by Playwright in headless Chromium.

Starts JupyterLab on 127.0.0.1 with a random token, on a temporary copy of the
lessons (the committed notebooks are never touched), in fast mode. Then, as a
learner would: open lesson 09, run all cells from the Run menu, move the
temperature slider and the steps slider, click Train, and check that the
panel's picture changed and that no cell shows an error; open lesson 01 and
move its skew slider; open lesson 02, move its layer slider, then train a
one-coupling flow with its Train button; open lesson 10, move the detector's
threshold, pick another score, and change typicality's group size. JupyterLab runs with the
course's defaults as ``make lab`` installs them, and lesson 01 opens without JupyterLab's
prompt about its news.

Screenshots go to ``COURSE_BROWSER_ARTIFACTS`` (default
``.cache/test/browser-artifacts``); the path is printed. Without Chromium or
Playwright the test is skipped, unless ``COURSE_REQUIRE_BROWSER=1`` (CI), where
it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from labserver import free_port, get, headless_chromium, install_lab_settings, serving

ROOT = Path(__file__).resolve().parent.parent
LESSONS = (
    "01_change_of_variables.ipynb",
    "09_loss_playground.ipynb",
    "02_coupling_flows_moons.ipynb",
    "10_anomaly_detection.ipynb",
)
# The notebook in front: JupyterLab keeps earlier notebooks open in hidden tabs.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
NOTIFICATION = "@jupyterlab/apputils-extension:notification"
NEWS_PROMPT = "get notified about official Jupyter news"
ERROR_OUTPUT = '[data-mime-type="application/vnd.jupyter.error"]'
STDERR_OUTPUT = '[data-mime-type="application/vnd.jupyter.stderr"]'


@pytest.fixture(scope="module")
def artifacts() -> Path:
    value = os.environ.get("COURSE_BROWSER_ARTIFACTS", "").strip()
    folder = Path(value) if value else ROOT / ".cache" / "test" / "browser-artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """JupyterLab on a copy of the lessons in LESSONS, in fast mode: ``(base_url, token)``."""
    tmp = tmp_path_factory.mktemp("browser")
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    for name in LESSONS:
        shutil.copy2(ROOT / "notebooks" / name, notebooks / name)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        COURSE_FAST="1",
        COURSE_CACHE_DIR=os.environ.get("COURSE_CACHE_DIR") or str(tmp / "cache"),
        COURSE_FIGURES_DIR=str(tmp / "figures"),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
    )
    # The course's JupyterLab defaults, installed as `make lab` installs them (no "get notified
    # about official Jupyter news?" prompt); the user settings folder above starts empty.
    app_settings = install_lab_settings(tmp / "env")
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    from conftest import DATA_DIR

    if DATA_DIR.is_dir():
        env.setdefault("COURSE_DATA_DIR", str(DATA_DIR))
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={notebooks}",
        f"--LabApp.app_settings_dir={app_settings}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with serving(cmd, port, token, env, tmp / "lab.log", cwd=notebooks) as (base, _):
        yield base, token


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as b:
        yield b


def _open_and_run_all(page, base: str, token: str, name: str, timeout_s: float) -> None:
    """Open a notebook, wait for its kernel, run every cell from the Run menu, wait for idle."""
    # A workspace of its own, so that no notebook of an earlier test is restored beside it.
    workspace = re.sub(r"\W", "", name)
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{name}?token={token}")
    page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator").wait_for(timeout=60_000)
    page.wait_for_function(
        f"() => document.querySelector('{PANEL} .jp-Notebook-ExecutionIndicator')"
        "?.getAttribute('data-status') === 'idle'",
        timeout=60_000,
    )
    # Running starts asynchronously: wait for a busy prompt (or a filled last one), then
    # for every code cell to carry an execution count. On a busy machine the menu's click can
    # be lost while the page settles: then the menu is used once more.
    prompts = f"[...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputPrompt')]"
    for attempt in range(2):
        page.locator(f"{PANEL} .jp-Notebook").click()  # focus the notebook, not the file browser
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(
                f"() => {{ const p = {prompts};"
                " return p.some(e => e.textContent.includes('*'))"
                " || (p.length && /\\[\\d+\\]/.test(p[p.length - 1].textContent)); }",
                timeout=30_000,
            )
            break
        except Exception:
            if attempt == 1:
                raise
    page.wait_for_function(
        f"() => {{ const p = {prompts};"
        " return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }",
        timeout=timeout_s * 1000,
    )


def _assert_no_errors(page) -> None:
    errors = page.locator(f"{PANEL} {ERROR_OUTPUT}")
    assert errors.count() == 0, "a cell shows an error:\n" + errors.first.inner_text()[:2000]
    for text in page.locator(f"{PANEL} {STDERR_OUTPUT}").all_inner_texts():
        assert "Traceback" not in text and "Error" not in text, text[:2000]


@contextmanager
def _page(browser, artifacts: Path):
    """A fresh page; on failure a screenshot named after the notebook, then re-raise."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        yield page
    except Exception:
        page.screenshot(path=str(artifacts / "FAILED_{}.png".format(page.url.rsplit("/", 1)[-1])))
        raise
    finally:
        page.close()


def _image_src(locator) -> str:
    locator.wait_for(timeout=30_000)
    return locator.get_attribute("src") or ""


def _wait_src_change(page, locator, before: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = locator.get_attribute("src") if locator.count() else None
        if now and now != before:
            return now
        page.wait_for_timeout(250)
    raise AssertionError(f"the panel's image did not change within {timeout_s:.0f} s")


@pytest.mark.browser
@pytest.mark.slow
def test_lesson_09_playground_in_a_browser(server, browser, artifacts: Path) -> None:
    base, token = server
    with _page(browser, artifacts) as page:
        _open_and_run_all(page, base, token, LESSONS[1], timeout_s=300)
        page.screenshot(path=str(artifacts / "09_after_run_all.png"))
        playground = page.locator(
            f"{PANEL} .widget-vbox", has=page.locator("text=Loss playground")
        ).last
        playground.scroll_into_view_if_needed()
        image = playground.locator(".widget-output img").first
        first = _image_src(image)
        assert first.startswith("data:image/png"), first[:80]

        # Move the temperature slider one step right: the samples are redrawn.
        temperature = playground.locator(".widget-slider", has_text="temperature T")
        temperature.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        after_slider = _wait_src_change(page, image, first, 30)
        assert "0.75" in temperature.inner_text()
        page.screenshot(path=str(artifacts / "09_after_temperature.png"))

        # Fewest steps per run (Home), then Train: progress, a new history row, a new picture.
        steps = playground.locator(".widget-slider", has_text="steps per run")
        steps.locator(".noUi-handle").first.focus()
        page.keyboard.press("Home")
        page.wait_for_function(  # the slider's readout: 5, not 15
            "el => /(^|\\D)5$/.test(el.innerText.trim())",
            arg=steps.element_handle(),
            timeout=10_000,
        )
        rows_before = playground.locator("table tr").count()
        playground.locator("button", has_text="Train").click()
        playground.locator(".widget-html", has_text=re.compile(r"run \d+: 5 steps")).wait_for(
            timeout=90_000
        )
        after_train = _wait_src_change(page, image, after_slider, 30)
        assert after_train != first
        assert playground.locator("table tr").count() == rows_before + 1
        bar = playground.locator(".progress-bar").first  # IntProgress: 5 of 5 steps
        assert "width: 100%" in (bar.get_attribute("style") or ""), bar.get_attribute("style")
        playground.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "09_after_train.png"))
        playground.screenshot(path=str(artifacts / "09_panel.png"))
        _assert_no_errors(page)


@pytest.mark.browser
@pytest.mark.slow
def test_lesson_01_slider_in_a_browser(server, browser, artifacts: Path) -> None:
    base, token = server
    with _page(browser, artifacts) as page:
        _open_and_run_all(page, base, token, LESSONS[0], timeout_s=90)
        # The first lesson, not JupyterLab's news prompt, is what a learner sees first.
        # The served schema carries the course's default ("false", never), as no user setting
        # is written; without it JupyterLab shows the prompt within seconds of opening.
        code, body = get(f"{base}/lab/api/settings/{NOTIFICATION}", token)
        assert code == 200, body[:300]
        assert json.loads(body)["schema"]["properties"]["fetchNews"]["default"] == "false"
        assert page.get_by_text(NEWS_PROMPT).count() == 0, "JupyterLab asks about its news"
        panel = page.locator(f"{PANEL} .widget-vbox", has=page.locator("text=Warp a Gaussian")).last
        panel.scroll_into_view_if_needed()
        image = panel.locator(".widget-output img").first
        first = _image_src(image)
        skew = panel.locator(".widget-slider", has_text="skew")
        skew.locator(".noUi-handle").first.focus()
        page.keyboard.press("End")
        _wait_src_change(page, image, first, 30)
        assert "2.00" in skew.inner_text()
        panel.screenshot(path=str(artifacts / "01_panel_after_slider.png"))
        page.screenshot(path=str(artifacts / "01_after_slider.png"))
        _assert_no_errors(page)


@pytest.mark.browser
@pytest.mark.slow
def test_lesson_02_panel_in_a_browser(server, browser, artifacts: Path) -> None:
    base, token = server
    with _page(browser, artifacts) as page:
        _open_and_run_all(page, base, token, LESSONS[2], timeout_s=240)
        panel = page.locator(
            f"{PANEL} .widget-vbox", has=page.locator("text=Train a coupling flow")
        ).last
        panel.scroll_into_view_if_needed()
        image = panel.locator(".widget-output img").first
        first = _image_src(image)
        assert first.startswith("data:image/png"), first[:80]

        # The layer slider to 0 (Home): the base alone is drawn, nothing is trained.
        layers = panel.locator(".widget-slider", has_text="show the first k layers")
        layers.locator(".noUi-handle").first.focus()
        page.keyboard.press("Home")
        after_slider = _wait_src_change(page, image, first, 30)
        assert layers.locator(".widget-readout").inner_text().strip() == "0"
        status = panel.locator(".widget-html", has_text="press Train")
        assert status.count() == 1  # still the lesson's model
        panel.screenshot(path=str(artifacts / "02_panel_after_layer_slider.png"))

        # One coupling (Home on the couplings slider), then Train: a new flow of 1 layer.
        couplings = panel.locator(".widget-slider", has_text="couplings")
        couplings.locator(".noUi-handle").first.focus()
        page.keyboard.press("Home")
        page.wait_for_function(
            "el => el.querySelector('.widget-readout').innerText.trim() === '1'",
            arg=couplings.element_handle(),
            timeout=10_000,
        )
        panel.locator("button", has_text="Train").click()
        panel.locator(".widget-html", has_text=re.compile(r"held-out NLL \d")).wait_for(
            timeout=120_000
        )
        _wait_src_change(page, image, after_slider, 30)
        # The layer slider now spans the new flow's single layer, and shows all of it.
        assert layers.locator(".widget-readout").inner_text().strip() == "1"
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(artifacts / "02_panel_after_train.png"))
        page.screenshot(path=str(artifacts / "02_after_train.png"))
        _assert_no_errors(page)


@pytest.mark.browser
@pytest.mark.slow
def test_lesson_10_panels_in_a_browser(server, browser, artifacts: Path) -> None:
    base, token = server
    with _page(browser, artifacts) as page:
        _open_and_run_all(page, base, token, LESSONS[3], timeout_s=300)
        panel = page.locator(f"{PANEL} .widget-vbox", has=page.locator("text=Threshold")).last
        panel.scroll_into_view_if_needed()
        image = panel.locator(".widget-output img").first
        first = _image_src(image)
        assert first.startswith("data:image/png"), first[:80]

        # The highest threshold (End): fewer images flagged, the histograms redrawn.
        threshold = panel.locator(".widget-slider", has_text="threshold")
        before = threshold.locator(".widget-readout").inner_text().strip()
        threshold.locator(".noUi-handle").first.focus()
        page.keyboard.press("End")
        after_threshold = _wait_src_change(page, image, first, 30)
        assert threshold.locator(".widget-readout").inner_text().strip() != before
        panel.screenshot(path=str(artifacts / "10_threshold_after_slider.png"))

        # Another score from the menu: a new figure, the slider moved to that score's range.
        panel.locator("select").select_option(label="S = bpd - zlib (Serrà)")
        _wait_src_change(page, image, after_threshold, 30)
        panel.screenshot(path=str(artifacts / "10_threshold_other_score.png"))

        groups = page.locator(
            f"{PANEL} .widget-vbox", has=page.locator("text=Typicality with groups")
        ).last
        groups.scroll_into_view_if_needed()
        group_image = groups.locator(".widget-output img").first
        group_first = _image_src(group_image)
        size = groups.locator(".widget-slider", has_text="images per decision")
        size.locator(".noUi-handle").first.focus()
        page.keyboard.press("End")
        _wait_src_change(page, group_image, group_first, 30)
        assert size.locator(".widget-readout").inner_text().strip() != "1"
        groups.screenshot(path=str(artifacts / "10_typicality_after_slider.png"))
        _assert_no_errors(page)
