"""`make lab` really starts JupyterLab on lesson 01 (the learner's first command)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import jupyterlab
import pytest
from jupyterlab_server.settings_utils import _get_overrides
from labserver import free_port, get, install_lab_settings, make_env, serving

ROOT = Path(__file__).resolve().parent.parent
LESSON = "01_change_of_variables.ipynb"
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def test_make_lab_installs_the_setting_that_silences_the_news_prompt(tmp_path: Path) -> None:
    settings = install_lab_settings(tmp_path / "venv")
    # read back by JupyterLab's own reader of an environment's defaults
    overrides, error = _get_overrides(str(settings))
    assert not error, error
    assert overrides[NOTIFICATION]["fetchNews"] == "false"
    # "false" is "Never" in the setting's schema ("none", the default, asks the learner)
    schema = Path(jupyterlab.__file__).parent / "schemas" / NOTIFICATION.replace(":", "/")
    fetch_news = json.loads(schema.with_suffix(".json").read_text())["properties"]["fetchNews"]
    titles = {choice["const"]: choice["title"] for choice in fetch_news["oneOf"]}
    assert titles["false"] == "Never" and fetch_news["default"] == "none"
    # and `make lab` runs that step (a dry run lists the commands it would run)
    venv = tmp_path / "other-venv"
    planned = subprocess.run(
        [shutil.which("make") or "make", "-n", "-C", str(ROOT), "lab", f"VENV={venv}"],
        check=True,
        capture_output=True,
        text=True,
        env=make_env(),
    ).stdout
    assert f"{venv}/share/jupyter/lab/settings/overrides.d/" in planned, planned


@pytest.mark.slow
def test_make_lab_serves_lesson_01(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    assert (ROOT / "notebooks" / LESSON).is_file(), f"notebooks/{LESSON} is missing"
    port, token = free_port(), secrets.token_hex(16)
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
    cmd = [make, "-C", str(ROOT), "lab", f"LAB_ARGS={lab_args}"]
    with serving(cmd, port, token, env, tmp_path / "lab.log") as (base, proc):
        code, body = get(f"{base}/api/contents/{LESSON}", token)
        assert code == 200, body[:500]
        model = json.loads(body)
        assert model["type"] == "notebook" and model["name"] == LESSON
        assert model["content"]["nbformat"] == 4
        assert isinstance(model["content"]["cells"], list) and model["content"]["cells"]
        # The token is enforced: the same request without it is refused.
        assert get(f"{base}/api/contents/{LESSON}", None)[0] == 403
    assert proc.poll() is not None
