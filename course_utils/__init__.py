"""course_utils: the small library behind *Normalizing Flows, hands-on*.

Each module holds one idea (see the README's map); lessons import from here
rather than copying code.
"""

from course_utils.core.config import fast_mode, pick, seed_everything

__all__ = ["fast_mode", "pick", "seed_everything"]
__version__ = "0.1.0"
