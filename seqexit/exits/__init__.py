"""Exits: running the tagger to a chosen depth (and, later, deciding per word where to stop)."""

from .engine import ExitOutputs, run_exits

__all__ = ["ExitOutputs", "run_exits"]
