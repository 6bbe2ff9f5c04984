"""Evaluation: seqeval span scores, accuracy, and per-exit scoring of a multi-exit tagger."""

from .exits import ExitScore, evaluate_exits
from .metrics import SpanScores, TypeScore, accuracy, span_scores

__all__ = ["ExitScore", "SpanScores", "TypeScore", "accuracy", "evaluate_exits", "span_scores"]
