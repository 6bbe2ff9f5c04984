"""Training the learned exit heads (`seqexit.exits.learned`): the encoder and exits stay frozen;
each head learns, from the word's hidden state at its layer, whether that exit's label equals the
last exit's (binary cross-entropy over the words of a labelled or unlabelled corpus)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..exits.engine import length_sorted_batches
from ..pieces import at_word_starts
from ..exits.learned import LearnedExitHeads
from ..model import MultiExitTagger, WordPast


@dataclass
class LearnedExitsResult:
    heads: LearnedExitHeads
    epoch_losses: list[float]  # mean loss per epoch
    agreement: list[float]  # per layer below the last: share of words whose label already equals the last's


@torch.no_grad()
def layer_features(model: MultiExitTagger, batch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer: hidden states at word starts (batch, words, hidden) and the exit's label ids."""
    features, labels = [], []
    past: list[WordPast] | None = [] if model.reads_past else None
    for layer, hidden in enumerate(model.layer_states(batch, past=past)):
        features.append(at_word_starts(hidden, batch.word_starts))
        below = past[0].mean() if past else None
        labels.append(model.read_exit(layer, hidden, batch.word_starts, past=below).argmax(-1))
    return features, labels


def train_learned_exits(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], *, epochs: int = 2, learning_rate: float = 1e-3,
    batch_size: int = 32, seed: int = 42, progress: bool = False,
) -> LearnedExitsResult:
    """Fit one head per layer below the last on `sentences` (word lists; no gold needed: the
    target is the model's own last exit)."""
    if model.num_layers < 2:
        raise ValueError("learned exits need a model with at least 2 layers")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    heads = LearnedExitHeads(model.adapter.hidden_size, model.num_layers)
    optimizer = torch.optim.Adam(heads.parameters(), lr=learning_rate)
    losses: list[float] = []
    agree = torch.zeros(model.num_layers - 1)
    seen = 0
    try:
        batches = list(length_sorted_batches(model, sentences, batch_size))
        for epoch in range(epochs):
            total, count = 0.0, 0
            order = torch.randperm(len(batches)).tolist()
            for index in tqdm(order, desc=f"learned exits, epoch {epoch + 1}", disable=None if progress else True, leave=False):
                _, batch = batches[index]
                features, labels = layer_features(model, batch)
                mask = batch.word_mask
                loss = 0.0
                for layer in range(model.num_layers - 1):
                    target = labels[layer].eq(labels[-1]).float()[mask]
                    loss = loss + F.binary_cross_entropy_with_logits(heads(layer, features[layer][mask]), target)
                    if epoch == epochs - 1:
                        agree[layer] += target.sum()
                if epoch == epochs - 1:
                    seen += int(mask.sum())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, count = total + float(loss.detach()), count + 1
            losses.append(total / max(count, 1))
    finally:
        model.train(was_training)
    return LearnedExitsResult(heads.eval(), losses, (agree / max(seen, 1)).tolist())
