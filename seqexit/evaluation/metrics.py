"""Scores: span precision/recall/F1 with seqeval (conlleval-compatible by default) and accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# seqeval's scheme classes by name: seqeval (and scikit-learn under it) loads only when a score is computed
_SEQEVAL_SCHEMES = {"iob2": "IOB2", "iobes": "IOBES", "bilou": "BILOU"}


@dataclass
class TypeScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class SpanScores:
    """Micro-averaged span scores (percent) plus one `TypeScore` per entity/chunk type."""

    precision: float
    recall: float
    f1: float
    support: int
    per_type: dict[str, TypeScore] = field(default_factory=dict)


def span_scores(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], *, scheme: str = "iob2", strict: bool = False
) -> SpanScores:
    """Span scores of predicted vs gold tag sequences (both in `scheme`).

    Default mode reads ill-formed predictions the way conlleval does (an I- after O starts a
    span); strict=True counts only spans well-formed in `scheme` (seqeval's strict mode).
    """
    from seqeval import scheme as schemes
    from seqeval.metrics import classification_report

    _check_lengths(gold, predicted)
    kwargs = {"mode": "strict", "scheme": getattr(schemes, _SEQEVAL_SCHEMES[scheme])} if strict else {}
    if not strict and scheme != "iob2":
        raise ValueError("default (conlleval) mode reads IOB tags; convert to iob2 or pass strict=True")
    report = classification_report(
        [list(g) for g in gold], [list(p) for p in predicted], output_dict=True, zero_division=0, **kwargs
    )
    micro = report.pop("micro avg")
    for key in ("macro avg", "weighted avg"):
        report.pop(key, None)
    per_type = {
        label: TypeScore(100 * r["precision"], 100 * r["recall"], 100 * r["f1-score"], int(r["support"]))
        for label, r in sorted(report.items())
    }
    return SpanScores(100 * micro["precision"], 100 * micro["recall"], 100 * micro["f1-score"], int(micro["support"]), per_type)


def accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Percent of words whose predicted tag equals the gold tag."""
    _check_lengths(gold, predicted)
    total = sum(len(g) for g in gold)
    if not total:
        raise ValueError("no words to score")
    right = sum(a == b for g, p in zip(gold, predicted) for a, b in zip(g, p))
    return 100.0 * right / total


def _check_lengths(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
