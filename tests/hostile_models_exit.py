"""A model module written as a script: importing it ends the program (``sys.exit(0)`` at module level)."""
import sys

from hostile_models import right  # noqa: F401  (the factory it would have offered)

sys.exit(0)
