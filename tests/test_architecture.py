"""The package's shape: no import cycles, imports at the top, a public surface the lessons keep to.

Read from the source with ``ast`` (every import, those inside functions too), so
a cycle that only closes when some function runs is found before it bites.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "course_utils"

#: Third-party modules a function may import: optional, or heavy to import and
#: needed by few functions. Everything else is imported at the top of its module.
LAZY_ALLOWED = ("IPython", "sklearn")


def module_name(path: Path) -> str:
    """``course_utils/glow/model.py`` -> ``course_utils.glow.model`` (a package is its folder)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(p): p
    for p in sorted((ROOT / PACKAGE).rglob("*.py"))
    if "__pycache__" not in p.parts
}


@dataclass(frozen=True)
class Import:
    """One import statement's target inside ``course_utils``, or a third-party module."""

    source: str  # the importing module
    target: str  # the imported module (a submodule when ``from pkg import submodule``)
    line: int
    function: str | None  # the enclosing function, None at module level


def _absolute(source: str, node: ast.ImportFrom) -> str:
    """The absolute module of ``from <node.module> import ...`` written in module ``source``."""
    if not node.level:
        return node.module or ""
    package = source if MODULES[source].name == "__init__.py" else source.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(source: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    module = _absolute(source, node)
    for alias in node.names:
        sub = f"{module}.{alias.name}"
        yield sub if sub in MODULES else module  # ``from pkg import submodule`` reaches the file


def imports(source: str, text: str | None = None) -> Iterator[Import]:
    """Every import of module ``source`` (its file, or ``text``), with the function it sits in."""
    tree = ast.parse(MODULES[source].read_text(encoding="utf-8") if text is None else text)

    def walk(node: ast.AST, function: str | None) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # for type checkers only: never imported when the code runs
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _targets(source, child):
                    yield Import(source, target, child.lineno, function)
            inner = (
                child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            )
            yield from walk(child, function or inner)

    yield from walk(tree, None)


ALL_IMPORTS = list(dict.fromkeys(imp for name in MODULES for imp in imports(name)))
INTERNAL = [imp for imp in ALL_IMPORTS if imp.target.split(".")[0] == PACKAGE]


def tangles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted.

    Every import cycle lies inside one of them; with no cycle there are none.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def shortest_cycle(edges: dict[str, set[str]], start: str) -> list[str] | None:
    """A shortest cycle from ``start`` back to itself (breadth-first), or None."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return None


def test_the_import_graph_has_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], list[Import]] = {}
    for imp in INTERNAL:
        if imp.target != imp.source:
            edges.setdefault(imp.source, set()).add(imp.target)
            where.setdefault((imp.source, imp.target), []).append(imp)

    def show(imp: Import) -> str:
        place = f"in {imp.function}()" if imp.function else "at the top"
        return f"    {imp.source} -> {imp.target}  (line {imp.line}, {place})"

    reports = []
    for tangle in tangles(edges):
        inside = {v: edges.get(v, set()) & set(tangle) for v in tangle}
        cycle = shortest_cycle(inside, tangle[0])
        steps = [show(where[(a, b)][0]) for a, b in zip(cycle, cycle[1:], strict=False)]
        every = [show(imp) for v in tangle for w in sorted(inside[v]) for imp in where[(v, w)]]
        reports.append(
            f"  {len(tangle)} modules import each other: {', '.join(tangle)}\n"
            "  for example:\n" + "\n".join(steps) + "\n"
            "  every import among them (break enough of these):\n" + "\n".join(every)
        )
    if reports:
        pytest.fail("import cycles:\n" + "\n\n".join(reports), pytrace=False)


def test_the_cycle_finder_finds_every_tangle_and_only_those() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"a"}}
    assert tangles(edges) == [["a", "b", "c"], ["d", "e"]]
    assert shortest_cycle(edges, "a") == ["a", "b", "c", "a"]
    assert tangles({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) == []
    assert shortest_cycle({"a": {"b"}, "b": {"c"}}, "a") is None
    assert tangles({"a": {"a"}}) == [["a"]]


def test_the_import_reader_resolves_relative_and_submodule_imports() -> None:
    tree = ast.parse("from . import flow\nfrom .masks import make_masks\nfrom .. import pretrained")
    source = "course_utils.inpaint.comparison"
    got = [t for node in tree.body for t in _targets(source, node)]
    assert got == [
        "course_utils.inpaint.flow",
        "course_utils.inpaint.masks",
        "course_utils.pretrained",
    ]
    assert module_name(ROOT / "course_utils" / "inpaint" / "__init__.py") == "course_utils.inpaint"


def test_the_import_reader_knows_which_function_an_import_sits_in() -> None:
    text = """
from typing import TYPE_CHECKING
import numpy as np
if TYPE_CHECKING:
    from course_utils.glow.model import Glow
def load():
    from course_utils.core import checkpoints
    def inner():
        import sklearn.datasets
class Panel:
    def draw(self):
        from course_utils.core.plots import image_grid
"""
    found = [(i.target, i.function) for i in imports("course_utils.pretrained", text)]
    assert found == [
        ("typing", None),
        ("numpy", None),
        ("course_utils.core.checkpoints", "load"),
        ("sklearn.datasets", "load"),
        ("course_utils.core.plots", "draw"),
    ]


def test_no_function_imports_a_course_module() -> None:
    inside = [imp for imp in INTERNAL if imp.function]
    if inside:
        pytest.fail("import at the top of the module instead:\n" + _listing(inside), pytrace=False)


def test_functions_import_only_optional_heavy_third_party_modules() -> None:
    lazy = [imp for imp in ALL_IMPORTS if imp.function and imp.target.split(".")[0] != PACKAGE]
    wrong = [i for i in lazy if not any(_within(i.target, a) for a in LAZY_ALLOWED)]
    if wrong:
        pytest.fail(
            f"import at the top (only {LAZY_ALLOWED} may wait):\n" + _listing(wrong), pytrace=False
        )


def _listing(found: list[Import]) -> str:
    return "\n".join(
        f"  {i.source}.{i.function}() (line {i.line}) imports {i.target}" for i in found
    )


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# ------------------------------------------------------------ public surface


def lesson_cells(path: Path) -> list[ast.Module]:
    """A lesson's code cells, parsed, without IPython's ``%`` and ``!`` lines."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return [
        ast.parse(
            "\n".join(
                line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
            )
        )
        for source in sources
    ]


def is_module(name: str) -> bool:
    """Whether ``name`` is a module (``find_spec`` raises below a module that is no package)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@dataclass(frozen=True)
class Use:
    """A name a lesson takes from a ``course_utils`` module, in its ``cell``-th code cell."""

    lesson: str
    module: str
    name: str
    cell: int


def lesson_uses(path: Path) -> Iterator[Use]:
    """``from M import a``, and ``m.a`` after ``from P import module as m`` or ``import M as m``."""
    cells = lesson_cells(path)
    aliases: dict[str, str] = {}
    for number, tree in enumerate(cells, 1):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if is_module(sub):
                        aliases[alias.asname or alias.name] = sub
                    else:
                        yield Use(path.name, node.module, alias.name, number)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == PACKAGE and alias.asname:
                        aliases[alias.asname] = alias.name
    for number, tree in enumerate(cells, 1):
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and not is_module(f"{aliases[node.value.id]}.{node.attr}")
            ):
                yield Use(path.name, aliases[node.value.id], node.attr, number)


LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
USES = [use for lesson in LESSONS for use in lesson_uses(lesson)]


def test_the_lessons_use_the_package() -> None:
    assert LESSONS and len({u.lesson for u in USES}) == len(LESSONS), (
        "a lesson takes nothing from course_utils, or the reader missed its imports"
    )


@pytest.mark.parametrize("module", sorted({u.module for u in USES}))
def test_a_module_the_lessons_import_from_declares_its_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    public = getattr(mod, "__all__", None)
    assert public is not None, f"{module} has no __all__, and lessons import from it"
    missing = [name for name in public if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"
    outside = sorted(
        f"  {u.lesson}, code cell {u.cell}: {u.name}"
        for u in USES
        if u.module == module and u.name not in public
    )
    assert not outside, f"lessons use names outside {module}.__all__:\n" + "\n".join(outside)


def test_the_lesson_reader_sees_each_kind_of_use(tmp_path: Path) -> None:
    cells = [
        "%matplotlib inline\nfrom course_utils.core.plots import image_grid\n",
        "from course_utils import inpaint as ip\nimport course_utils.glow.model as gm\n",
        "!ls\nip.make_masks('top', 1)\ngm.Glow\nfrom course_utils.core import plots\nplots.PALETTE",
    ]
    nb = {"cells": [{"cell_type": "code", "source": c} for c in cells]}
    path = tmp_path / "lesson.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    got = {(u.module, u.name) for u in lesson_uses(path)}
    assert got == {
        ("course_utils.core.plots", "image_grid"),
        ("course_utils.inpaint", "make_masks"),
        ("course_utils.glow.model", "Glow"),
        ("course_utils.core.plots", "PALETTE"),
    }
