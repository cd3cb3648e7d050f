"""Models shipped with the course, verified before use.

Each model is two files in the top-level ``pretrained/`` folder: the weights
``<name>.pt`` and a manifest ``<name>.json`` that says how they were made (the
command that reproduces them, the data, the measured figures) and holds the
weights' sha256. :func:`load` checks the digest before reading a byte with
``torch.load(weights_only=True)``, so a damaged, truncated or swapped file is
refused with a message that says what to do, and no file can run code.

``python -m course_utils.pretrained --list`` prints the table of shipped models.
This module only loads and verifies; :mod:`course_utils.release` trains,
measures and writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.core.config import REPO_ROOT
from course_utils.core.data import file_digest
from course_utils.glow.digits import DigitClassifier
from course_utils.glow.model import glow_from_state

__all__ = [
    "BUILDERS",
    "PRETRAINED_DIR",
    "PretrainedError",
    "REQUIRED",
    "load",
    "load_state",
    "manifest",
    "sha256sum",
    "table",
]

#: Where the shipped models live.
PRETRAINED_DIR = REPO_ROOT / "pretrained"


class PretrainedError(RuntimeError):
    """A shipped model is missing, damaged or does not match its manifest."""


def sha256sum(path: str | os.PathLike) -> str:
    """The hex sha256 digest of a file."""
    return file_digest(path, "sha256")


def manifest(name: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of a shipped model (a dict read from ``<name>.json``).

    Raises:
        PretrainedError: there is no such model, or its manifest is unreadable
            or lacks a field of :data:`REQUIRED` (the message names it).
    """
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    path = folder / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise PretrainedError(
            f"no pretrained model {name!r}: {path} does not exist; shipped models: "
            f"{', '.join(known) or 'none'} (in {folder})"
        )
    fix = "restore it with `git checkout -- pretrained/` (the manifests are part of the course)"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedError(f"the manifest {path} is unreadable: {err}; {fix}") from err
    problems = _manifest_problems(info)
    if problems:
        raise PretrainedError(f"the manifest {path} is damaged: {'; '.join(problems)}; {fix}")
    return info


#: What every manifest must hold for :func:`load` to find and verify the weights.
REQUIRED = {
    "kind": "the kind of model (a key of BUILDERS)",
    "file": "the weights' file name, beside the manifest",
    "sha256": "the weights' sha256, 64 hex digits",
}


def _manifest_problems(info: Any) -> list[str]:
    """What is wrong with a manifest's required fields (empty when nothing is)."""
    if not isinstance(info, dict):
        return [f"it holds a {type(info).__name__}, not a JSON object"]
    out = []
    for key, what in REQUIRED.items():
        value = info.get(key)
        if not isinstance(value, str) or not value:
            got = "missing" if key not in info else f"{value!r}"
            out.append(f"{key!r} is {got}, expected {what}")
    name, digest = info.get("file"), info.get("sha256")
    if isinstance(name, str) and name and (Path(name).name != name or name in (".", "..")):
        out.append(f"'file' is {name!r}, expected a file name beside the manifest (no folder)")
    if isinstance(digest, str) and digest and not re.fullmatch(r"[0-9a-f]{64}", digest):
        out.append(f"'sha256' is {digest[:20]!r}, expected 64 lowercase hex digits")
    return out


def load_state(name: str, folder: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """The verified weights file of ``name``: ``(state, manifest)``.

    Raises:
        PretrainedError: the weights are missing, their sha256 differs from
            the manifest's, or they cannot be read.
    """
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    info = manifest(name, folder)
    path = folder / info["file"]
    fix = (
        "restore it with `git checkout -- pretrained/` (the files are part of the course), "
        f"or re-create it with: {info.get('command', 'its training command')}"
    )
    if not path.is_file():
        raise PretrainedError(f"the weights of {name!r} are missing: no file {path}; {fix}")
    digest = sha256sum(path)
    if digest != info["sha256"]:
        raise PretrainedError(
            f"{path} is damaged or is not the file its manifest describes: sha256 {digest[:16]}… "
            f"instead of {info['sha256'][:16]}…; {fix}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types here
        raise PretrainedError(f"{path} passed its checksum but cannot be read: {err}") from err
    return state, info


#: How each kind of shipped model is built before its weights are read: from the
#: manifest's ``kind`` and the ``extra`` metadata stored with the weights.
BUILDERS: dict[str, Callable[[dict], nn.Module]] = {
    "digit-classifier": lambda extra: DigitClassifier(),
    "glow": glow_from_state,
}


def load(name: str, folder: str | os.PathLike | None = None) -> nn.Module:
    """A shipped model, ready to use (eval mode, CPU).

    Args:
        name: ``"digit-classifier"`` or a Glow listed by ``--list``.
        folder: where to look (default: the course's ``pretrained/``).

    Raises:
        PretrainedError: missing, damaged or mismatched files (see :func:`load_state`).
    """
    state, info = load_state(name, folder)
    kind = info.get("kind")
    if kind not in BUILDERS:
        raise PretrainedError(
            f"the manifest of {name!r} names an unknown kind {kind!r}; known: {sorted(BUILDERS)}"
        )
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise PretrainedError(
            f"the weights file of {name!r} holds no model state (expected a dict with 'model'); "
            "restore it with `git checkout -- pretrained/`"
        )
    extra = state.get("extra", {})
    try:
        model = BUILDERS[kind](extra if isinstance(extra, dict) else {})
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise PretrainedError(
            f"the weights of {name!r} do not fit the model the course builds for it "
            f"({str(err).splitlines()[0]}); the file is from another version of the course"
        ) from err
    return model.eval()


def table(folder: str | os.PathLike | None = None) -> str:
    """A text table of every shipped model and its headline figures."""
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    rows = [f"{'name':22s} {'kind':17s} {'MB':>6s}  figures"]
    for path in sorted(folder.glob("*.json")):
        try:  # one damaged manifest is a row that says so, not the end of the table
            info = manifest(path.stem, folder)
        except PretrainedError as err:
            rows.append(f"{path.stem:22s} {'?':17s} {'':>6s}  {err}")
            continue
        figures = {
            k: info[k]
            for k in (
                "test_accuracy",
                "test_bits_per_dim",
                "recognisable_share",
                "drawn_as_asked_share",
                "bayes_test_accuracy",
            )
            if k in info
        }
        text = ", ".join(f"{k} {v}" for k, v in figures.items())
        size = info.get("bytes")
        real = isinstance(size, (int, float)) and not isinstance(size, bool)
        megabytes = f"{size / 1e6:.2f}" if real else "?"
        rows.append(f"{path.stem:22s} {info['kind']:17s} {megabytes:>6s}  {text}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.pretrained --list``: the table of shipped models."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.pretrained",
        description="The shipped models; `python -m course_utils.release` makes them.",
    )
    parser.add_argument("--list", action="store_true", help="print the shipped models")
    args = parser.parse_args(argv)
    if args.list:
        print(table())
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
