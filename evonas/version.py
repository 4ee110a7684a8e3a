"""The evonas version (imported by the run directory, which records it)."""

__version__ = "0.1.0"
