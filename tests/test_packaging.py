"""Packaging stays consistent: environment.yml installs what pyproject.toml asks for."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pytest itself depends on tomli there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOT_PACKAGES = {"python", "pip"}
CONDA_TO_PYPI = {"pytorch": "torch"}  # should torch ever move to the conda section


def parse_environment(text: str) -> dict[str, list[str]]:
    """A tiny parser for the shape of environment.yml this project uses.

    Returns ``{"name": [...], "channels": [...], "conda": [...], "pip": [...]}``:
    top-level scalars and lists, with ``dependencies`` split into its conda items
    and the items of its ``- pip:`` sub-list.
    """
    out: dict[str, list[str]] = {"conda": [], "pip": []}
    section, pip_indent = "", None
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if indent == 0:
            key, _, value = item.partition(":")
            section, pip_indent = key.strip(), None
            out.setdefault(section, [])
            if value.strip():
                out[section].append(value.strip())
            continue
        if not item.startswith("- "):
            raise ValueError(f"environment.yml: unexpected line {raw!r}")
        value = item[2:].strip()
        if section != "dependencies":
            out[section].append(value)
        elif value == "pip:":
            pip_indent = indent
        elif pip_indent is not None and indent > pip_indent:
            out["pip"].append(value)
        else:
            pip_indent = None
            out["conda"].append(value)
    return out


def lower_bounds(specs: list[str]) -> dict[str, str | None]:
    """``name -> lower bound`` (the ``>=`` version, or None) of requirement strings."""
    bounds: dict[str, str | None] = {}
    for spec in specs:
        req = Requirement(spec)
        name = canonicalize_name(CONDA_TO_PYPI.get(req.name.lower(), req.name))
        lower = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
        assert len(lower) <= 1, f"{spec}: more than one lower bound"
        assert name not in bounds or bounds[name] == (lower[0] if lower else None), (
            f"{name} is listed twice with different bounds"
        )
        bounds[name] = lower[0] if lower else None
    return bounds


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def environment() -> dict[str, list[str]]:
    return parse_environment((ROOT / "environment.yml").read_text())


def test_tiny_parser_agrees_with_yaml(environment: dict[str, list[str]]) -> None:
    yaml = pytest.importorskip("yaml")
    loaded = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in loaded["dependencies"] if isinstance(d, str)]
    pips = [d["pip"] for d in loaded["dependencies"] if isinstance(d, dict)]
    assert environment["conda"] == conda
    assert environment["pip"] == (pips[0] if pips else [])
    assert environment["name"] == [loaded["name"]]


def test_environment_matches_pyproject(pyproject: dict, environment: dict[str, list[str]]) -> None:
    project = pyproject["project"]
    wanted = list(project["dependencies"])
    for extra in ("lab", "test"):
        wanted += project["optional-dependencies"][extra]
    from_pyproject = lower_bounds(wanted)

    env_specs = [s for s in environment["conda"] if s.split("=")[0].strip() not in NOT_PACKAGES]
    env_specs += [s for s in environment["pip"] if not s.startswith("-e")]
    from_environment = lower_bounds(env_specs)

    missing = sorted(set(from_pyproject) - set(from_environment))
    extra = sorted(set(from_environment) - set(from_pyproject))
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"
    assert not extra, f"in environment.yml but not in pyproject.toml: {extra}"
    differ = {
        name: (bound, from_environment[name])
        for name, bound in from_pyproject.items()
        if bound != from_environment[name]
    }
    assert not differ, f"lower bounds differ (pyproject, environment.yml): {differ}"


def test_environment_installs_the_course(environment: dict[str, list[str]]) -> None:
    assert "-e ." in environment["pip"]
    assert "pip" in environment["conda"]


def test_environment_python_satisfies_requires_python(
    pyproject: dict, environment: dict[str, list[str]]
) -> None:
    pythons = [s for s in environment["conda"] if re.match(r"python\s*[=<>]", s)]
    assert len(pythons) == 1, f"environment.yml should pin one python, found {pythons}"
    version = re.sub(r"^python\s*=*\s*", "", pythons[0]).rstrip(".*")
    requires = Requirement("python" + pyproject["project"]["requires-python"]).specifier
    assert requires.contains(Version(version)), (pythons[0], str(requires))
