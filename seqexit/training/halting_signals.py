"""Training the "signals" criterion's heads (`seqexit.exits.signals`): the model stays frozen;
per layer below the last, a perceptron learns from the word's signals at that exit whether the
exit's label already equals the last exit's (binary cross-entropy over the words of a labelled
or unlabelled corpus: the target is the model's own last exit, never a gold label)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from ..exits.engine import run_exits
from ..exits.signals import SIGNALS_HIDDEN, HaltingSignals, signal_features
from ..model import MultiExitTagger

WORDS_PER_STEP = 4096
SENTENCES_PER_CHUNK = 256


@dataclass
class HaltingSignalsResult:
    signals: HaltingSignals
    epoch_losses: list[float]  # mean loss per epoch (summed over the layers)
    agreement: list[float]  # per layer below the last: share of words whose label already equals the last's


def corpus_signals(model: MultiExitTagger, sentences: Sequence[Sequence[str]], *, batch_size: int = 32
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every word's signals at every exit below the last, from a full forward, and whether that
    exit's label equals the last's: (layers - 1, words, signals) float and (layers - 1, words) bool."""
    outputs = [out for out in run_exits(model, sentences, batch_size=batch_size, all_exits=True, keep_logits=True)
               if out.logits.shape[1]]
    features, agree = [], []
    for start in range(0, len(outputs), SENTENCES_PER_CHUNK):  # padded chunks: a few calls, not one per sentence
        chunk = outputs[start:start + SENTENCES_PER_CHUNK]
        logits = pad_sequence([out.logits.transpose(0, 1) for out in chunk], batch_first=True)  # (sentences, words, layers, labels)
        mask = pad_sequence([torch.ones(out.logits.shape[1], dtype=torch.bool) for out in chunk], batch_first=True)
        below, rows = None, []
        for layer in range(model.num_layers - 1):
            signals, below = signal_features(logits[:, :, layer], below, mask)
            rows.append(signals[mask])  # (words, signals)
        features.append(torch.stack(rows))
        agree.append(torch.cat([out.label_ids[:-1].eq(out.label_ids[-1:]) for out in chunk], 1))
    return torch.cat(features, 1), torch.cat(agree, 1)


def train_halting_signals(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], *, epochs: int = 20, learning_rate: float = 3e-3,
    hidden: int = SIGNALS_HIDDEN, batch_size: int = 32, seed: int = 42, progress: bool = False, streak: bool = True,
) -> HaltingSignalsResult:
    """Fit the "signals" heads of `model` on `sentences` (word lists; no gold needed); streak=False
    leaves the streak out of what they read."""
    if model.num_layers < 2:
        raise ValueError("halting signals need a model with at least 2 layers")
    features, agree = corpus_signals(model, sentences, batch_size=batch_size)
    return fit_halting_signals(features, agree, len(model.labels), epochs=epochs, learning_rate=learning_rate,
                               hidden=hidden, seed=seed, progress=progress, streak=streak)


def fit_halting_signals(
    features: torch.Tensor, agree: torch.Tensor, num_labels: int, *, epochs: int = 20, learning_rate: float = 3e-3,
    hidden: int = SIGNALS_HIDDEN, seed: int = 42, progress: bool = False, streak: bool = True,
) -> HaltingSignalsResult:
    """Fit the heads on `corpus_signals`' output: features (layers - 1, words, signals), agree
    (layers - 1, words) bool."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if features.shape[1] == 0:
        raise ValueError("no words to learn from")
    torch.manual_seed(seed)
    target = agree.float()
    layers = features.shape[0]
    signals = HaltingSignals(num_labels, layers + 1, hidden, streak=streak)
    optimizer = torch.optim.Adam(signals.parameters(), lr=learning_rate)
    words, losses = features.shape[1], []
    for _ in tqdm(range(epochs), desc="halting signals", disable=None if progress else True, leave=False):
        total, steps = 0.0, 0
        order = torch.randperm(words)
        for start in range(0, words, WORDS_PER_STEP):
            take = order[start:start + WORDS_PER_STEP]
            loss = sum(
                F.binary_cross_entropy_with_logits(signals(layer, features[layer, take]), target[layer, take])
                for layer in range(layers)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + float(loss.detach()), steps + 1
        losses.append(total / steps)
    return HaltingSignalsResult(signals.eval(), losses, target.mean(1).tolist())
