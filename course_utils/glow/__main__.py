"""``python -m course_utils.glow``: the Glow's command line (:mod:`course_utils.glow.cli`)."""

from course_utils.glow.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
