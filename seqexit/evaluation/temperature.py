"""Temperature scaling per exit (Guo et al., 2017; RightTool for early exit): one scalar per exit
that makes its top probability mean what it says, fitted on labelled dev words by minimising
negative log-likelihood. The "confidence" exit criterion reads these temperatures; expected
calibration error (ECE) shows what they fixed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import Sentence
from ..exits.engine import run_exits
from ..model import MultiExitTagger
from .exits import check_labels

ECE_BINS = 15


@dataclass
class TemperatureFit:
    """Per exit: the fitted temperature, and NLL and ECE (percent) before and after."""

    temperatures: list[float]
    nll_before: list[float]
    nll_after: list[float]
    ece_before: list[float]
    ece_after: list[float]


def exit_logits(model: MultiExitTagger, sentences: Sequence[Sentence], *, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Every exit's logits at every word, and the gold label ids: ((layers, words, labels), (words,)).
    (torch.cat makes ordinary tensors of run_exits' inference-mode ones, so they can feed the fit.)"""
    check_labels(model, sentences)
    outputs = run_exits(model, [s.words for s in sentences], batch_size=batch_size, all_exits=True, keep_logits=True)
    return torch.cat([out.logits for out in outputs], 1), gold_ids(model, sentences)


def gold_ids(model: MultiExitTagger, sentences: Sequence[Sentence]) -> torch.Tensor:
    """(words,) long: the gold label id of every word of `sentences`, in order."""
    index = {label: i for i, label in enumerate(model.labels)}
    return torch.tensor([index[t] for s in sentences for t in s.tags], dtype=torch.long)


def fit_temperature(logits: torch.Tensor, gold: torch.Tensor) -> float:
    """The temperature T > 0 minimising NLL(softmax(logits / T), gold); logits (words, labels)."""
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), gold)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.01, 100.0))


def expected_calibration_error(probs: torch.Tensor, gold: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE in percent: |accuracy - mean top probability| averaged over equal-width confidence bins,
    weighted by how many words fall in each. probs (words, labels)."""
    confidence, predicted = probs.max(-1)
    correct = predicted.eq(gold).float()
    edges = torch.linspace(0, 1, bins + 1)
    which = torch.bucketize(confidence, edges[1:-1])  # (words,) bin 0..bins-1
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += float(in_bin.float().mean()) * abs(float(correct[in_bin].mean() - confidence[in_bin].mean()))
    return 100.0 * total


def fit_temperatures(model: MultiExitTagger, sentences: Sequence[Sentence], *, batch_size: int = 64) -> TemperatureFit:
    """Fit one temperature per exit on gold-tagged `sentences` (does not set them on the model)."""
    logits, gold = exit_logits(model, sentences, batch_size=batch_size)
    fit = TemperatureFit([], [], [], [], [])
    for layer_logits in logits:
        temperature = fit_temperature(layer_logits, gold)
        fit.temperatures.append(temperature)
        fit.nll_before.append(float(F.cross_entropy(layer_logits, gold)))
        fit.nll_after.append(float(F.cross_entropy(layer_logits / temperature, gold)))
        fit.ece_before.append(expected_calibration_error(layer_logits.softmax(-1), gold))
        fit.ece_after.append(expected_calibration_error((layer_logits / temperature).softmax(-1), gold))
    return fit
