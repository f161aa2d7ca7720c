"""The package version, in one place (imported by the package and by every module that records it)."""
__version__ = "0.2.0"
