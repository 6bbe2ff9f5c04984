"""Score every exit of a tagger on labelled sentences: the per-layer picture of a model."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data import DataError, Sentence
from ..exits import ExitPolicy, run_exits, run_policy
from ..model import MultiExitTagger
from .metrics import SpanScores, accuracy, span_scores


@dataclass
class ExitScore:
    """The score of one exit: span F1 for NER/chunking, accuracy for POS (percent)."""

    layer: int
    score: float
    metric: str
    spans: SpanScores | None = None
    ece: float | None = None  # expected calibration error (percent), when asked for
    ece_with_temperature: float | None = None  # the same after the exit's fitted temperature, if any


def evaluate_exits(
    model: MultiExitTagger, sentences: Sequence[Sentence], *, batch_size: int = 64, layers: str = "all",
    calibration: bool = False,
) -> list[ExitScore]:
    """Scores of exits 1..L ("all") or of the last one only ("last") on gold-tagged sentences.
    calibration: also each exit's ECE, raw and with the model's exit temperatures (same pass)."""
    check_labels(model, sentences)
    outputs = run_exits(model, [s.words for s in sentences], batch_size=batch_size, all_exits=layers == "all",
                        keep_logits=calibration)
    gold = [s.tags for s in sentences]
    rows = outputs[0].label_ids.shape[0]
    scores = []
    for row in range(rows):
        predicted = [out.labels(model, row) for out in outputs]
        layer = row + 1 if layers == "all" else model.num_layers
        if model.config.scheme is None:
            scores.append(ExitScore(layer, accuracy(gold, predicted), "accuracy"))
        else:
            spans = span_scores(gold, predicted)
            scores.append(ExitScore(layer, spans.f1, "f1", spans))
    if calibration:
        from .temperature import expected_calibration_error, gold_ids  # it imports this module

        ids = gold_ids(model, sentences)
        temperatures = model.exit_temperatures
        for row, score in enumerate(scores):
            logits = torch.cat([out.logits[row] for out in outputs])  # (words, labels)
            score.ece = expected_calibration_error(logits.softmax(-1), ids)
            if temperatures is not None:
                score.ece_with_temperature = expected_calibration_error((logits / temperatures[score.layer - 1]).softmax(-1), ids)
    return scores


@dataclass
class PolicyScore:
    """Accuracy and cost of one exit policy on gold-tagged sentences."""

    policy: ExitPolicy
    score: float
    metric: str
    flops_speedup: float  # full-depth FLOPs / FLOPs spent
    mean_exit_layer: float
    words_per_layer: list[int]
    seconds: float  # tagging time (tokenisation included, model load excluded)
    flops: int = 0  # spent
    flops_full: int = 0  # what full depth would have spent on the same input
    sentences: int = 0
    words: int = 0
    spans: SpanScores | None = None  # per-type scores of span tasks

    @property
    def words_per_second(self) -> float:
        return self.words / self.seconds if self.seconds > 0 else float("nan")


def evaluate_policy(
    model: MultiExitTagger, sentences: Sequence[Sentence], policy: ExitPolicy, *, batch_size: int = 32
) -> PolicyScore:
    """Tag `sentences` under `policy`; score against their gold tags and count what it saved."""
    check_labels(model, sentences)
    started = time.perf_counter()
    run = run_policy(model, [s.words for s in sentences], policy, batch_size=batch_size)
    seconds = time.perf_counter() - started
    gold = [s.tags for s in sentences]
    predicted = [out.labels(model) for out in run.sentences]
    spans = None
    if model.config.scheme is None:
        score, metric = accuracy(gold, predicted), "accuracy"
    else:
        spans = span_scores(gold, predicted)
        score, metric = spans.f1, "f1"
    words = run.words  # a cascade's first-stage words count at layer 0
    mean_layer = sum((i + 1) * n for i, n in enumerate(run.words_per_layer)) / max(words, 1)
    return PolicyScore(policy, score, metric, run.flops.speedup, mean_layer, run.words_per_layer, seconds,
                       run.flops.spent, run.flops.full, len(sentences), words, spans)


def check_labels(model: MultiExitTagger, sentences: Sequence[Sentence]) -> None:
    """Every gold tag must be one the model knows: say where the first unknown one is."""
    known = set(model.labels)
    for sentence in sentences:
        if sentence.tags is None:
            raise DataError(sentence.source, sentence.lines[0] if sentence.lines else None, "sentence has no gold tags")
        for i, tag in enumerate(sentence.tags):
            if tag not in known:
                raise DataError(
                    sentence.source, sentence.lines[i] if sentence.lines else None,
                    f"tag {tag!r} is not one of the model's labels ({', '.join(model.labels)})",
                )
