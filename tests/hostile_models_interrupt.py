"""A model module whose import is interrupted (Ctrl-C while it loads weights at import time, say)."""
raise KeyboardInterrupt
