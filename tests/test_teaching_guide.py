"""The teacher guide points at what the lessons have: sections, exercises and named items.

``docs/teaching.md`` plans each lesson's sessions by its sections ("10 min: section 5,
the 2D determinant as a change of area"), its exercises and its "Your turn" / "Going
further" items. When a lesson gains a section, renumbers its sections or drops an item, a
plan can point at the wrong place. This test reads the guide and the lessons (their
headings, exercise cells and items, at test time) and fails on

- a section or exercise the lesson does not have;
- a section reference whose words fit another section of the lesson far better than the
  one it names (a plan left behind by a renumbering);
- a "Try it", "Your turn" or "Going further" the lesson does not have, an item number
  beyond its list, or an item described in parentheses that the lesson's items never
  mention.

Text added to the guide is read the same way; a new reference only has to be right.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "teaching.md"

#: The kinds of learner activity a lesson names in its text, and the guide cites.
ITEM_KINDS = ("Try it", "Your turn", "Going further")

#: Words that say nothing about which section is meant.
STOP = set(
    """
    about above after again also and another any are back been before being below between both
    but can cell cells code does done each every exercise exercises first from give gives group
    groups have here into just learner learners lesson lessons like little long longer makes many
    more most much must need next once only other over pair pairs part plus predict same section
    sections short show shows some start than that their them then there these they this those
    through what when where which while whole will with without minutes asks, wrap-up discuss
    discussion items item while read reads expected answer answers
    """.split()
)

HEADING = re.compile(r"^(#{2,3})\s+(?:§\s*)?(\d+(?:\.\d+)?)[.:]?\s+(.*)$")
ANY_HEADING = re.compile(r"^#{1,2}\s")
NUMBER = r"(?:§\s*)?\d+(?:\.\d+)?"
SECTION_REF = re.compile(
    rf"(?:\b[Ss]ections?\s+|§§?\s*)(?P<numbers>\d+(?:\.\d+)?(?:\s*(?:-|–|to|,|and|&)\s*{NUMBER})*)"
)
OTHER_LESSON = re.compile(r"lesson\s+(\d\d)(?:'s|,)?\s*(?:\(?\s*)$", re.IGNORECASE)
EXERCISE_REF = re.compile(r"\bexercises?\s+(\d\d)\.(\d+)", re.IGNORECASE)
ITEM_REF = re.compile(
    r"[\"“]?(?P<kind>Try it|Your turn|Going further)[\"”]?"
    r"(?:\s+(?:items?\s+)?(?P<first>\d+)(?:\s*(?:-|–)\s*(?P<last>\d+))?)?"
    r"(?:\s+items?)?(?:\s+in groups)?"
    r"(?:\s*\((?P<described>[^()]*)\))?",
    re.IGNORECASE,
)
#: How well (summed word weights) another section must fit a description before a
#: reference is called stale: about one word found in a single section of a lesson.
MIN_EVIDENCE = 1.2
LATER_ITEMS = re.compile(r"\bitems?\s+(\d+)(?:\s*(?:-|–)\s*(\d+))?")


@dataclass
class Lesson:
    """What the guide may cite in one lesson, read from its notebook."""

    number: str
    sections: dict[str, str] = field(default_factory=dict)  # "6" or "4.1" -> its text
    exercises: set[str] = field(default_factory=set)  # "08.2"
    items: dict[str, str] = field(default_factory=dict)  # "Your turn" -> the text of them all
    item_counts: dict[str, int] = field(default_factory=dict)  # numbered items per kind


def read_lesson(number: str, cells: list[dict]) -> Lesson:
    """The numbered sections (``## 6. ...`` or ``## §6 ...``, and ``### 4.1 ...``) with all the
    text under them, the exercises, and the text and numbered items of each item kind."""
    lesson = Lesson(number)
    main = sub = None
    for cell in cells:
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "code":
            found = re.match(r"#\s*EXERCISE\s+(\d\d\.\d+)", source.lstrip())
            if found:
                lesson.exercises.add(found.group(1))
        markdown = cell.get("cell_type") == "markdown"
        for line in source.splitlines():
            heading = HEADING.match(line) if markdown else None
            if heading and len(heading.group(1)) == 2:
                main, sub = heading.group(2), None
            elif heading:
                sub = heading.group(2)
            elif markdown and ANY_HEADING.match(line):
                main = sub = None  # "## Summary": text under no numbered section
            for key in (main, sub):
                if key is not None:
                    lesson.sections[key] = lesson.sections.get(key, "") + line + "\n"
        if markdown:
            for kind in ITEM_KINDS:
                at = source.find(kind)  # as a heading or a bold label writes it
                if at >= 0:
                    text = source[at:]
                    lesson.items[kind] = lesson.items.get(kind, "") + text + "\n"
                    numbered = len(re.findall(r"^\s*\d+\.\s", text, re.MULTILINE))
                    lesson.item_counts[kind] = lesson.item_counts.get(kind, 0) + numbered
    return lesson


def load_lessons() -> dict[str, Lesson]:
    lessons = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        number = path.name[:2]
        lessons[number] = read_lesson(number, json.loads(path.read_text())["cells"])
    return lessons


def guide_parts(text: str) -> dict[str, str]:
    """Each lesson's part of the guide: from ``## Lesson NN`` to the next ``## `` heading."""
    parts = {}
    for block in re.split(r"^(?=## )", text, flags=re.MULTILINE):
        found = re.match(r"## Lesson (\d\d)\b", block)
        if found:
            parts[found.group(1)] = block
    return parts


# ----------------------------------------------------------------- references


def numbers_of(spec: str) -> list[str]:
    """``"1-2"`` -> 1, 2; ``"6 and 7"`` -> 6, 7; ``"4.1"`` stays one subsection."""
    spec = spec.replace("§", "")
    out: list[str] = []
    for part in re.split(r"\s*(?:,|and|&)\s*", spec):
        bounds = re.split(r"\s*(?:-|–|to)\s*", part.strip())
        if len(bounds) == 2 and all(re.fullmatch(r"\d+", b) for b in bounds):
            out += [str(n) for n in range(int(bounds[0]), int(bounds[1]) + 1)]
        else:
            out += [b for b in bounds if b]
    return out


def words(text: str) -> set[str]:
    """Content words, stemmed crudely (no plural s, six letters: "determinants" meets
    "determinant")."""
    found = re.findall(r"[a-z][a-z0-9]{3,}", text.lower().replace("-", " "))
    return {w.rstrip("s")[:6] for w in found if w not in STOP}


def description(text: str, start: int, end: int) -> str:
    """The words of the guide that say what the reference at ``text[start:end]`` is about.

    Only where the guide says it outright: ``section 3, samples against the formula;`` ->
    after the comma (or a colon), also inside parentheses (``(section 4, the warp panel)``);
    ``section 6 (a nonlinear map ...)`` -> the parenthesis; ``the warp panel (section 4)`` ->
    the clause before it. Otherwise ("loaded in section 8 and needs no training") nothing.
    """
    after = re.sub(r"^'s\b", "", text[end:])
    if re.match(r"\s*[,:]\s", after):
        return re.split(r"[;.]\s|[;.]$|\d+\s+min\b|\n\n|[()]", after.lstrip(" ,:"), maxsplit=1)[0]
    if after.lstrip(" ").startswith("("):
        inside = after.lstrip(" ")[1:]
        return inside[: inside.find(")")] if ")" in inside else ""
    before = text[:start].rstrip()
    if before.endswith("("):
        return re.split(r"[.;:]\s|\d+\s+min\b|\n\n|\*\*", before[:-1])[-1]
    return ""


@dataclass(frozen=True)
class Problem:
    lesson: str
    what: str

    def __str__(self) -> str:
        return f"lesson {self.lesson}: {self.what}"


def section_problems(number: str, part: str, lessons: dict[str, Lesson]) -> list[Problem]:
    problems = []
    for ref in SECTION_REF.finditer(part):
        other = OTHER_LESSON.search(part[max(0, ref.start() - 24) : ref.start()])
        target = other.group(1) if other else number
        lesson = lessons.get(target)
        cited = numbers_of(ref.group("numbers"))
        quote = part[ref.start() : ref.end() + 40].split("\n")[0]
        if lesson is None:
            problems.append(Problem(number, f"cites lesson {target}, which does not exist"))
            continue
        missing = [n for n in cited if n not in lesson.sections]
        if missing:
            have = ", ".join(k for k in lesson.sections if "." not in k)
            problems.append(
                Problem(
                    number,
                    f"{quote!r} cites section {', '.join(missing)} of lesson {target}, "
                    f"which has sections {have}",
                )
            )
            continue
        if other:
            continue  # another lesson's section: its topic is said in that lesson's part
        about = words(description(part, ref.start(), ref.end()))
        if not about:
            continue
        mains = {k: v for k, v in lesson.sections.items() if "." not in k}
        df = {w: sum(w in words(t) for t in mains.values()) for w in about}
        # a word in every section says nothing; one in a single section says much
        weight = {w: math.log((1 + len(mains)) / df[w]) for w in about if df[w]}
        if not weight:
            continue
        cited_text = " ".join(lesson.sections[n] for n in cited)

        def fit(text: str, weight: dict[str, float] = weight) -> float:
            vocabulary = words(text)
            return sum(v for w, v in weight.items() if w in vocabulary)

        best = max(mains, key=lambda k: fit(mains[k]))
        # flag only clear evidence: the best section fits well and at least twice as well
        if fit(mains[best]) >= MIN_EVIDENCE and fit(cited_text) < 0.5 * fit(mains[best]):
            heading = mains[best].splitlines()[0]
            problems.append(
                Problem(
                    number,
                    f"{quote!r}: what it describes fits section {best} ({heading!r}) "
                    f"better than section {', '.join(cited)}",
                )
            )
    return problems


def item_problems(number: str, part: str, lessons: dict[str, Lesson]) -> list[Problem]:
    lesson = lessons[number]
    problems = []
    for ref in ITEM_REF.finditer(part):
        kind = next(k for k in ITEM_KINDS if k.lower() == ref.group("kind").lower())
        if kind not in lesson.items:
            have = ", ".join(f'"{k}"' for k in lesson.items) or "none of them"
            problems.append(Problem(number, f'cites "{kind}" items; the lesson has {have}'))
            continue
        cited = [int(n) for n in (ref.group("first"), ref.group("last")) if n]
        tail = part[ref.end() : ref.end() + 120].split(";")
        for later in LATER_ITEMS.finditer(" ".join(tail[1:2])):  # "...; 15 min on items 2-4"
            cited += [int(n) for n in later.groups() if n]
        if cited and max(cited) > lesson.item_counts.get(kind, 0):
            problems.append(
                Problem(
                    number,
                    f'cites "{kind}" item {max(cited)}; the lesson numbers '
                    f"{lesson.item_counts.get(kind, 0)}",
                )
            )
        if ref.group("described"):
            vocabulary = words(" ".join(lesson.items.values()))
            for said in re.split(r";", ref.group("described")):
                about = words(said)
                if about and len(about & vocabulary) < len(about) / 2:
                    problems.append(
                        Problem(
                            number,
                            f'describes a "{kind}" item as {said.strip()!r}, which no item of '
                            f"the lesson mentions",
                        )
                    )
    return problems


def exercise_problems(number: str, part: str, lessons: dict[str, Lesson]) -> list[Problem]:
    problems = []
    for ref in EXERCISE_REF.finditer(part):
        lesson = lessons.get(ref.group(1))
        ident = f"{ref.group(1)}.{ref.group(2)}"
        if lesson is None or ident not in lesson.exercises:
            problems.append(Problem(number, f"cites exercise {ident}, which does not exist"))
    return problems


def all_problems(guide: str, lessons: dict[str, Lesson]) -> list[Problem]:
    problems = []
    for number, part in guide_parts(guide).items():
        if number not in lessons:
            problems.append(Problem(number, "has a part in the guide but no notebook"))
            continue
        problems += section_problems(number, part, lessons)
        problems += item_problems(number, part, lessons)
        problems += exercise_problems(number, part, lessons)
    return problems


# ---------------------------------------------------------------------- tests


def test_every_lesson_has_its_part_of_the_guide() -> None:
    parts = guide_parts(GUIDE.read_text(encoding="utf-8"))
    assert sorted(parts) == sorted(load_lessons())


@pytest.mark.parametrize("number", sorted(load_lessons()))
def test_the_guide_cites_only_what_the_lesson_has(number: str) -> None:
    lessons = load_lessons()
    part = guide_parts(GUIDE.read_text(encoding="utf-8")).get(number, "")
    problems = (
        section_problems(number, part, lessons)
        + item_problems(number, part, lessons)
        + exercise_problems(number, part, lessons)
    )
    assert not problems, "\n".join(map(str, problems))


def _cells(*markdown: str, exercise: str | None = None) -> list[dict]:
    cells = [{"cell_type": "markdown", "source": [m]} for m in markdown]
    if exercise:
        cells.append({"cell_type": "code", "source": [f"# EXERCISE {exercise}\n"]})
    return cells


TOY = read_lesson(
    "01",
    _cells(
        "# 01 · Toy\n## 1. The formula in one dimension\nthe density formula, derived\n",
        "## 2. One mode or two?\nthe sinh-arcsinh map has one mode or two\n",
        "## 3. Two dimensions: the determinant is a change of area\nparallelogram area\n",
        "**Your turn.** Move the slider:\n1. the skew slider\n2. the tail weight slider\n",
        "## Summary\n**Going further.** Try a bijection of your own.\n",
        exercise="01.1",
    ),
)


def test_the_reader_finds_sections_items_and_exercises() -> None:
    assert sorted(TOY.sections) == ["1", "2", "3"]
    assert "parallelogram" in TOY.sections["3"] and "Summary" not in TOY.sections["3"]
    assert TOY.exercises == {"01.1"}
    assert TOY.item_counts == {"Your turn": 2, "Going further": 0}
    assert numbers_of("1-3") == ["1", "2", "3"] and numbers_of("6 and 7") == ["6", "7"]
    assert numbers_of("4.1") == ["4.1"] and numbers_of("§6, §7") == ["6", "7"]


@pytest.mark.parametrize(
    ("plan", "found"),
    [
        ("10 min: section 3, the 2D determinant as a change of area.", None),
        ("10 min: section 2, the 2D determinant as a change of area.", "fits section 3"),
        ("10 min: §3, the determinant as a change of area.", None),
        ("15 min with the one-or-two-modes question (section 2) in pairs.", None),
        ("15 min with the one-or-two-modes question (section 3) in pairs.", "fits section 2"),
        ("**Expected answers (section 3, the change of area).** Its determinant.", None),
        ("**Expected answers (section 2, the change of area).** Its determinant.", "section 3"),
        ("5 min: section 4, the Jacobian.", "which has sections 1, 2, 3"),
        ("10 min: sections 1-3 on the board.", None),
        ("as in lesson 02's section 9, the training.", "section 9 of lesson 02"),
        ('10 min on "Your turn" (the skew slider; the tail weight).', None),
        ('10 min on "Your turn" (the skew slider; symmetric modes).', "symmetric modes"),
        ('10 min on "Your turn" 2.', None),
        ('10 min on "Your turn" 3.', "item 3"),
        ('10 min on "Try it" items.', 'cites "Try it" items'),
        ("10 min on exercise 01.1.", None),
        ("10 min on exercise 01.2.", "exercise 01.2, which does not exist"),
    ],
)
def test_the_checks_catch_stale_references(plan: str, found: str | None) -> None:
    lessons = {"01": TOY, "02": read_lesson("02", _cells("## 1. Directions\n"))}
    problems = [str(p) for p in all_problems(f"## Lesson 01 · Toy\n\n{plan}\n", lessons)]
    if found is None:
        assert problems == []
    else:
        assert len(problems) == 1 and found in problems[0], problems
