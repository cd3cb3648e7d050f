"""`make lab` really starts JupyterLab on lesson 01 (the learner's first command)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSON = "01_change_of_variables.ipynb"
STARTUP_TIMEOUT = 90.0

# Straight to 127.0.0.1, whatever proxy the environment names.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with _opener.open(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (make and jupyter), then SIGKILL if needed."""
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


@pytest.mark.slow
def test_make_lab_serves_lesson_01(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    assert (ROOT / "notebooks" / LESSON).is_file(), f"notebooks/{LESSON} is missing"
    port, token = _free_port(), secrets.token_hex(16)
    lab_args = (
        f"--no-browser --port={port} --ServerApp.port_retries=0 "
        f"--ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    )
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        lab_args += " --allow-root"
    env = dict(os.environ)
    # Keep the server's runtime files and the user's Jupyter settings out of the way.
    for var, sub in (
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
    ):
        env[var] = str(tmp_path / sub)
    log_path = tmp_path / "lab.log"
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [make, "-C", str(ROOT), "lab", f"LAB_ARGS={lab_args}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group, stopped as a whole below
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            status = None
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(
                        f"`make lab` exited with {proc.returncode}:\n"
                        + log_path.read_text(errors="replace")[-3000:]
                    )
                try:
                    status, _ = _get(f"{base}/api/status", token)
                except OSError:  # not listening yet
                    status = None
                if status == 200:
                    break
                time.sleep(0.5)
            assert status == 200, (
                f"JupyterLab did not answer within {STARTUP_TIMEOUT:.0f} s:\n"
                + log_path.read_text(errors="replace")[-3000:]
            )
            code, body = _get(f"{base}/api/contents/{LESSON}", token)
            assert code == 200, body[:500]
            model = json.loads(body)
            assert model["type"] == "notebook" and model["name"] == LESSON
            assert model["content"]["nbformat"] == 4
            assert isinstance(model["content"]["cells"], list) and model["content"]["cells"]
            # The token is enforced: the same request without it is refused.
            assert _get(f"{base}/api/contents/{LESSON}", None)[0] == 403
        finally:
            _stop(proc)
    assert proc.poll() is not None
