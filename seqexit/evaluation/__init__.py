"""Evaluation: seqeval span scores, accuracy, per-exit scores and early-exit policies' scores."""

from .exits import ExitScore, PolicyScore, evaluate_exits, evaluate_policy
from .oracle import OracleBound, oracle_bound, oracle_exit_layers
from .metrics import SpanScores, TypeScore, accuracy, span_scores
from .sweep import frontier, score_at_speedup, sweep

__all__ = [
    "ExitScore", "PolicyScore", "SpanScores", "TypeScore", "accuracy", "evaluate_exits", "evaluate_policy", "frontier",
    "OracleBound", "oracle_bound", "oracle_exit_layers", "score_at_speedup", "span_scores", "sweep",
]
