"""A module whose import fails because it imports a package that is not installed (tests of the message)."""
import datadiet_no_such_dependency  # noqa: F401
