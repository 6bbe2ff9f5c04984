"""Evaluation: seqeval span scores, accuracy, per-exit scores and early-exit policies' scores."""

from .exits import ExitScore, PolicyScore, evaluate_exits, evaluate_policy
from .metrics import SpanScores, TypeScore, accuracy, span_scores

__all__ = [
    "ExitScore", "PolicyScore", "SpanScores", "TypeScore", "accuracy", "evaluate_exits", "evaluate_policy", "span_scores",
]
