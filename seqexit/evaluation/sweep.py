"""Accuracy against cost: a policy swept over thresholds and windows, and its best frontier."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tqdm.auto import tqdm

from ..data import Sentence
from ..exits import ExitPolicy
from ..model import MultiExitTagger
from .exits import PolicyScore, evaluate_policy


def sweep(
    model: MultiExitTagger,
    sentences: Sequence[Sentence],
    *,
    mode: str = "tokee",
    thresholds: Iterable[float] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
    windows: Iterable[int] = (0, 1, 2),
    min_layer: int = 1,
    batch_size: int = 32,
    progress: bool = False,
) -> list[PolicyScore]:
    """One `PolicyScore` per (window, threshold), in that order."""
    policies = [ExitPolicy(mode=mode, threshold=t, window=k, min_layer=min_layer) for k in windows for t in thresholds]
    return [
        evaluate_policy(model, sentences, policy, batch_size=batch_size)
        for policy in tqdm(policies, desc=f"{mode} sweep", disable=not progress)
    ]


def frontier(scores: Sequence[PolicyScore]) -> list[PolicyScore]:
    """The scores no other score beats on both accuracy and FLOPs speed-up, by speed-up."""
    best = []
    for score in sorted(scores, key=lambda s: (-s.flops_speedup, -s.score)):
        if not best or score.score > best[-1].score:
            best.append(score)
    return best[::-1]


def score_at_speedup(scores: Sequence[PolicyScore], speedup: float) -> float | None:
    """Accuracy of the frontier at a given FLOPs speed-up, linearly interpolated between its
    points (None where the frontier does not reach that speed-up)."""
    points = frontier(scores)  # increasing speed-up, decreasing score
    for low, high in zip(points, points[1:]):
        if low.flops_speedup <= speedup <= high.flops_speedup:
            span = high.flops_speedup - low.flops_speedup
            share = 0.0 if span == 0 else (speedup - low.flops_speedup) / span
            return low.score + share * (high.score - low.score)
    if points and points[0].flops_speedup >= speedup:
        return points[0].score
    return None
