"""Start a JupyterLab server for a test, wait until it answers, and stop it with its children."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 90.0
ROOT = Path(__file__).resolve().parent.parent

# Straight to 127.0.0.1, whatever proxy the environment names.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def unavailable(reason: str) -> None:
    """Skip for want of a browser part, or fail where ``COURSE_REQUIRE_BROWSER=1`` (CI)."""
    if os.environ.get("COURSE_REQUIRE_BROWSER", "").strip() == "1":
        pytest.fail(f"COURSE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def chromium() -> str:
    """The path of Debian's Chromium (or ``COURSE_CHROMIUM``); skips or fails without one."""
    explicit = os.environ.get("COURSE_CHROMIUM", "").strip()
    for path in ([explicit] if explicit else []) + list(CHROMIUM_CANDIDATES):
        if path and Path(path).is_file():
            return path
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    unavailable("no Chromium found (apt-get install chromium, or set COURSE_CHROMIUM)")
    raise AssertionError("unreachable")


@contextmanager
def headless_chromium() -> Iterator:
    """A Playwright browser on Debian's Chromium (no browser download), closed on exit."""
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright (Python) is not installed: pip install playwright")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--no-proxy-server"],
        )
        try:
            yield b
        finally:
            b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str | None) -> tuple[int, bytes]:
    """GET ``url`` with the server's token (or none): ``(status, body)``."""
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with _opener.open(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (e.g. make and jupyter), then SIGKILL if needed."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    # make may be gone while its child still runs: sweep the group once more.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def serving(
    cmd: list[str],
    port: int,
    token: str,
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``cmd`` (a JupyterLab on ``port``) until ``/api/status`` answers 200.

    Yields ``(base_url, process)``; the process group is stopped on exit. Fails
    the test with the end of the server's log if it exits or does not answer
    within :data:`STARTUP_TIMEOUT` seconds.
    """
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group, stopped as a whole
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if proc.poll() is not None:
                    pytest.fail(
                        f"{cmd[0]} exited with {proc.returncode}:\n"
                        + log_path.read_text(errors="replace")[-3000:]
                    )
                try:
                    if get(f"{base}/api/status", token)[0] == 200:
                        break
                except OSError:  # not listening yet
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer within {STARTUP_TIMEOUT:.0f} s:\n"
                        + log_path.read_text(errors="replace")[-3000:]
                    )
                time.sleep(0.5)
            yield base, proc
        finally:
            stop(proc)


def install_lab_settings(venv: Path) -> Path:
    """``make lab-settings VENV=venv``, the step of ``make lab`` that installs the course's
    JupyterLab defaults; returns the settings folder it fills (JupyterLab's ``app_settings_dir``
    for that environment). Skips the test without ``make``."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    subprocess.run(
        [make, "-s", "-C", str(ROOT), "lab-settings", f"VENV={venv}"],
        check=True,
        capture_output=True,
        env=make_env(),
    )
    return venv / "share" / "jupyter" / "lab" / "settings"


def make_env() -> dict[str, str]:
    """This process's environment without the flags of a ``make`` that runs the tests (``make
    test``), so that a ``make`` started here runs on its own (not dry, no closed jobserver)."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
