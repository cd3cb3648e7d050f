"""``python -m course_utils.exercises``: list the exercises, print or refresh the answers."""

from __future__ import annotations

import argparse

from course_utils.exercises import REGISTRY
from course_utils.exercises.guide import GUIDE, answers_markdown, update_guide


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.exercises", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--answers", action="store_true", help="print the teacher guide's answers")
    group.add_argument(
        "--update-guide",
        nargs="?",
        const=str(GUIDE),
        metavar="PATH",
        help=f"rewrite the answers section of the guide (default {GUIDE})",
    )
    args = parser.parse_args(argv)
    if args.answers:
        print(answers_markdown(), end="")
    elif args.update_guide:
        changed = update_guide(type(GUIDE)(args.update_guide))
        print(f"{args.update_guide}: {'updated' if changed else 'already up to date'}")
    else:
        for ex in REGISTRY:
            print(f"{ex.id}  {ex.title}  ({len(ex.wrong)} planted wrong answers)")
        print(f"{len(REGISTRY)} exercises")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
